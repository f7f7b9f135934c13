//! Lock and Election services (etcd's `v3lock` and `v3election` gRPC gateways).
//!
//! Invariants:
//! - These are thin wrappers: the server runs the recipe (keys under the lock or election
//!   name, attached to the caller's lease). For the client-side recipes, see
//!   [`crate::concurrency`].
//! - `lock` and `campaign` block server-side until acquired, so they are never retried
//!   (a retry could queue a second waiter under the same lease).

use futures::Stream;
use oxcd_api::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use oxcd_api::v3lockpb::{
    lock_client::LockClient, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};

use crate::transport::Safety;
use crate::{Client, Error, Result};

/// The stream of leaders of [`Client::observe`].
pub type ObserveStream = std::pin::Pin<Box<dyn Stream<Item = Result<LeaderResponse>> + Send>>;

impl Client {
    /// Acquire the distributed lock `name`, holding it with `lease`; returns the lock's
    /// key (pass it to [`Client::unlock`]). Waits until the lock is free.
    pub async fn lock(&self, name: impl Into<Vec<u8>>, lease: i64) -> Result<LockResponse> {
        let req = LockRequest {
            name: name.into(),
            lease,
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                LockClient::new(ch).lock(r).await
            })
            .await
    }

    /// Release a lock by the key [`Client::lock`] returned.
    pub async fn unlock(&self, key: impl Into<Vec<u8>>) -> Result<UnlockResponse> {
        let req = UnlockRequest { key: key.into() };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                LockClient::new(ch).unlock(r).await
            })
            .await
    }

    /// Campaign for leadership of election `name` with `value`; returns once elected.
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        lease: i64,
        value: impl Into<Vec<u8>>,
    ) -> Result<CampaignResponse> {
        let req = CampaignRequest {
            name: name.into(),
            lease,
            value: value.into(),
        };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                ElectionClient::new(ch).campaign(r).await
            })
            .await
    }

    /// As the leader `leader`, publish a new value.
    pub async fn proclaim(
        &self,
        leader: LeaderKey,
        value: impl Into<Vec<u8>>,
    ) -> Result<ProclaimResponse> {
        let req = ProclaimRequest {
            leader: Some(leader),
            value: value.into(),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                ElectionClient::new(ch).proclaim(r).await
            })
            .await
    }

    /// The current leader of election `name` (error `election: no leader` if none).
    pub async fn leader(&self, name: impl Into<Vec<u8>>) -> Result<LeaderResponse> {
        let req = LeaderRequest { name: name.into() };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                ElectionClient::new(ch).leader(r).await
            })
            .await
    }

    /// Every leader of election `name` from now on (the current one first).
    pub async fn observe(&self, name: impl Into<Vec<u8>>) -> Result<ObserveStream> {
        use futures::StreamExt;
        let (_, ch) = self.t.pick();
        let s = ElectionClient::new(ch)
            .observe(LeaderRequest { name: name.into() })
            .await?
            .into_inner();
        Ok(Box::pin(s.map(|r| r.map_err(Error::from))))
    }

    /// Give up leadership `leader`.
    pub async fn resign(&self, leader: LeaderKey) -> Result<ResignResponse> {
        let req = ResignRequest {
            leader: Some(leader),
        };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                ElectionClient::new(ch).resign(r).await
            })
            .await
    }
}
