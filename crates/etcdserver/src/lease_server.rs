//! The Lease half of `EtcdServer` (etcd's `v3_server.go` Lease* methods): grant and revoke
//! go through Raft; renew, time-to-live and list are answered by the leader's lessor.
//!
//! Invariants:
//! - A LeaseGrant without an id gets one here, before it is proposed, so every member
//!   applies the same id (etcd: `reqIDGen.Next() & (1<<63 - 1)`).
//! - Renew and time-to-live wait (bounded) until this member has applied everything
//!   committed, so a lease granted or checkpointed just before is seen.
//! - A renew of an expired lease waits (bounded by the request timeout) until its revoke
//!   lands and then reports "not found", as etcd's does.
//! - Every wait here is bounded in time; stopping the [`LeaseHub`] ends keep-alive streams
//!   and the leader loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::EtcdError;
use oxcd_lease::{Lessor, RenewError};
use tokio::sync::watch;

use crate::apply::Applied;
use crate::server::EtcdServer;

/// etcd's `applyTimeout` for `waitAppliedIndex`.
const APPLY_WAIT: Duration = Duration::from_secs(1);
/// Poll interval while a renew waits for an expired lease's revoke or for promotion.
const RENEW_POLL: Duration = Duration::from_millis(20);

/// The server's lease state: the lessor and a stop signal for lease tasks.
pub struct LeaseHub {
    pub lessor: Arc<Lessor>,
    stop_tx: watch::Sender<bool>,
}

impl LeaseHub {
    pub fn new(lessor: Arc<Lessor>) -> LeaseHub {
        LeaseHub {
            lessor,
            stop_tx: watch::channel(false).0,
        }
    }

    /// Ends keep-alive streams and the leader loop (at shutdown).
    pub fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    /// Resolves once [`LeaseHub::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_tx.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

fn unexpected() -> EtcdError {
    EtcdError::Internal("apply returned a response of another kind".into())
}

impl EtcdServer {
    pub(crate) fn lessor(&self) -> &Lessor {
        &self.leases.lessor
    }

    /// The revision headers of lease replies carry (etcd's `KV().Rev()`).
    fn lease_header_rev(&self) -> i64 {
        self.store.published_revision()
    }

    pub async fn lease_grant(
        &self,
        mut req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        self.check_not_learner()?;
        for _ in 0..16 {
            if req.id != 0 {
                break;
            }
            req.id = (self.next_request_id() & ((1 << 63) - 1)) as i64;
        }
        match self.propose(Request::LeaseGrant(req)).await? {
            Applied::LeaseGrant(mut r) => {
                let rev = r.header.as_ref().map_or(0, |h| h.revision);
                r.header = Some(self.header(rev));
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn lease_revoke(
        &self,
        info: &oxcd_auth::AuthInfo,
        req: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, EtcdError> {
        self.check_not_learner()?;
        match self.propose_as(info, Request::LeaseRevoke(req)).await? {
            Applied::LeaseRevoke(mut r) => {
                let rev = r.header.as_ref().map_or(0, |h| h.revision);
                r.header = Some(self.header(rev));
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    /// Proposes remaining TTLs (the leader's checkpointer).
    pub(crate) async fn lease_checkpoint(
        &self,
        checkpoints: Vec<LeaseCheckpoint>,
    ) -> Result<(), EtcdError> {
        let req = LeaseCheckpointRequest { checkpoints };
        match self.propose(Request::LeaseCheckpoint(req)).await? {
            Applied::LeaseCheckpoint => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// etcd's `waitAppliedIndex`: until everything committed now is applied (bounded).
    async fn wait_applied_index(&self) -> Result<(), EtcdError> {
        let commit = self.status.commit();
        if self.applied.load(Ordering::Acquire) >= commit {
            return Ok(());
        }
        let mut rx = self.applied_rx.clone();
        let waited = tokio::time::timeout(APPLY_WAIT, async move {
            rx.wait_for(|a| *a >= commit).await.map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::Timeout),
        }
    }

    fn is_leader(&self) -> bool {
        self.status.is_leader.load(Ordering::Acquire)
    }

    /// etcd's `LeaseRenew` on the leader: the lease's TTL, or `LeaseNotFound`.
    pub async fn lease_renew(&self, id: i64) -> Result<i64, EtcdError> {
        self.check_not_learner()?;
        let deadline = Instant::now() + self.settings.request_timeout;
        let max_polls = self.settings.request_timeout.as_millis() / RENEW_POLL.as_millis() + 2;
        for _ in 0..max_polls {
            if !self.is_leader() {
                // etcd forwards a renew to the leader.
                return self.leader_channel.renew(self, id).await;
            }
            self.wait_applied_index().await?;
            match self.lessor().renew(id) {
                Ok(ttl) => return Ok(ttl),
                Err(RenewError::NotFound) => return Err(EtcdError::LeaseNotFound),
                Err(RenewError::ClearCheckpoint) => {
                    self.lease_checkpoint(vec![LeaseCheckpoint {
                        id,
                        remaining_ttl: 0,
                    }])
                    .await?;
                }
                Err(RenewError::Expired) | Err(RenewError::NotPrimary) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(RENEW_POLL).await;
                }
            }
        }
        Err(EtcdError::Timeout)
    }

    /// etcd's `LeaseTimeToLive`: remaining seconds and granted TTL, keys if asked; a
    /// missing lease answers TTL -1 (not an error), as etcd's gRPC layer does.
    pub async fn lease_time_to_live(
        &self,
        info: &oxcd_auth::AuthInfo,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.check_not_learner()?;
        if req.keys {
            // Checked against this member's lessor (every member attaches the same keys)
            // before the request may be forwarded to the leader.
            let keys = crate::apply_auth::LessorKeys(self.lessor());
            self.auth
                .check_lease_time_to_live(info, &oxcd_auth::LeaseKeys::lease_keys(&keys, req.id))?;
        }
        if !self.is_leader() {
            let mut r = self.leader_channel.time_to_live(self, req).await?;
            r.header = Some(self.header(self.lease_header_rev()));
            return Ok(r);
        }
        {
            self.wait_applied_index().await?;
            // Just after an election the lessor is promoted when the leader's first entry
            // applies; give it that moment.
            for _ in 0..50 {
                if self.lessor().is_primary() || !self.is_leader() {
                    break;
                }
                tokio::time::sleep(RENEW_POLL).await;
            }
        }
        let header = Some(self.header(self.lease_header_rev()));
        Ok(match self.lessor().time_to_live(req.id, req.keys) {
            Some(t) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            },
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        })
    }

    /// etcd's `LeaseLeases`: every lease id.
    pub fn lease_leases(&self) -> LeaseLeasesResponse {
        LeaseLeasesResponse {
            header: Some(self.header(self.lease_header_rev())),
            leases: self
                .lessor()
                .leases()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }
    }
}
