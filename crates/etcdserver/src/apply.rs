//! The apply loop (etcd's `applierV3` driven by `applyAll`): a thread that applies committed
//! entries, in log order, to the MVCC store and answers the waiting requests.
//!
//! Invariants:
//! - All entries of a batch are applied in one backend transaction, which also records the
//!   consistent index (last applied raft index); entries at or below the stored consistent
//!   index are skipped, so replay after a restart applies nothing twice.
//! - Readers see a batch only after its transaction committed (`Store::publish`), and
//!   waiters are answered only after that, so a client reads its own write.
//! - A backend failure stops the process (see `raft_node::fatal`).
//! - Every `--snapshot-count` applied entries the backend is committed durably and the Raft
//!   thread is told it may compact the log up to there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::{DeleteRangeResponse, PutResponse, TxnResponse};
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::{InternalRequest, RequestHeader};
use oxcd_api::EtcdError;
use oxcd_mvcc::Store;
use oxcd_storage::{Backend, WriteTx};
use parking_lot::RwLock;
use prost::Message;
use raft::eraftpb::{Entry, EntryType};
use tokio::sync::watch;

use crate::alarm::AlarmStore;
use crate::apply_guard::{request_error, Guard};
use crate::membership::RaftCluster;
use crate::raft_node::{fatal, ApplyBatch, RaftMsg};
use crate::wait::Wait;

/// What applying one request produced.
#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction,
    /// A membership change or member update was applied.
    Membership,
    /// This member was removed from the cluster.
    RemovedSelf,
    LeaseGrant(oxcd_api::etcdserverpb::LeaseGrantResponse),
    LeaseRevoke(oxcd_api::etcdserverpb::LeaseRevokeResponse),
    LeaseCheckpoint,
    /// The alarms an Alarm request activated or deactivated.
    Alarm(Vec<oxcd_api::etcdserverpb::AlarmMember>),
    /// An auth request's response, encoded, without header (see `apply_auth`).
    Auth(Vec<u8>),
}

/// The result a waiting request receives.
pub type ApplyResult = Result<Applied, EtcdError>;

/// The apply thread's state.
pub struct Applier {
    pub backend: Arc<Backend>,
    /// `member/snap` (pending snapshot files, see `pending_snapshot`).
    pub snap_dir: std::path::PathBuf,
    pub store: Arc<Store>,
    pub wait: Arc<Wait<ApplyResult>>,
    pub applied: Arc<AtomicU64>,
    pub applied_tx: watch::Sender<u64>,
    pub raft_tx: Sender<RaftMsg>,
    pub cluster: Arc<RwLock<RaftCluster>>,
    pub member_id: u64,
    pub leases: crate::apply_lease::LeaseCtx,
    pub alarms: Arc<AlarmStore>,
    pub auth: Arc<oxcd_auth::AuthStore>,
    /// The applier chain's guards, in order (see `apply_guard`).
    pub guards: Vec<Box<dyn Guard>>,
    /// Physical compaction jobs, run in order by the compaction thread.
    pub compact_tx: Sender<crate::compactor::QueuedJob>,
    pub compaction_state: Arc<crate::compactor::CompactionState>,
    pub snapshot_count: u64,
    /// Applied index at the last log compaction request.
    pub snapshot_index: u64,
}

