//! The leader's lease loop (etcd's `lessor.runLoop` + `revokeExpiredLeases` +
//! `checkpointScheduledLeases`): every 500 ms, on the leader only,
//! - proposes a LeaseRevoke for each expired lease, at most `LEASE_REVOKE_RATE / 2` per
//!   round (1,000 per second), each in its own task so a slow revoke never stalls the
//!   loop or other writes; a revoke that does not land is retried by the lessor after
//!   its retry interval;
//! - with checkpointing on, proposes the due checkpoints in batches of
//!   `MAX_LEASE_CHECKPOINT_BATCH`.
//!
//! It also demotes the lessor as soon as this member is no longer leader (promotion
//! happens in the apply loop, when the new leader's first entry applies).
//!
//! Invariants: one round does a bounded amount of work; the loop ends when the server's
//! [`crate::lease_server::LeaseHub`] is stopped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::{LeaseCheckpoint, LeaseRevokeRequest};
use oxcd_api::EtcdError;
use oxcd_lease::{LEASE_REVOKE_RATE, MAX_LEASE_CHECKPOINT_BATCH};

use crate::server::EtcdServer;

/// etcd's lessor loop period.
const ROUND: Duration = Duration::from_millis(500);
/// Checkpoint batches per round, at most (etcd: `leaseCheckpointRate / 2`).
const MAX_CHECKPOINT_BATCHES: usize = 500;

/// Spawns the loop on the current runtime.
pub fn spawn(server: Arc<EtcdServer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(server))
}

async fn run(server: Arc<EtcdServer>) {
    let stopped = server.leases.stopped();
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => round(&server),
        }
    }
    tracing::debug!("lessor loop stopped");
}

fn round(server: &Arc<EtcdServer>) {
    let lessor = &server.leases.lessor;
    if lessor.is_primary() && !server.status.is_leader.load(Ordering::Acquire) {
        lessor.demote();
        tracing::info!("lessor demoted: no longer leader");
        return;
    }
    if !lessor.is_primary() {
        return;
    }
    let expired = lessor.find_expired(LEASE_REVOKE_RATE / 2);
    if !expired.is_empty() {
        tracing::debug!(count = expired.len(), "revoking expired leases");
    }
    for id in expired {
        let s = server.clone();
        tokio::spawn(async move {
            match s
                .lease_revoke(&s.auth.root_auth_info(), LeaseRevokeRequest { id })
                .await
            {
                Ok(_) | Err(EtcdError::LeaseNotFound) => {}
                Err(e) => {
                    tracing::warn!(lease = format!("{id:x}"), error = %e, "failed to revoke expired lease")
                }
            }
        });
    }
    if lessor.checkpointing() {
        for _ in 0..MAX_CHECKPOINT_BATCHES {
            let cps = lessor.find_due_checkpoints(MAX_LEASE_CHECKPOINT_BATCH);
            let n = cps.len();
            if n > 0 {
                let s = server.clone();
                let cps: Vec<LeaseCheckpoint> = cps
                    .into_iter()
                    .map(|c| LeaseCheckpoint {
                        id: c.id,
                        remaining_ttl: c.remaining_ttl,
                    })
                    .collect();
                tokio::spawn(async move {
                    if let Err(e) = s.lease_checkpoint(cps).await {
                        tracing::warn!(error = %e, "failed to checkpoint leases");
                    }
                });
            }
            if n < MAX_LEASE_CHECKPOINT_BATCH {
                break;
            }
        }
    }
}
