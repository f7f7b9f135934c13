//! etcd's Auth service: thin adapters to [`EtcdServer`]'s Auth methods, each with the
//! caller's identity; the auth store decides at apply.

use std::sync::Arc;

use oxcd_api::etcdserverpb::auth_server::Auth;
use oxcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::identity::identity;
use oxcd_etcdserver::EtcdServer;

pub struct AuthService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.auth_status_as(&info, req.into_inner()).await?,
        ))
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Ok(Response::new(self.0.authenticate(req.into_inner()).await?))
    }

    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.auth_enable(&info, req.into_inner()).await?,
        ))
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.auth_disable(&info, req.into_inner()).await?,
        ))
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_add(&info, req.into_inner()).await?,
        ))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_get(&info, req.into_inner()).await?,
        ))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_list(&info, req.into_inner()).await?,
        ))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_delete(&info, req.into_inner()).await?,
        ))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_change_password(&info, req.into_inner()).await?,
        ))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_grant_role(&info, req.into_inner()).await?,
        ))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.user_revoke_role(&info, req.into_inner()).await?,
        ))
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.role_add(&info, req.into_inner()).await?,
        ))
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.role_get(&info, req.into_inner()).await?,
        ))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.role_list(&info, req.into_inner()).await?,
        ))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.role_delete(&info, req.into_inner()).await?,
        ))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0
                .role_grant_permission(&info, req.into_inner())
                .await?,
        ))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0
                .role_revoke_permission(&info, req.into_inner())
                .await?,
        ))
    }
}