impl Applier {
    /// Runs until the Raft thread drops its sender; commits the backend durably on exit.
    pub fn run(mut self, rx: Receiver<ApplyBatch>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ApplyBatch::Snapshot { index, rows }) => self.apply_snapshot(index, rows),
                Ok(ApplyBatch::Entries(mut entries)) => {
                    // Merge the entries queued behind into the same backend transaction.
                    let mut next = None;
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            ApplyBatch::Entries(es) => entries.extend(es),
                            snap => {
                                next = Some(snap);
                                break;
                            }
                        }
                    }
                    self.apply_entries(entries);
                    if let Some(ApplyBatch::Snapshot { index, rows }) = next {
                        self.apply_snapshot(index, rows);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.backend.commit_due() {
                        if let Err(e) = self.backend.force_commit() {
                            fatal(&format!("committing backend: {e}"));
                        }
                        crate::metrics::DB_TOTAL_SIZE.set(self.backend.size() as f64);
                        crate::metrics::DB_IN_USE_SIZE.set(self.backend.size_in_use() as f64);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Err(e) = self.backend.force_commit() {
            fatal(&format!("committing backend at shutdown: {e}"));
        }
        tracing::info!(
            applied = self.applied.load(Ordering::Acquire),
            "apply loop stopped"
        );
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        let applied = self.applied.load(Ordering::Acquire);
        let Some(last) = entries.last() else { return };
        if last.index <= applied {
            // All already in the backend (a snapshot brought them), but Raft must still
            // learn of the membership changes among them.
            for e in entries
                .iter()
                .filter(|e| e.get_entry_type() == EntryType::EntryConfChange)
            {
                self.apply_conf_change(None, e);
            }
            return;
        }
        let (last_index, last_term) = (last.index, last.term);
        let mut wtx = match self.backend.write_tx() {
            Ok(t) => t,
            Err(e) => fatal(&format!("opening backend transaction: {e}")),
        };
        let mut results = Vec::new();
        let mut removed_self = false;
        for e in &entries {
            fail::fail_point!("beforeApplyOneEntry");
            if e.index <= applied {
                // Already in the backend (a snapshot brought it), but Raft must still learn
                // of membership changes.
                if e.get_entry_type() == EntryType::EntryConfChange {
                    self.apply_conf_change(None, e);
                }
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if e.data.is_empty() {
                        self.on_leader_entry(); // a new leader's empty entry
                        continue;
                    }
                    match InternalRequest::decode(&e.data[..]) {
                        Ok(req) => {
                            let header = req.header.unwrap_or(RequestHeader {
                                id: req.id,
                                ..Default::default()
                            });
                            let r = self.apply_request(&mut wtx, e.index, &header, req.request);
                            results.push((header.id, r));
                        }
                        Err(err) => fatal(&format!("undecodable raft entry {}: {err}", e.index)),
                    }
                }
                EntryType::EntryConfChange => {
                    if let Some((id, r)) = self.apply_conf_change(Some(&mut wtx), e) {
                        removed_self |= matches!(r, Ok(Applied::RemovedSelf));
                        results.push((id, r));
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    // oxcd proposes only single-step (v1) changes, as etcd does.
                    fatal(&format!("unexpected ConfChangeV2 entry at {}", e.index));
                }
            }
        }
        if let Err(e) = wtx.set_consistent_index(last_index, last_term) {
            fatal(&format!("writing consistent index: {e}"));
        }
        if let Err(e) = self.backend.commit(wtx) {
            fatal(&format!("committing backend: {e}"));
        }
        self.store.publish();
        self.applied.store(last_index, Ordering::Release);
        let _ = self.applied_tx.send(last_index);
        crate::metrics::PROPOSALS_APPLIED.set(last_index as f64);
        for (id, r) in results {
            self.wait.trigger(id, r);
        }
        if removed_self {
            if let Err(e) = self.backend.force_commit() {
                fatal(&format!("committing backend: {e}"));
            }
            tracing::warn!("this member has been permanently removed from the cluster; stopping");
            std::process::exit(0);
        }
        if last_index - self.snapshot_index >= self.snapshot_count {
            self.trigger_snapshot(last_index);
        }
    }

    /// One request through the applier chain: every guard, then the backend apply.
    fn apply_request(
        &self,
        wtx: &mut WriteTx,
        index: u64,
        header: &RequestHeader,
        request: Option<Request>,
    ) -> ApplyResult {
        let Some(request) = request else {
            fatal(&format!(
                "raft entry of request {} has no request",
                header.id
            ));
        };
        for g in &self.guards {
            g.check(header, &request)?;
        }
        self.apply_backend(wtx, index, request)
    }

    /// etcd's `applierV3backend`: the request's effect on the store.
    fn apply_backend(&self, wtx: &mut WriteTx, index: u64, request: Request) -> ApplyResult {
        let result = match request {
            Request::Put(r) => {
                #[cfg(feature = "failpoints")]
                let r = corrupt_for_test(r);
                self.check_put_lease(&r)?;
                self.store.write(wtx).and_then(|mut txn| {
                    let resp = oxcd_mvcc::kv_apply::put(&mut txn, &r);
                    self.attach_leases(&txn.end());
                    resp.map(Applied::Put)
                })
            }
            Request::DeleteRange(r) => self.store.write(wtx).and_then(|mut txn| {
                let resp = oxcd_mvcc::kv_apply::delete_range(&mut txn, &r);
                self.attach_leases(&txn.end());
                resp.map(Applied::DeleteRange)
            }),
            Request::Txn(r) => {
                self.check_txn_leases(wtx, &r)?;
                self.store.write(wtx).and_then(|mut txn| {
                    let resp = oxcd_mvcc::kv_apply::txn(&mut txn, &r);
                    self.attach_leases(&txn.end());
                    resp.map(Applied::Txn)
                })
            }
            Request::LeaseGrant(r) => return self.apply_lease_grant(wtx, &r),
            Request::LeaseRevoke(r) => return self.apply_lease_revoke(wtx, &r),
            Request::LeaseCheckpoint(r) => return self.apply_lease_checkpoint(wtx, &r),
            Request::Compaction(r) => self.store.compact_logical(wtx, r.revision).map(|job| {
                let epoch = self.compaction_state.epoch.load(Ordering::Acquire);
                // Its steps wait for this batch's commit (one writer at a time).
                let _ = self
                    .compact_tx
                    .send(crate::compactor::QueuedJob { job, epoch });
                Applied::Compaction
            }),
            Request::MemberUpdate(m) => return self.apply_member_update(wtx, m),
            Request::Alarm(r) => return self.apply_alarm(wtx, &r),
            auth => return self.apply_auth(wtx, index, auth),
        };
        result.map_err(|e| request_error("applying to the MVCC store", e))
    }

    /// etcd's applier `Alarm`: activate or deactivate through Raft (GET is answered
    /// locally and never proposed).
    fn apply_alarm(
        &self,
        wtx: &mut WriteTx,
        r: &oxcd_api::etcdserverpb::AlarmRequest,
    ) -> ApplyResult {
        use oxcd_api::etcdserverpb::alarm_request::AlarmAction;
        let changed = match r.action() {
            AlarmAction::Activate => self.alarms.activate(wtx, r.member_id, r.alarm),
            AlarmAction::Deactivate => self.alarms.deactivate(wtx, r.member_id, r.alarm),
            AlarmAction::Get => return Ok(Applied::Alarm(self.alarms.get(r.alarm))),
        }
        .map_err(|e| request_error("applying an alarm", e))?;
        if let Some(m) = &changed {
            tracing::warn!(
                member_id = format!("{:x}", m.member_id),
                alarm = ?r.alarm(),
                action = ?r.action(),
                "alarm changed"
            );
        }
        Ok(Applied::Alarm(changed.into_iter().collect()))
    }

    fn trigger_snapshot(&mut self, index: u64) {
        if let Err(e) = self.backend.force_commit() {
            fatal(&format!("committing backend for snapshot: {e}"));
        }
        self.snapshot_index = index;
        let durable = self.backend.durable_index();
        tracing::info!(index, durable, "triggering snapshot");
        let _ = self.raft_tx.send(RaftMsg::Compact(durable));
    }
}

/// Test builds only (`failpoints`): `FAILPOINTS=applyCorruptPut=1*return` makes this member
/// store a put's value with a byte appended, unlike the other members, so the corruption
/// checks have a divergence to find.
#[cfg(feature = "failpoints")]
fn corrupt_for_test(
    mut r: oxcd_api::etcdserverpb::PutRequest,
) -> oxcd_api::etcdserverpb::PutRequest {
    if fail::eval("applyCorruptPut", |_| ()).is_some() {
        r.value.push(b'!');
    }
    r
}
