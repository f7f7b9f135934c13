//! The backend quota (etcd's `quotaApplierV3` and the NOSPACE alarm it leads to), and the
//! data directory's free disk space, which raises the same alarm.
//!
//! Rules:
//! - A Put, a Txn with puts or a LeaseGrant whose cost (`oxcd_mvcc::cost`) would take the
//!   backend's bytes in use past `--quota-backend-bytes` is refused at apply with
//!   "etcdserver: mvcc: database space exceeded", and this member raises NOSPACE through
//!   Raft.
//! - The same requests are refused before they are proposed, with the same error, while the
//!   data directory's filesystem has less than the reserve free
//!   (`oxcd_storage::quota::disk_reserve_bytes`), and this member raises NOSPACE: a disk
//!   that fills up stops writes through the alarm (every member then refuses them at apply)
//!   instead of failing a WAL write, which would stop the process.
//! - Each member leaves its own NOSPACE once both hold again: its bytes in use are below 90%
//!   of the quota (a compaction freed pages; no defrag needed) and its disk has the
//!   reserve free. Only the member knows its disk, so nobody else disarms its alarm; the
//!   leader disarms the alarms of members no longer in the cluster. An alarm for member id
//!   0 (raised by hand: `Alarm` ACTIVATE naming no member) stays until it is disarmed.
//!
//! Invariants:
//! - The guard never blocks the apply thread: it only wakes the monitor task, which
//!   proposes the alarm.
//! - Requests that cost nothing (reads, deletes, compaction, revoke) always pass, so space
//!   can be freed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxcd_api::etcdserverpb::{AlarmRequest, AlarmType};
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::RequestHeader;
use oxcd_api::EtcdError;
use oxcd_storage::Backend;
use tokio::sync::Notify;

use crate::apply_guard::Guard;
use crate::server::EtcdServer;

/// How often the monitor checks whether NOSPACE can be left.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// etcd's `quotaApplierV3`: refuses requests that grow the backend past the quota.
pub(crate) struct QuotaGuard {
    pub backend: Arc<Backend>,
    pub quota: u64,
    /// Woken when a request was refused (the monitor raises NOSPACE).
    pub exceeded: Arc<Notify>,
}

/// The cost of `req` (etcd's `backendQuota.Cost`).
pub(crate) fn cost(req: &Request) -> u64 {
    match req {
        Request::Put(r) => oxcd_mvcc::cost::cost_put(r),
        Request::Txn(t) => oxcd_mvcc::cost::cost_txn(t),
        Request::LeaseGrant(_) => oxcd_mvcc::cost::cost_lease_grant(),
        _ => 0,
    }
}

impl Guard for QuotaGuard {
    fn check(&self, _: &RequestHeader, req: &Request) -> Result<(), EtcdError> {
        if self.backend.would_exceed(self.quota, cost(req)) {
            self.exceeded.notify_one();
            return Err(EtcdError::NoSpace);
        }
        Ok(())
    }
}

/// Whether the data directory's filesystem is below its free-space reserve. A failing
/// `statvfs` counts as room: the WAL write itself is still checked.
pub(crate) fn disk_low(server: &EtcdServer) -> bool {
    match oxcd_storage::quota::disk_free_bytes(&server.settings.data_dir) {
        Ok(free) => free < server.settings.disk_reserve_bytes,
        Err(e) => {
            tracing::debug!(error = %e, "statvfs of the data dir failed");
            false
        }
    }
}

/// Spawns the monitor: raises NOSPACE for this member when the guard refused a request or
/// the disk is below its reserve, and leaves it once both have room again.
pub fn spawn(server: Arc<EtcdServer>, quota: u64, exceeded: Arc<Notify>) {
    tokio::spawn(async move {
        let stopped = server.leases.stopped();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = exceeded.notified() => raise(&server, "database space exceeded").await,
                _ = tick.tick() => {
                    if disk_low(&server) {
                        raise(&server, "data dir free space below the reserve").await;
                    } else {
                        maybe_disarm(&server, quota).await;
                    }
                }
            }
        }
    });
}

async fn raise(server: &EtcdServer, why: &str) {
    let me = server.member_id;
    if server
        .alarms
        .get(AlarmType::Nospace as i32)
        .iter()
        .any(|m| m.member_id == me)
    {
        return;
    }
    tracing::warn!(
        member_id = format!("{me:x}"),
        data_dir = %server.settings.data_dir.display(),
        reserve = server.settings.disk_reserve_bytes,
        "{why}; raising the NOSPACE alarm"
    );
    let r = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: me,
        alarm: AlarmType::Nospace as i32,
    };
    if let Err(e) = server.alarm(r).await {
        tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
    }
}

/// Called when this member's disk has room: disarms its own NOSPACE once the bytes in use
/// are below 90% of the quota; on the leader, also those of removed members.
async fn maybe_disarm(server: &EtcdServer, quota: u64) {
    let raised = server.alarms.get(AlarmType::Nospace as i32);
    if raised.is_empty() {
        return;
    }
    let below_quota = (server.backend.size_in_use() as u128) * 10 < quota as u128 * 9;
    let leader = server.status.is_leader.load(Ordering::Acquire);
    for m in raised {
        let own = m.member_id == server.member_id;
        // Member id 0 is no member: an alarm an operator raised, left for them to disarm.
        let removed = leader
            && !own
            && m.member_id != 0
            && !server.cluster.read().members.contains_key(&m.member_id);
        if !(removed || own && below_quota) {
            continue;
        }
        tracing::info!(
            member_id = format!("{:x}", m.member_id),
            in_use = server.backend.size_in_use(),
            quota,
            "space available again (below 90% of the quota, disk above its reserve); \
             disarming NOSPACE"
        );
        let r = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id: m.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = server.alarm(r).await {
            tracing::warn!(error = %e, "failed to disarm NOSPACE");
        }
    }
}
