//! Compaction off the apply thread and auto-compaction (etcd's `scheduleCompaction` and
//! `server/etcdserver/api/v3compactor`).
//!
//! Physical compaction: the apply of a Compaction entry runs only the logical part
//! (`Store::compact_logical`, in the batch's transaction) and queues the job; one thread
//! runs the jobs in apply order in steps of `DEFAULT_COMPACTION_BATCH_LIMIT` rows, each
//! its own backend transaction, so writes interleave with a huge compaction. When a job
//! finishes, its revision is published on a watch (what `physical: true` waits for).
//!
//! Auto-compaction, on the leader only, proposes an ordinary Compaction:
//! - revision mode: every `interval` (etcd: 5 minutes), compact at
//!   `current revision - retention` if that is newer than the last one proposed;
//! - periodic mode (retention `P`): every `min(P, 1h) / 10` sample the revision; once `P`
//!   has passed since start and then every `min(P, 1h)`, compact at the newest revision
//!   sampled at least `P` ago (etcd 3.4's periodic compactor).
//!
//! Invariants: jobs queued before a Raft snapshot install (epoch change) are dropped; the
//! store redoes an unfinished compaction when it opens. A compaction refused because it
//! was already done (`Compacted`) is not an error for the auto-compactor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::CompactionRequest;
use oxcd_api::EtcdError;
use oxcd_mvcc::compaction::{CompactJob, DEFAULT_COMPACTION_BATCH_LIMIT};
use oxcd_mvcc::Store;
use tokio::sync::watch;

use crate::raft_node::fatal;
use crate::server::EtcdServer;

/// etcd's revision-mode check interval (`revInterval`).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// `--auto-compaction-mode` with its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history.
    Periodic(Duration),
    /// Keep this many revisions; checked every `interval`.
    Revision { retention: u64, interval: Duration },
}

/// A queued physical compaction and the snapshot epoch it was scheduled in.
pub struct QueuedJob {
    pub job: CompactJob,
    pub epoch: u64,
}

/// Shared between the apply thread and the compaction thread.
#[derive(Default)]
pub struct CompactionState {
    /// Bumped by every Raft snapshot install.
    pub epoch: AtomicU64,
}

/// Starts the thread that runs queued jobs; returns the watch of finished revisions.
pub fn spawn_physical(
    store: Arc<Store>,
    state: Arc<CompactionState>,
    rx: Receiver<QueuedJob>,
    finished: watch::Sender<i64>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("compaction".into())
        .spawn(move || {
            while let Ok(mut q) = rx.recv() {
                loop {
                    if q.epoch != state.epoch.load(Ordering::Acquire) {
                        tracing::info!(rev = q.job.revision(), "compaction dropped: snapshot installed");
                        break;
                    }
                    match store.compact_step(&mut q.job, DEFAULT_COMPACTION_BATCH_LIMIT) {
                        Ok(true) => {
                            // The freed pages count for the quota at once (see `quota`).
                            if let Err(e) = store.backend().refresh_size_in_use() {
                                tracing::warn!(error = %e, "measuring the backend after compaction");
                            }
                            finished.send_replace(q.job.revision());
                            break;
                        }
                        Ok(false) => std::thread::yield_now(),
                        Err(e) => fatal(&format!("physical compaction: {e}")),
                    }
                }
            }
        })?;
    Ok(())
}

/// Starts the auto-compactor.
pub fn spawn_auto(server: Arc<EtcdServer>, mode: AutoCompaction) {
    tokio::spawn(async move {
        let stopped = server.leases().stopped();
        tokio::pin!(stopped);
        let step = match mode {
            AutoCompaction::Revision { interval, .. } => interval,
            AutoCompaction::Periodic(p) => p.min(Duration::from_secs(3600)) / 10,
        }
        .max(Duration::from_millis(10));
        let start = Instant::now();
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut last_compaction: Option<Instant> = None;
        let mut last_rev = 0i64;
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let rev = server.current_revision();
            let target = match mode {
                AutoCompaction::Revision { retention, .. } => rev - retention as i64,
                AutoCompaction::Periodic(p) => {
                    samples.push_back((now, rev));
                    while samples.len() > 1 && now.duration_since(samples[1].0) >= p {
                        samples.pop_front();
                    }
                    let every = p.min(Duration::from_secs(3600));
                    let due = match last_compaction {
                        None => now.duration_since(start) >= p,
                        Some(t) => now.duration_since(t) >= every,
                    };
                    match samples.front() {
                        Some(&(t, r)) if due && now.duration_since(t) >= p => r,
                        _ => continue,
                    }
                }
            };
            if !server.status.is_leader.load(Ordering::Acquire) || target <= 0 || target <= last_rev
            {
                continue;
            }
            let req = CompactionRequest {
                revision: target,
                physical: false,
            };
            match server.compact(req).await {
                Ok(_) | Err(EtcdError::Compacted) => {
                    tracing::info!(revision = target, ?mode, "auto-compaction proposed");
                    last_rev = target;
                    last_compaction = Some(now);
                }
                Err(e) => tracing::warn!(revision = target, error = %e, "auto-compaction failed"),
            }
        }
    });
}
