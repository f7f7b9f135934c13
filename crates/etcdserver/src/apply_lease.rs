//! The apply loop's lease work (etcd's `applierV3backend.Lease*` and the lease checks of
//! `Put`/`Txn`): grant, revoke and checkpoint entries; the "requested lease not found"
//! checks; key attachment from each write txn's events; rebuilding attachments from the
//! key-value store at start.
//!
//! Invariants:
//! - A revoke deletes every attached key in one write txn (one revision) and deletes the
//!   lease record in the same backend transaction, so every member deletes the same keys
//!   at the same revision.
//! - A put naming a lease is checked against the lessor at apply time, before any op of
//!   its request runs; in a txn only the branches that will run are checked (etcd's
//!   `checkRequestPut`), against the state the txn's compares see.
//! - Storage failures on this path are fatal, as everywhere in the apply loop.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::{
    request_op, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, ResponseHeader, TxnRequest,
};
use oxcd_api::mvccpb::Event;
use oxcd_api::EtcdError;
use oxcd_lease::{LeaseError, Lessor, LessorConfig, MonotonicClock, RangeDeleter, NO_LEASE};
use oxcd_mvcc::{RangeOptions, ReadView, Store};
use oxcd_storage::WriteTx;

use crate::apply::{Applied, Applier, ApplyResult};
use crate::apply_guard::request_error;
use crate::raft_node::{fatal, RaftStatus};

/// What the apply loop needs for leases.
pub struct LeaseCtx {
    pub lessor: Arc<Lessor>,
    /// Whether this member leads (read when the new leader's empty entry is applied).
    pub status: Arc<RaftStatus>,
    /// How much longer every lease lives when this member becomes leader (etcd: the
    /// election timeout).
    pub promote_extend: Duration,
}

/// Deletes a revoked lease's keys in one write txn of the MVCC store.
struct KvDeleter<'a> {
    store: &'a Store,
    wtx: &'a mut WriteTx,
    events: Vec<Event>,
}

impl RangeDeleter for KvDeleter<'_> {
    type Error = oxcd_mvcc::Error;

    fn delete_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), oxcd_mvcc::Error> {
        let mut txn = self.store.write(self.wtx)?;
        for k in keys {
            txn.delete_range(k, b"")?;
        }
        self.events = txn.end();
        Ok(())
    }

    fn backend_tx(&mut self) -> &mut WriteTx {
        self.wtx
    }
}

fn header(store: &Store) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: store.current_revision(),
        ..Default::default()
    })
}

/// Lease errors of the request become the client's error; machine failures stop us.
fn lease_err(e: LeaseError) -> EtcdError {
    request_error("applying a lease request", e)
}

/// MVCC errors while checking a request: machine failures stop us.
fn mvcc_err(e: oxcd_mvcc::Error) -> EtcdError {
    request_error("checking a request against the MVCC store", e)
}

impl Applier {
    /// Applies a LeaseGrant.
    pub(crate) fn apply_lease_grant(
        &self,
        wtx: &mut WriteTx,
        r: &LeaseGrantRequest,
    ) -> ApplyResult {
        let ttl = self
            .leases
            .lessor
            .grant(wtx, r.id, r.ttl)
            .map_err(lease_err)?;
        Ok(Applied::LeaseGrant(LeaseGrantResponse {
            header: header(&self.store),
            id: r.id,
            ttl,
            error: String::new(),
        }))
    }

    /// Applies a LeaseRevoke: the keys go in one revision, the record with them.
    pub(crate) fn apply_lease_revoke(
        &self,
        wtx: &mut WriteTx,
        r: &LeaseRevokeRequest,
    ) -> ApplyResult {
        let mut d = KvDeleter {
            store: &self.store,
            wtx,
            events: Vec::new(),
        };
        let keys = self.leases.lessor.revoke(r.id, &mut d).map_err(lease_err)?;
        tracing::debug!(lease = r.id, keys = keys.len(), "revoked lease");
        Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
            header: header(&self.store),
        }))
    }

    /// Applies a LeaseCheckpoint: records each remaining TTL (unknown leases ignored).
    pub(crate) fn apply_lease_checkpoint(
        &self,
        wtx: &mut WriteTx,
        r: &LeaseCheckpointRequest,
    ) -> ApplyResult {
        for c in &r.checkpoints {
            self.leases
                .lessor
                .checkpoint(wtx, c.id, c.remaining_ttl)
                .map_err(lease_err)?;
        }
        Ok(Applied::LeaseCheckpoint)
    }

    /// etcd's Put check: a lease named by a put must exist.
    pub(crate) fn check_put_lease(&self, r: &PutRequest) -> Result<(), EtcdError> {
        if r.lease != NO_LEASE && !self.leases.lessor.exists(r.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        Ok(())
    }

    /// etcd's `checkRequestPut` over the branches `r` will take, for a txn naming a lease:
    /// seen through a write txn of `wtx` that changes nothing (the state the txn's own
    /// compares will see), `ignore_value`/`ignore_lease` need the key and a lease must
    /// exist; the first failing op's error wins. Txns naming no lease are left to the
    /// MVCC applier's own checks.
    pub(crate) fn check_txn_leases(
        &self,
        wtx: &mut WriteTx,
        r: &TxnRequest,
    ) -> Result<(), EtcdError> {
        if !txn_has_lease(r) {
            return Ok(());
        }
        let view = self.store.write(wtx).map_err(mvcc_err)?;
        check_txn(&self.leases.lessor, &view, r)
    }

    /// Attaches and detaches keys as a write txn's events say.
    pub(crate) fn attach_leases(&self, events: &[Event]) {
        self.leases.lessor.apply_events(events);
    }

    /// Rebuilds the lease table from the backend and the MVCC store after a snapshot
    /// replaced them (etcd's `lessor.Recover` in `applySnapshot`). Fatal on failure.
    #[allow(dead_code)] // called by the snapshot install path
    pub(crate) fn reload_leases(&self) {
        let n = match self.leases.lessor.recover(&self.backend) {
            Ok(n) => n,
            Err(e) => fatal(&format!("reloading leases from a snapshot: {e}")),
        };
        match restore_attachments(&self.store, &self.leases.lessor) {
            Ok(keys) => tracing::info!(leases = n, keys, "reloaded leases from a snapshot"),
            Err(e) => fatal(&format!("reattaching keys after a snapshot: {e}")),
        }
    }

    /// Called when the new leader's empty entry is applied: once everything of earlier
    /// terms is applied, the leader's lessor becomes primary (etcd's `Promote` in
    /// `applyEntryNormal`).
    pub(crate) fn on_leader_entry(&self) {
        if self.leases.status.is_leader.load(AtomicOrdering::Acquire) {
            self.leases.lessor.promote(self.leases.promote_extend);
            tracing::info!(leases = self.leases.lessor.len(), "lessor promoted");
        }
    }
}

