//! Corruption checks (etcd's `corrupt.go`): `--experimental-initial-corrupt-check` compares
//! this member's HashKV with every peer's before it serves clients, and
//! `--experimental-corrupt-check-time` makes the leader compare every member's HashKV with
//! its own periodically, raising the CORRUPT alarm (through Raft) for a member that differs.
//!
//! Invariants:
//! - Hashes are compared only at the same revision and the same compact revision. A peer
//!   that is behind (future revision), has compacted past the revision, or cannot be
//!   reached is skipped with a warning; it never counts as a mismatch.
//! - Peers answer HashKV over the peer service only, to admitted members (`peer.rs`).
//! - The periodic check runs on the leader only, and raises CORRUPT at most once per
//!   member (an active alarm is not proposed again).

use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxcd_api::etcdserverpb::{AlarmRequest, AlarmType, HashKvResponse};
use oxcd_api::EtcdError;

use crate::server::EtcdServer;

/// What one peer said about the revision this member hashed.
#[derive(Debug)]
pub(crate) enum PeerHash {
    Same,
    Differs {
        peer: u64,
        theirs: u32,
        ours: u32,
    },
    /// Not comparable (behind, compacted differently, unreachable): why.
    Skipped {
        peer: u64,
        why: String,
    },
}

impl EtcdServer {
    /// Every other member's verdict on this member's HashKV at its current revision.
    pub(crate) async fn compare_with_peers(
        self: &Arc<Self>,
    ) -> Result<(HashKvResponse, Vec<PeerHash>), EtcdError> {
        let local = self.hash_kv(0).await?;
        let rev = local.hash_revision;
        let peers: Vec<(u64, Vec<String>)> = self
            .cluster
            .read()
            .members
            .values()
            .filter(|m| m.id != self.member_id)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, urls) in peers {
            let verdict = match self.transport.peer_hash_kv(&urls, rev).await {
                Err(why) => PeerHash::Skipped { peer: id, why },
                Ok(p) if p.compact_revision != local.compact_revision => PeerHash::Skipped {
                    peer: id,
                    why: format!(
                        "compact revision {} differs from ours ({})",
                        p.compact_revision, local.compact_revision
                    ),
                },
                Ok(p) if p.hash != local.hash => PeerHash::Differs {
                    peer: id,
                    theirs: p.hash,
                    ours: local.hash,
                },
                Ok(_) => PeerHash::Same,
            };
            out.push(verdict);
        }
        Ok((local, out))
    }

    /// `--experimental-initial-corrupt-check`: `Corrupt` if a peer's hash at our revision
    /// differs from ours (etcd's "found data inconsistency with peers").
    pub async fn initial_corrupt_check(self: &Arc<Self>) -> Result<(), EtcdError> {
        let (local, verdicts) = self.compare_with_peers().await?;
        let mut mismatch = false;
        for v in &verdicts {
            match v {
                PeerHash::Same => {}
                PeerHash::Differs { peer, theirs, ours } => {
                    tracing::error!(
                        revision = local.hash_revision,
                        peer = format!("{peer:x}"),
                        peer_hash = theirs,
                        local_hash = ours,
                        "found data inconsistency with peers"
                    );
                    mismatch = true;
                }
                PeerHash::Skipped { peer, why } => tracing::warn!(
                    peer = format!("{peer:x}"),
                    reason = %why,
                    "initial corruption check: cannot compare with peer"
                ),
            }
        }
        if mismatch {
            return Err(EtcdError::Corrupt);
        }
        tracing::info!(
            revision = local.hash_revision,
            hash = local.hash,
            peers = verdicts.len(),
            "initial corruption checking passed; no corruption was found"
        );
        Ok(())
    }

    /// `--experimental-corrupt-check-time`: on the leader, every `every`, raises CORRUPT for
    /// each member whose hash differs from the leader's.
    pub fn spawn_corrupt_checker(self: &Arc<Self>, every: Duration) {
        let server = self.clone();
        tokio::spawn(async move {
            let stopped = server.leases.stopped();
            tokio::pin!(stopped);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                if server.status.leader() != server.member_id {
                    continue;
                }
                match server.compare_with_peers().await {
                    Ok((_, verdicts)) => server.raise_corrupt(&verdicts).await,
                    Err(e) => tracing::warn!(error = %e, "corruption check: cannot hash locally"),
                }
            }
        });
    }

    async fn raise_corrupt(&self, verdicts: &[PeerHash]) {
        let raised = self.alarms.get(AlarmType::Corrupt as i32);
        for v in verdicts {
            let PeerHash::Differs { peer, theirs, ours } = v else {
                continue;
            };
            if raised.iter().any(|m| m.member_id == *peer) {
                continue;
            }
            tracing::error!(
                peer = format!("{peer:x}"),
                peer_hash = theirs,
                leader_hash = ours,
                "corruption check: member's hash differs from the leader's; raising CORRUPT"
            );
            let r = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: *peer,
                alarm: AlarmType::Corrupt as i32,
            };
            if let Err(e) = self.alarm(r).await {
                tracing::warn!(error = %e, "failed to raise the CORRUPT alarm");
            }
        }
    }
}
