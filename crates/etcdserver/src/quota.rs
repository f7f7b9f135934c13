//! The backend quota (etcd's `quotaApplierV3` and the NOSPACE alarm it leads to).
//!
//! Rule: a Put, a Txn with puts or a LeaseGrant whose cost (`oxcd_mvcc::cost`) would take
//! the backend's bytes in use past `--quota-backend-bytes` is refused at apply with
//! "etcdserver: mvcc: database space exceeded", and this member raises NOSPACE through
//! Raft. Once the leader's bytes in use fall below 90% of the quota (a compaction freed
//! pages; no defrag needed) the leader disarms every NOSPACE alarm through Raft.
//!
//! Invariants:
//! - The guard never blocks the apply thread: it only wakes the monitor task, which
//!   proposes the alarm.
//! - Requests that cost nothing (reads, deletes, compaction, revoke) always pass.

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
fn cost(req: &Request) -> u64 {
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

/// Spawns the monitor: raises NOSPACE for this member when the guard refused a request,
/// and, on the leader, disarms NOSPACE once the bytes in use are below 90% of the quota.
pub fn spawn(server: Arc<EtcdServer>, quota: u64, exceeded: Arc<Notify>) {
    tokio::spawn(async move {
        let stopped = server.leases.stopped();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = exceeded.notified() => raise(&server).await,
                _ = tick.tick() => maybe_disarm(&server, quota).await,
            }
        }
    });
}

async fn raise(server: &EtcdServer) {
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
        "database space exceeded; raising the NOSPACE alarm"
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

async fn maybe_disarm(server: &EtcdServer, quota: u64) {
    if !server.status.is_leader.load(Ordering::Acquire) {
        return;
    }
    let raised = server.alarms.get(AlarmType::Nospace as i32);
    if raised.is_empty() || server.backend.size_in_use() as u128 * 10 >= quota as u128 * 9 {
        return;
    }
    for m in raised {
        tracing::info!(
            member_id = format!("{:x}", m.member_id),
            in_use = server.backend.size_in_use(),
            quota,
            "space freed below 90% of the quota; disarming NOSPACE"
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
