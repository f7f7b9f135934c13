//! The Auth service and identities (etcd's `v3_server.go` Auth* methods and
//! `AuthInfoFromCtx`): every Auth RPC is proposed through Raft and decided by the
//! auth store's checks at apply (`apply_auth`).
//!
//! Invariants:
//! - Passwords are hashed (bcrypt) and verified on the blocking pool, never on the async
//!   workers and never under the auth store's lock; no password enters the raft log.
//! - A simple token is resolved only after this member applied the Authenticate entry
//!   that issued it.

use std::sync::Arc;

use oxcd_api::etcdserverpb as pb;
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::InternalAuthenticateRequest;
use oxcd_api::EtcdError;
use oxcd_auth::AuthInfo;
use prost::Message;

use crate::apply::Applied;
use crate::server::EtcdServer;

/// Field 1 of every auth response: its header (appended to the encoded response, which
/// protobuf merges).
#[derive(Clone, PartialEq, Message)]
struct WithHeader {
    #[prost(message, optional, tag = "1")]
    header: Option<pb::ResponseHeader>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EtcdError> + Send + 'static,
) -> Result<T, EtcdError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EtcdError::Internal(format!("bcrypt task: {e}")))?
}

impl EtcdServer {
    /// The auth store (for the fronts' identity lookups).
    pub fn auth_store(&self) -> &Arc<oxcd_auth::AuthStore> {
        &self.auth
    }

