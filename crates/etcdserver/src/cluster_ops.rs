//! Membership operations as the Cluster service exposes them (etcd's `v3_server.go`
//! AddMember/RemoveMember/UpdateMember/PromoteMember): member ids are computed, URLs
//! checked, strict-reconfig rules applied, and the change proposed as a single-step Raft
//! conf change (member updates travel as ordinary entries).
//!
//! Invariants: a change is answered only once applied; a promote on a follower is
//! forwarded to the leader, the only member that knows whether the learner caught up.

use oxcd_api::etcdserverpb::{Member, MemberPromoteResponse};
use oxcd_api::oxcdpb::internal_request::Request as InternalReq;
use oxcd_api::oxcdpb::{ConfChangeContext, MemberAttributes};
use oxcd_api::EtcdError;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType};

use crate::membership::compute_member_id;
use crate::server::EtcdServer;

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
            Ok(crate::membership::format_url(&p))
        })
        .collect()
}

impl EtcdServer {
    /// Every member as the Cluster service lists it.
    pub fn members(&self) -> Vec<Member> {
        self.cluster
            .read()
            .member_list((self.member_id, &self.settings.client_urls))
    }

    /// The member list; `linearizable` waits for a read index first (etcd 3.5).
    pub async fn member_list(&self, linearizable: bool) -> Result<Vec<Member>, EtcdError> {
        if linearizable {
            self.linearizable_read_notify().await?;
        }
        Ok(self.members())
    }

    async fn conf_change(
        &self,
        node_id: u64,
        change_type: ConfChangeType,
        member: Option<MemberAttributes>,
    ) -> Result<(), EtcdError> {
        let id = self.next_request_id();
        let context = ConfChangeContext { id, member }.encode_to_vec();
        let mut cc = ConfChange {
            node_id,
            context: context.clone().into(),
            ..Default::default()
        };
        cc.set_change_type(change_type);
        self.propose_conf_change(cc, id, context).await?;
        Ok(())
    }

    /// Adds a voter or a learner with these peer URLs; answers the new member.
    pub async fn member_add(
        &self,
        peer_urls: &[String],
        is_learner: bool,
    ) -> Result<Member, EtcdError> {
        let urls = parse_peer_urls(peer_urls)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = compute_member_id(&urls, &self.cluster_token, Some(now));
        {
            let c = self.cluster.read();
            if c.members.contains_key(&id) {
                return Err(EtcdError::MemberExist);
            }
            if c.members
                .values()
                .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
            {
                return Err(EtcdError::PeerUrlExist);
            }
        }
        crate::reconfig::may_add_member(self, is_learner)?;
        let member = MemberAttributes {
            id,
            name: String::new(),
            peer_urls: urls.clone(),
            client_urls: vec![],
            is_learner,
        };
        let kind = if is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        self.conf_change(id, kind, Some(member)).await?;
        Ok(Member {
            id,
            name: String::new(),
            peer_ur_ls: urls,
            client_ur_ls: vec![],
            is_learner,
        })
    }

    /// Removes a member.
    pub async fn member_remove(&self, id: u64) -> Result<(), EtcdError> {
        if !self.cluster.read().members.contains_key(&id) {
            return Err(EtcdError::MemberNotFound);
        }
        crate::reconfig::may_remove_member(self, id)?;
        self.conf_change(id, ConfChangeType::RemoveNode, None).await
    }

    /// Replaces a member's peer URLs.
    pub async fn member_update(&self, id: u64, peer_urls: &[String]) -> Result<(), EtcdError> {
        let urls = parse_peer_urls(peer_urls)?;
        if !self.cluster.read().members.contains_key(&id) {
            return Err(EtcdError::MemberNotFound);
        }
        let update = MemberAttributes {
            id,
            peer_urls: urls,
            ..Default::default()
        };
        self.propose(InternalReq::MemberUpdate(update)).await?;
        Ok(())
    }

    /// Promotes a learner that has caught up with the leader.
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse, EtcdError> {
        match self.cluster.read().members.get(&id) {
            None => return Err(EtcdError::MemberNotFound),
            Some(m) if !m.is_learner => return Err(EtcdError::MemberNotLearner),
            Some(_) => {}
        }
        crate::reconfig::may_promote_member(self)?;
        if self.status.leader() != self.member_id {
            let mut r = self.leader_channel.promote(self, id).await?;
            r.header = Some(self.header(0));
            return Ok(r);
        }
        self.conf_change(id, ConfChangeType::AddNode, None).await?;
        Ok(MemberPromoteResponse {
            header: Some(self.header(0)),
            members: self.members(),
        })
    }
}
