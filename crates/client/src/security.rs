//! Auth service: enabling authentication, users, roles and permissions.
//!
//! Invariant: requests carry the client's token like every other request; the token itself is
//! managed by the transport ([`crate::ConnectOptions::user`]), [`Client::authenticate`] only
//! returns one.

use oxcd_api::authpb::{permission::Type, Permission, UserAddOptions};
use oxcd_api::etcdserverpb::{
    auth_client::AuthClient, AuthDisableRequest, AuthDisableResponse, AuthEnableRequest,
    AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest,
    AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest,
    AuthRoleListResponse, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse,
    AuthStatusRequest, AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse,
    AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest,
    AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateRequest,
    AuthenticateResponse,
};

use crate::transport::Safety;
use crate::{Client, Result};

/// Permission types of [`Client::role_grant_permission`].
pub use oxcd_api::authpb::permission::Type as PermissionType;

impl Client {
    /// Turn authentication on.
    pub async fn auth_enable(&self) -> Result<AuthEnableResponse> {
        let req = AuthEnableRequest {};
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).auth_enable(r).await
            })
            .await
    }

    /// Turn authentication off.
    pub async fn auth_disable(&self) -> Result<AuthDisableResponse> {
        let req = AuthDisableRequest {};
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).auth_disable(r).await
            })
            .await
    }

    /// Whether authentication is on, and the auth revision.
    pub async fn auth_status(&self) -> Result<AuthStatusResponse> {
        let req = AuthStatusRequest {};
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).auth_status(r).await
            })
            .await
    }

    /// Exchange a user name and password for a token (without storing it).
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<AuthenticateResponse> {
        let req = AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).authenticate(r).await
            })
            .await
    }

    /// Add a user (`password` `None` = a user without password).
    pub async fn user_add(
        &self,
        name: &str,
        password: Option<&str>,
    ) -> Result<AuthUserAddResponse> {
        let req = AuthUserAddRequest {
            name: name.into(),
            password: password.unwrap_or_default().into(),
            options: Some(UserAddOptions {
                no_password: password.is_none(),
            }),
            hashed_password: String::new(),
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).user_add(r).await
            })
            .await
    }

    /// A user's roles.
    pub async fn user_get(&self, name: &str) -> Result<AuthUserGetResponse> {
        let req = AuthUserGetRequest { name: name.into() };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).user_get(r).await
            })
            .await
    }

    /// Every user.
    pub async fn user_list(&self) -> Result<AuthUserListResponse> {
        let req = AuthUserListRequest {};
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).user_list(r).await
            })
            .await
    }

    /// Delete a user.
    pub async fn user_delete(&self, name: &str) -> Result<AuthUserDeleteResponse> {
        let req = AuthUserDeleteRequest { name: name.into() };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).user_delete(r).await
            })
            .await
    }

    /// Change a user's password.
    pub async fn user_change_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<AuthUserChangePasswordResponse> {
        let req = AuthUserChangePasswordRequest {
            name: name.into(),
            password: password.into(),
            hashed_password: String::new(),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).user_change_password(r).await
            })
            .await
    }

    /// Grant a role to a user.
    pub async fn user_grant_role(
        &self,
        user: &str,
        role: &str,
    ) -> Result<AuthUserGrantRoleResponse> {
        let req = AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).user_grant_role(r).await
            })
            .await
    }

    /// Revoke a role from a user.
    pub async fn user_revoke_role(
        &self,
        name: &str,
        role: &str,
    ) -> Result<AuthUserRevokeRoleResponse> {
        let req = AuthUserRevokeRoleRequest {
            name: name.into(),
            role: role.into(),
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).user_revoke_role(r).await
            })
            .await
    }

    /// Add a role.
    pub async fn role_add(&self, name: &str) -> Result<AuthRoleAddResponse> {
        let req = AuthRoleAddRequest { name: name.into() };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).role_add(r).await
            })
            .await
    }

    /// A role's permissions.
    pub async fn role_get(&self, role: &str) -> Result<AuthRoleGetResponse> {
        let req = AuthRoleGetRequest { role: role.into() };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).role_get(r).await
            })
            .await
    }

    /// Every role.
    pub async fn role_list(&self) -> Result<AuthRoleListResponse> {
        let req = AuthRoleListRequest {};
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).role_list(r).await
            })
            .await
    }

    /// Delete a role.
    pub async fn role_delete(&self, role: &str) -> Result<AuthRoleDeleteResponse> {
        let req = AuthRoleDeleteRequest { role: role.into() };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).role_delete(r).await
            })
            .await
    }

    /// Grant a permission on `[key, range_end)` (empty end = one key) to a role.
    pub async fn role_grant_permission(
        &self,
        name: &str,
        perm_type: Type,
        key: Vec<u8>,
        range_end: Vec<u8>,
    ) -> Result<AuthRoleGrantPermissionResponse> {
        let req = AuthRoleGrantPermissionRequest {
            name: name.into(),
            perm: Some(Permission {
                perm_type: perm_type as i32,
                key,
                range_end,
            }),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                AuthClient::new(ch).role_grant_permission(r).await
            })
            .await
    }

    /// Revoke a role's permission on `[key, range_end)`.
    pub async fn role_revoke_permission(
        &self,
        role: &str,
        key: Vec<u8>,
        range_end: Vec<u8>,
    ) -> Result<AuthRoleRevokePermissionResponse> {
        let req = AuthRoleRevokePermissionRequest {
            role: role.into(),
            key,
            range_end,
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                AuthClient::new(ch).role_revoke_permission(r).await
            })
            .await
    }
}