    /// The identity of a request (etcd's `AuthInfoFromCtx` with the TLS fallback): the
    /// gRPC metadata `token` if sent, else the client certificate's common name (with
    /// `--client-cert-auth`), else anonymous. Waits (bounded) until a simple token's
    /// Authenticate entry is applied here.
    pub async fn auth_info(
        &self,
        token: Option<&str>,
        common_name: Option<&str>,
    ) -> Result<AuthInfo, EtcdError> {
        if !self.auth.is_enabled() {
            return Ok(AuthInfo::default());
        }
        if let Some(index) = token.and_then(oxcd_auth::simple_token_index) {
            let mut rx = self.applied_rx.clone();
            let waited = tokio::time::timeout(self.settings.request_timeout, async move {
                rx.wait_for(|a| *a >= index).await.map(|_| ())
            })
            .await;
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(EtcdError::Stopped),
                Err(_) => return Err(EtcdError::Timeout),
            }
        }
        self.auth.auth_info_from_request(token, common_name)
    }

    /// Admin permission (etcd's `IsAdminPermitted`), for the RPCs the fronts guard with
    /// it (membership, maintenance).
    pub fn check_admin(&self, info: &AuthInfo) -> Result<(), EtcdError> {
        self.auth.is_admin_permitted(info)
    }

    /// Read permission on a watched range, at watch create.
    pub fn check_watch(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        self.auth.check_watch(info, key, range_end)
    }

    async fn auth_request<R: Message + Default>(
        &self,
        info: &AuthInfo,
        req: Request,
    ) -> Result<R, EtcdError> {
        self.check_not_learner()?;
        match self.propose_as(info, req).await? {
            Applied::Auth(mut bytes) => {
                let header = WithHeader {
                    header: Some(self.header(self.store.current_revision())),
                };
                header
                    .encode(&mut bytes)
                    .map_err(|e| EtcdError::Internal(e.to_string()))?;
                R::decode(&bytes[..]).map_err(|e| EtcdError::Internal(e.to_string()))
            }
            _ => Err(EtcdError::Internal(
                "apply returned a response of another kind".into(),
            )),
        }
    }

    pub async fn auth_enable(
        &self,
        info: &AuthInfo,
        r: pb::AuthEnableRequest,
    ) -> Result<pb::AuthEnableResponse, EtcdError> {
        self.auth_request(info, Request::AuthEnable(r)).await
    }

    pub async fn auth_disable(
        &self,
        info: &AuthInfo,
        r: pb::AuthDisableRequest,
    ) -> Result<pb::AuthDisableResponse, EtcdError> {
        self.auth_request(info, Request::AuthDisable(r)).await
    }

    /// AuthStatus from the store, through Raft (etcd 3.5 requires admin).
    pub async fn auth_status_as(
        &self,
        info: &AuthInfo,
        r: pb::AuthStatusRequest,
    ) -> Result<pb::AuthStatusResponse, EtcdError> {
        self.auth_request(info, Request::AuthStatus(r)).await
    }

    /// Authenticate: the password is checked off-lock on the blocking pool, then the
    /// entry is proposed and the token issued when it applies (etcd's `Authenticate`).
    pub async fn authenticate(
        &self,
        r: pb::AuthenticateRequest,
    ) -> Result<pb::AuthenticateResponse, EtcdError> {
        let auth = self.auth.clone();
        let (name, password) = (r.name.clone(), r.password);
        let checked = blocking(move || auth.check_password(&name, &password)).await?;
        let req = Request::Authenticate(InternalAuthenticateRequest {
            name: r.name,
            password: String::new(),
            simple_token: self.auth.gen_token_prefix(),
        });
        let resp: pb::AuthenticateResponse = self.auth_request(&AuthInfo::default(), req).await?;
        if self.auth.revision() > checked {
            tracing::debug!(
                "auth revision moved during authenticate; the token carries the newer one"
            );
        }
        Ok(resp)
    }

    pub async fn user_add(
        &self,
        info: &AuthInfo,
        mut r: pb::AuthUserAddRequest,
    ) -> Result<pb::AuthUserAddResponse, EtcdError> {
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        let cost = self.auth.bcrypt_cost();
        r = blocking(move || oxcd_auth::prepare_user_add(&mut r, cost).map(|_| r)).await?;
        self.auth_request(info, Request::AuthUserAdd(r)).await
    }

    pub async fn user_delete(
        &self,
        info: &AuthInfo,
        r: pb::AuthUserDeleteRequest,
    ) -> Result<pb::AuthUserDeleteResponse, EtcdError> {
        self.auth_request(info, Request::AuthUserDelete(r)).await
    }

    pub async fn user_get(
        &self,
        info: &AuthInfo,
        r: pb::AuthUserGetRequest,
    ) -> Result<pb::AuthUserGetResponse, EtcdError> {
        self.auth_request(info, Request::AuthUserGet(r)).await
    }

    pub async fn user_list(
        &self,
        info: &AuthInfo,
        r: pb::AuthUserListRequest,
    ) -> Result<pb::AuthUserListResponse, EtcdError> {
        self.auth_request(info, Request::AuthUserList(r)).await
    }

    pub async fn user_change_password(
        &self,
        info: &AuthInfo,
        mut r: pb::AuthUserChangePasswordRequest,
    ) -> Result<pb::AuthUserChangePasswordResponse, EtcdError> {
        let cost = self.auth.bcrypt_cost();
        r = blocking(move || oxcd_auth::prepare_change_password(&mut r, cost).map(|_| r)).await?;
        self.auth_request(info, Request::AuthUserChangePassword(r))
            .await
    }

    pub async fn user_grant_role(
        &self,
        info: &AuthInfo,
        r: pb::AuthUserGrantRoleRequest,
    ) -> Result<pb::AuthUserGrantRoleResponse, EtcdError> {
        self.auth_request(info, Request::AuthUserGrantRole(r)).await
    }

    pub async fn user_revoke_role(
        &self,
        info: &AuthInfo,
        r: pb::AuthUserRevokeRoleRequest,
    ) -> Result<pb::AuthUserRevokeRoleResponse, EtcdError> {
        self.auth_request(info, Request::AuthUserRevokeRole(r))
            .await
    }

    pub async fn role_add(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleAddRequest,
    ) -> Result<pb::AuthRoleAddResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleAdd(r)).await
    }

    pub async fn role_get(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleGetRequest,
    ) -> Result<pb::AuthRoleGetResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleGet(r)).await
    }

    pub async fn role_list(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleListRequest,
    ) -> Result<pb::AuthRoleListResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleList(r)).await
    }

    pub async fn role_delete(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleDeleteRequest,
    ) -> Result<pb::AuthRoleDeleteResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleDelete(r)).await
    }

    pub async fn role_grant_permission(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleGrantPermissionRequest,
    ) -> Result<pb::AuthRoleGrantPermissionResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleGrantPermission(r))
            .await
    }

    pub async fn role_revoke_permission(
        &self,
        info: &AuthInfo,
        r: pb::AuthRoleRevokePermissionRequest,
    ) -> Result<pb::AuthRoleRevokePermissionResponse, EtcdError> {
        self.auth_request(info, Request::AuthRoleRevokePermission(r))
            .await
    }
}

/// etcd's simple-token keeper: drops expired tokens every second (they are refused either
/// way; this frees them). Ends when the server is dropped.
pub(crate) fn spawn_token_keeper(server: &Arc<EtcdServer>) {
    let weak = Arc::downgrade(server);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(s) = weak.upgrade() else { return };
            s.auth.purge_expired_tokens();
        }
    });
}
