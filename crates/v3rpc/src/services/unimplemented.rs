//! Services whose issues have not landed yet (Auth). Each RPC
//! answers gRPC `Unimplemented` with a message naming it, never a panic or a fake answer.
//! The one exception is `Auth.AuthStatus`, which truthfully reports auth as disabled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use oxcd_api::etcdserverpb::auth_server::Auth;
use oxcd_api::etcdserverpb::*;
use oxcd_api::EtcdError;
use tonic::{Request, Response, Status};

use oxcd_etcdserver::EtcdServer;

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Generates unary methods that answer `Unimplemented("<Service>.<Method>")`. They are
/// written in the form `#[async_trait]` expands to, because that attribute does not see
/// methods produced by a macro inside the impl.
macro_rules! unimplemented_unary {
    ($svc:literal; $($name:ident : $req:ty => $resp:ty, $label:literal;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            _: Request<$req>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async { Err(EtcdError::Unimplemented(concat!($svc, ".", $label)).into()) })
        }
    )*};
}

pub struct AuthService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        Ok(Response::new(self.0.auth_status()))
    }

    unimplemented_unary! { "Auth";
        auth_enable: AuthEnableRequest => AuthEnableResponse, "AuthEnable";
        auth_disable: AuthDisableRequest => AuthDisableResponse, "AuthDisable";
        authenticate: AuthenticateRequest => AuthenticateResponse, "Authenticate";
        user_add: AuthUserAddRequest => AuthUserAddResponse, "UserAdd";
        user_get: AuthUserGetRequest => AuthUserGetResponse, "UserGet";
        user_list: AuthUserListRequest => AuthUserListResponse, "UserList";
        user_delete: AuthUserDeleteRequest => AuthUserDeleteResponse, "UserDelete";
        user_change_password: AuthUserChangePasswordRequest => AuthUserChangePasswordResponse, "UserChangePassword";
        user_grant_role: AuthUserGrantRoleRequest => AuthUserGrantRoleResponse, "UserGrantRole";
        user_revoke_role: AuthUserRevokeRoleRequest => AuthUserRevokeRoleResponse, "UserRevokeRole";
        role_add: AuthRoleAddRequest => AuthRoleAddResponse, "RoleAdd";
        role_get: AuthRoleGetRequest => AuthRoleGetResponse, "RoleGet";
        role_list: AuthRoleListRequest => AuthRoleListResponse, "RoleList";
        role_delete: AuthRoleDeleteRequest => AuthRoleDeleteResponse, "RoleDelete";
        role_grant_permission: AuthRoleGrantPermissionRequest => AuthRoleGrantPermissionResponse, "RoleGrantPermission";
        role_revoke_permission: AuthRoleRevokePermissionRequest => AuthRoleRevokePermissionResponse, "RoleRevokePermission";
    }
}
