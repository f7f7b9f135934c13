//! etcd's Cluster service: member list, add (voter or learner), remove, update, promote.
//! Membership changes are proposed as single-step Raft conf changes, as etcd's are, and
//! answered once applied; member updates travel as ordinary entries.

use std::sync::Arc;

use super::identity::require_admin;
use oxcd_api::etcdserverpb::cluster_server::Cluster;
use oxcd_api::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use oxcd_etcdserver::EtcdServer;
use tonic::{Request, Response, Status};

pub struct ClusterService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        require_admin(&self.0, &req).await?;
        let req = req.into_inner();
        let member = self.0.member_add(&req.peer_ur_ls, req.is_learner).await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.0.header(0)),
            member: Some(member),
            members: self.0.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        require_admin(&self.0, &req).await?;
        self.0.member_remove(req.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.0.header(0)),
            members: self.0.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        require_admin(&self.0, &req).await?;
        let req = req.into_inner();
        self.0.member_update(req.id, &req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.0.header(0)),
            members: self.0.members(),
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self.0.member_list(req.into_inner().linearizable).await?;
        Ok(Response::new(MemberListResponse {
            header: Some(self.0.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        require_admin(&self.0, &req).await?;
        Ok(Response::new(
            self.0.member_promote(req.into_inner().id).await?,
        ))
    }
}
