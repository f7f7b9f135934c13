//! etcd's Cluster service: member list, add (voter or learner), remove, update, promote.
//! Membership changes are proposed as single-step Raft conf changes, as etcd's are, and
//! answered once applied; member updates travel as ordinary entries.

use std::sync::Arc;

use oxcd_api::etcdserverpb::cluster_server::Cluster;
use oxcd_api::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use oxcd_api::oxcdpb::internal_request::Request as InternalReq;
use oxcd_api::oxcdpb::{ConfChangeContext, MemberAttributes};
use oxcd_api::EtcdError;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::{Request, Response, Status};

use crate::membership::compute_member_id;
use crate::server::EtcdServer;

pub struct ClusterService(pub Arc<EtcdServer>);

impl ClusterService {
    fn members(&self) -> Vec<Member> {
        let s = &self.0;
        s.cluster
            .read()
            .member_list((s.member_id, &s.settings.client_urls))
    }

    async fn conf_change(
        &self,
        node_id: u64,
        change_type: ConfChangeType,
        member: Option<MemberAttributes>,
    ) -> Result<(), EtcdError> {
        let id = self.0.next_request_id();
        let context = ConfChangeContext { id, member }.encode_to_vec();
        let mut cc = ConfChange {
            node_id,
            context: context.clone().into(),
            ..Default::default()
        };
        cc.set_change_type(change_type);
        self.0.propose_conf_change(cc, id, context).await?;
        Ok(())
    }
}

/// Peer URLs as etcd accepts them: http(s)://host:port, normalised.
fn parse_peer_urls(urls: &[String]) -> Result<Vec<String>, EtcdError> {
    if urls.is_empty() {
        return Err(EtcdError::MemberBadUrls);
    }
    urls.iter()
        .map(|u| {
            let p = url::Url::parse(u).map_err(|_| EtcdError::MemberBadUrls)?;
            if !matches!(p.scheme(), "http" | "https")
                || p.host_str().is_none()
                || p.port().is_none()
            {
                return Err(EtcdError::MemberBadUrls);
            }
            Ok(crate::config::format_url(&p))
        })
        .collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let req = req.into_inner();
        let urls = parse_peer_urls(&req.peer_ur_ls)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = compute_member_id(&urls, &self.0.cluster_token, Some(now));
        {
            let c = self.0.cluster.read();
            if c.members.contains_key(&id) {
                return Err(EtcdError::MemberExist.into());
            }
            if c.members
                .values()
                .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
            {
                return Err(EtcdError::PeerUrlExist.into());
            }
        }
        crate::reconfig::may_add_member(&self.0, req.is_learner)?;
        let member = MemberAttributes {
            id,
            name: String::new(),
            peer_urls: urls.clone(),
            client_urls: vec![],
            is_learner: req.is_learner,
        };
        let kind = if req.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        self.conf_change(id, kind, Some(member)).await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.0.header(0)),
            member: Some(Member {
                id,
                name: String::new(),
                peer_ur_ls: urls,
                client_ur_ls: vec![],
                is_learner: req.is_learner,
            }),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        if !self.0.cluster.read().members.contains_key(&id) {
            return Err(EtcdError::MemberNotFound.into());
        }
        crate::reconfig::may_remove_member(&self.0, id)?;
        self.conf_change(id, ConfChangeType::RemoveNode, None)
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.0.header(0)),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let req = req.into_inner();
        let urls = parse_peer_urls(&req.peer_ur_ls)?;
        if !self.0.cluster.read().members.contains_key(&req.id) {
            return Err(EtcdError::MemberNotFound.into());
        }
        let update = MemberAttributes {
            id: req.id,
            peer_urls: urls,
            ..Default::default()
        };
        self.0.propose(InternalReq::MemberUpdate(update)).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.0.header(0)),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.0.linearizable_read_notify().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: Some(self.0.header(0)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = req.into_inner().id;
        match self.0.cluster.read().members.get(&id) {
            None => return Err(EtcdError::MemberNotFound.into()),
            Some(m) if !m.is_learner => return Err(EtcdError::MemberNotLearner.into()),
            Some(_) => {}
        }
        crate::reconfig::may_promote_member(&self.0)?;
        if self.0.status.leader() != self.0.member_id {
            // Only the leader knows whether the learner caught up: ask it (etcd forwards
            // promotes to the leader too).
            let mut r = self.0.leader_channel.promote(&self.0, id).await?;
            r.header = Some(self.0.header(0));
            return Ok(Response::new(r));
        }
        self.conf_change(id, ConfChangeType::AddNode, None).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.0.header(0)),
            members: self.members(),
        }))
    }
}
