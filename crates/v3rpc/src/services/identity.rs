//! Who a request comes from (etcd's `AuthInfoFromCtx`): the gRPC metadata `token`, else
//! the client certificate's common name (only present when `--client-cert-auth` made the
//! TLS layer verify one), else anonymous. The auth store decides the rest.

use oxcd_etcdserver::{AuthInfo, EtcdServer};
use tonic::{Request, Status};

/// What a request says about its sender, kept for streams that check later (watch).
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    token: Option<String>,
    common_name: Option<String>,
}

impl Credentials {
    pub(crate) fn of<T>(req: &Request<T>) -> Credentials {
        Credentials {
            token: req
                .metadata()
                .get("token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            common_name: client_common_name(req),
        }
    }

    pub(crate) async fn resolve(&self, server: &EtcdServer) -> Result<AuthInfo, Status> {
        Ok(server
            .auth_info(self.token.as_deref(), self.common_name.as_deref())
            .await?)
    }
}

/// The verified client certificate's common name, from the TLS layer (set only when
/// client certificates are verified).
fn client_common_name<T>(req: &Request<T>) -> Option<String> {
    oxcd_tls::peer_common_name(req).map(str::to_string)
}

/// The identity of a unary request.
pub(crate) async fn identity<T>(server: &EtcdServer, req: &Request<T>) -> Result<AuthInfo, Status> {
    Credentials::of(req).resolve(server).await
}

/// etcd's `IsAdminPermitted` for the RPCs it reserves to root (membership changes,
/// maintenance).
pub(crate) async fn require_admin<T>(server: &EtcdServer, req: &Request<T>) -> Result<(), Status> {
    let info = identity(server, req).await?;
    Ok(server.check_admin(&info)?)
}