/// Whether any put in `txn` (either branch, nested txns included) names a lease.
fn txn_has_lease(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(p)) => p.lease != NO_LEASE,
            Some(request_op::Request::RequestTxn(t)) => txn_has_lease(t),
            _ => false,
        })
}

fn check_txn(lessor: &Lessor, view: &dyn ReadView, r: &TxnRequest) -> Result<(), EtcdError> {
    let succeeded = r
        .compare
        .iter()
        .all(|c| oxcd_mvcc::kv_apply::apply_compare(view, c));
    let ops = if succeeded { &r.success } else { &r.failure };
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if p.ignore_value || p.ignore_lease {
                    let rr = view
                        .range(&p.key, b"", RangeOptions::default())
                        .map_err(mvcc_err)?;
                    if rr.kvs.is_empty() {
                        return Err(EtcdError::KeyNotFound);
                    }
                }
                if p.lease != NO_LEASE && !lessor.exists(p.lease) {
                    return Err(EtcdError::LeaseNotFound);
                }
            }
            Some(request_op::Request::RequestTxn(t)) => check_txn(lessor, view, t)?,
            _ => {}
        }
    }
    Ok(())
}

/// The member's lessor at start: settings from the config, every lease record loaded,
/// keys attached from the key-value store. Not primary until this member leads.
pub(crate) fn open_lessor(
    cfg: &crate::bootstrap::NodeConfig,
    backend: &oxcd_storage::Backend,
    store: &Store,
) -> crate::error::Result<Arc<Lessor>> {
    let lcfg = LessorConfig {
        min_ttl: oxcd_lease::min_lease_ttl(cfg.election_ticks, cfg.heartbeat),
        checkpoint_interval: cfg
            .enable_lease_checkpoint
            .then_some(oxcd_lease::DEFAULT_CHECKPOINT_INTERVAL),
        ..Default::default()
    };
    let lessor = Arc::new(Lessor::new(lcfg, Arc::new(MonotonicClock)));
    let n = lessor
        .recover(backend)
        .map_err(|e| crate::error::Error::Corrupt(format!("loading leases: {e}")))?;
    let attached = restore_attachments(store, &lessor)?;
    tracing::info!(leases = n, attached_keys = attached, "lessor recovered");
    Ok(lessor)
}

/// Rebuilds the key -> lease attachments from the key-value store (etcd rebuilds its item
/// map from the kv store on restore), in pages so memory stays bounded. A key naming a
/// lease that does not exist is logged and left alone, as etcd does.
pub(crate) fn restore_attachments(store: &Store, lessor: &Lessor) -> Result<usize, EtcdError> {
    const PAGE: i64 = 10_000;
    let view = store.read().map_err(mvcc_err)?;
    let mut from = vec![0u8];
    let mut attached = 0;
    for _ in 0..usize::MAX {
        let rr = view
            .range(
                &from,
                b"\0",
                RangeOptions {
                    limit: PAGE,
                    ..Default::default()
                },
            )
            .map_err(mvcc_err)?;
        for kv in rr.kvs.iter().filter(|kv| kv.lease != NO_LEASE) {
            match lessor.attach(kv.lease, &kv.key) {
                Ok(()) => attached += 1,
                Err(e) => tracing::error!(
                    key = %String::from_utf8_lossy(&kv.key),
                    lease = format!("{:x}", kv.lease),
                    error = %e,
                    "failed to attach a lease"
                ),
            }
        }
        let Some(last) = rr.kvs.last() else { break };
        if (rr.kvs.len() as i64) < PAGE {
            break;
        }
        from = last.key.clone();
        from.push(0);
    }
    Ok(attached)
}

#[cfg(test)]
#[path = "apply_lease_tests.rs"]
mod tests;
