//! Cluster service: membership list and changes.
//!
//! Invariant: only `member_list` is retried on `Unavailable` (membership changes are not
//! idempotent: a retried add could add a second member).

use oxcd_api::etcdserverpb::{
    cluster_client::ClusterClient, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};

use crate::transport::Safety;
use crate::{Client, Result};

impl Client {
    /// The cluster's members (served by the member reached, possibly stale).
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        self.member_list_with(false).await
    }

    /// The cluster's members; `linearizable` reads them through the leader.
    pub async fn member_list_with(&self, linearizable: bool) -> Result<MemberListResponse> {
        let req = MemberListRequest { linearizable };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                ClusterClient::new(ch).member_list(r).await
            })
            .await
    }

    /// Add a member (or a learner) with the given peer URLs.
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<MemberAddResponse> {
        let req = MemberAddRequest {
            peer_ur_ls: peer_urls,
            is_learner,
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                ClusterClient::new(ch).member_add(r).await
            })
            .await
    }

    /// Remove member `id`.
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        self.t
            .unary(
                Safety::Mutating,
                MemberRemoveRequest { id },
                |ch, r| async move { ClusterClient::new(ch).member_remove(r).await },
            )
            .await
    }

    /// Replace member `id`'s peer URLs.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<MemberUpdateResponse> {
        let req = MemberUpdateRequest {
            id,
            peer_ur_ls: peer_urls,
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                ClusterClient::new(ch).member_update(r).await
            })
            .await
    }

    /// Promote learner `id` to a voting member.
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        self.t
            .unary(
                Safety::Mutating,
                MemberPromoteRequest { id },
                |ch, r| async move { ClusterClient::new(ch).member_promote(r).await },
            )
            .await
    }
}
