//! etcd 3.5's applier for the KV requests (`applierV3backend` in
//! `server/etcdserver/apply.go`): Range, Put, DeleteRange, Txn and Compaction over a
//! [`ReadView`] or a [`WriteTxn`].
//!
//! Invariants:
//! - Requests arrive validated ([`crate::validate`]); a lease's existence is checked by the
//!   server before a put reaches this module (no lessor here).
//! - Responses carry a header with only `revision` set; the server fills in the cluster id,
//!   member id and raft term of top-level responses. Nested txn responses carry an empty
//!   header, as etcd's.
//! - A txn evaluates all its compares, nested ones included, against the state before it
//!   runs; then checks the chosen branch (puts with `ignore_value`/`ignore_lease` on missing
//!   keys, ranges at compacted or future revisions) before executing anything, so such a
//!   failure writes nothing; then executes in order within one main revision.
//! - Known gap inherited from etcd: a put with `ignore_value`/`ignore_lease` whose key is
//!   deleted earlier in the same txn by a range ending in `"\0"` (which etcd's interval
//!   check does not see) fails at execution with `KeyNotFound` after the earlier ops were
//!   applied (etcd panics there). The outcome is deterministic on every member.

use std::cmp::Ordering;

use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::response_op::Response;
use oxcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use oxcd_api::mvccpb::KeyValue;
use oxcd_storage::WriteTx;

use crate::error::{Error, Result};
use crate::read::{RangeOptions, ReadView};
use crate::store::Store;
use crate::write::WriteTxn;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

/// etcd's Range over `view`.
pub fn range<V: ReadView + ?Sized>(view: &V, req: &RangeRequest) -> Result<RangeResponse> {
    crate::metrics::RANGE_TOTAL.inc();
    let order = SortOrder::try_from(req.sort_order).map_err(|_| Error::InvalidSortOption)?;
    let target = SortTarget::try_from(req.sort_target).map_err(|_| Error::InvalidSortOption)?;

    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let limit = if order != SortOrder::None || filtered {
        // Fetch everything; sort and truncate afterwards.
        0
    } else if req.limit > 0 {
        // One extra for the `more` flag.
        req.limit.saturating_add(1)
    } else {
        req.limit
    };
    let opts = RangeOptions {
        limit,
        rev: req.revision,
        count_only: req.count_only,
    };
    let rr = view.range(&req.key, &req.range_end, opts)?;
    let mut kvs = rr.kvs;

    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }

    // The store returns kvs in ascending key order: sort by another target ascending by
    // default, and never re-sort by key ascending.
    let order = match (target, order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    let cmp: fn(&KeyValue, &KeyValue) -> Ordering = match target {
        SortTarget::Key => |a, b| a.key.cmp(&b.key),
        SortTarget::Version => |a, b| a.version.cmp(&b.version),
        SortTarget::Create => |a, b| a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => |a, b| a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => |a, b| a.value.cmp(&b.value),
    };
    // Stable sorts: kvs equal on the target stay in key order.
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
    }

    let mut more = false;
    if let Ok(lim) = usize::try_from(req.limit) {
        if lim > 0 && kvs.len() > lim {
            kvs.truncate(lim);
            more = true;
        }
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count,
    })
}

/// etcd's Put in `txn`.
pub fn put(txn: &mut WriteTxn<'_>, req: &PutRequest) -> Result<PutResponse> {
    crate::metrics::PUT_TOTAL.inc();
    let prev = if req.ignore_value || req.ignore_lease || req.prev_kv {
        txn.range(&req.key, b"", RangeOptions::default())?
            .kvs
            .into_iter()
            .next()
    } else {
        None
    };
    let (value, lease) = match &prev {
        Some(p) => (
            if req.ignore_value {
                &p.value
            } else {
                &req.value
            },
            if req.ignore_lease { p.lease } else { req.lease },
        ),
        None if req.ignore_value || req.ignore_lease => return Err(Error::KeyNotFound),
        None => (&req.value, req.lease),
    };
    let rev = txn.put(&req.key, value, lease)?;
    Ok(PutResponse {
        header: header(rev),
        prev_kv: if req.prev_kv { prev } else { None },
    })
}

/// etcd's DeleteRange in `txn`.
pub fn delete_range(
    txn: &mut WriteTxn<'_>,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse> {
    crate::metrics::DELETE_TOTAL.inc();
    let prev_kvs = if req.prev_kv {
        txn.range(&req.key, &req.range_end, RangeOptions::default())?
            .kvs
    } else {
        Vec::new()
    };
    let (deleted, rev) = txn.delete_range(&req.key, &req.range_end)?;
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}

/// Whether a txn only reads (etcd's `isTxnReadonly`): every op of both branches is a
/// range. A read-only txn runs on a read view ([`txn_read`]) without going through raft.
pub fn is_txn_readonly(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| matches!(op.request, Some(Request::RequestRange(_))))
}

/// A txn with writes, in `txn` (the write txn of its raft entry).
pub fn txn(txn: &mut WriteTxn<'_>, req: &TxnRequest) -> Result<TxnResponse> {
    crate::metrics::TXN_TOTAL.inc();
    let mut exec = Writer(txn);
    run_txn(&mut exec, req, !is_txn_readonly(req))
}

/// A read-only txn ([`is_txn_readonly`]) on one snapshot of `store`.
/// [`Error::WriteInReadTxn`] if the txn writes.
pub fn txn_read(store: &Store, req: &TxnRequest) -> Result<TxnResponse> {
    crate::metrics::TXN_TOTAL.inc();
    if !is_txn_readonly(req) {
        return Err(Error::WriteInReadTxn);
    }
    let view = store.read()?;
    run_txn(&mut ReadOnly(&view), req, false)
}

/// etcd's Compaction: compacts `store` at `req.revision` in `wtx`. The header carries the
/// current revision. Waiting for the compaction to be durable (`physical`) is the server's
/// business.
pub fn compaction(
    store: &Store,
    wtx: &mut WriteTx,
    req: &CompactionRequest,
) -> Result<CompactionResponse> {
    store.compact(wtx, req.revision)?;
    Ok(CompactionResponse {
        header: header(store.current_revision()),
    })
}

/// What a txn runs on: a view that can also execute writes (or refuse them).
trait TxnExec {
    fn view(&self) -> &dyn ReadView;
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse>;
    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse>;
    fn changed(&self) -> bool;
}

struct Writer<'t, 'a>(&'t mut WriteTxn<'a>);

impl TxnExec for Writer<'_, '_> {
    fn view(&self) -> &dyn ReadView {
        &*self.0
    }
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        put(self.0, req)
    }
    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        delete_range(self.0, req)
    }
    fn changed(&self) -> bool {
        !self.0.changes().is_empty()
    }
}

struct ReadOnly<'v, V>(&'v V);

impl<V: ReadView> TxnExec for ReadOnly<'_, V> {
    fn view(&self) -> &dyn ReadView {
        self.0
    }
    fn put(&mut self, _: &PutRequest) -> Result<PutResponse> {
        Err(Error::WriteInReadTxn)
    }
    fn delete_range(&mut self, _: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        Err(Error::WriteInReadTxn)
    }
    fn changed(&self) -> bool {
        false
    }
}

/// The branch taken by a txn and by each nested txn of that branch, in order (etcd's
/// `txnPath`, as a tree).
#[derive(Debug)]
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

impl TxnPath {
    fn ops<'r>(&self, req: &'r TxnRequest) -> &'r [RequestOp] {
        if self.succeeded {
            &req.success
        } else {
            &req.failure
        }
    }
}

fn run_txn<E: TxnExec>(exec: &mut E, req: &TxnRequest, is_write: bool) -> Result<TxnResponse> {
    let path = compare_to_path(exec.view(), req);
    if is_write {
        check_requests(exec.view(), req, &path, &check_put)?;
    }
    check_requests(exec.view(), req, &path, &check_range)?;
    let mut resp = apply_txn(exec, req, &path)?;
    let rev = exec.view().rev();
    resp.header = header(if exec.changed() { rev + 1 } else { rev });
    Ok(resp)
}

fn compare_to_path(view: &dyn ReadView, req: &TxnRequest) -> TxnPath {
    let succeeded = req.compare.iter().all(|c| apply_compare(view, c));
    let mut path = TxnPath {
        succeeded,
        nested: Vec::new(),
    };
    for op in path.ops(req) {
        if let Some(Request::RequestTxn(t)) = &op.request {
            path.nested.push(compare_to_path(view, t));
        }
    }
    path
}

/// Whether the compare holds for every key in its range (etcd's `applyCompare`). A missing
/// key compares as an empty kv (version, revisions and lease 0), except that a value
/// compare on missing keys is false.
pub fn apply_compare(view: &dyn ReadView, c: &Compare) -> bool {
    let Ok(rr) = view.range(&c.key, &c.range_end, RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

/// etcd's `compareKV`: an unknown target compares equal, an unknown result holds.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let int = |v: Option<i64>| v.unwrap_or(0);
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int(match c.target_union {
            Some(TargetUnion::CreateRevision(r)) => Some(r),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int(match c.target_union {
            Some(TargetUnion::ModRevision(r)) => Some(r),
            _ => None,
        })),
        Ok(CompareTarget::Version) => kv.version.cmp(&int(match c.target_union {
            Some(TargetUnion::Version(v)) => Some(v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int(match c.target_union {
            Some(TargetUnion::Lease(l)) => Some(l),
            _ => None,
        })),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

type CheckFn = dyn Fn(&dyn ReadView, &RequestOp) -> Result<()>;

/// Runs `check` on every non-txn op of the branches `path` takes (etcd's `checkRequests`).
fn check_requests(
    view: &dyn ReadView,
    req: &TxnRequest,
    path: &TxnPath,
    check: &CheckFn,
) -> Result<()> {
    let mut nested = path.nested.iter();
    for op in path.ops(req) {
        match &op.request {
            Some(Request::RequestTxn(t)) => {
                let p = nested.next().ok_or_else(path_mismatch)?;
                check_requests(view, t, p, check)?;
            }
            _ => check(view, op)?,
        }
    }
    Ok(())
}

/// etcd's `checkRequestPut`: `ignore_value`/`ignore_lease` need the key to exist.
fn check_put(view: &dyn ReadView, op: &RequestOp) -> Result<()> {
    let Some(Request::RequestPut(p)) = &op.request else {
        return Ok(());
    };
    if p.ignore_value || p.ignore_lease {
        let rr = view.range(&p.key, b"", RangeOptions::default())?;
        if rr.kvs.is_empty() {
            return Err(Error::KeyNotFound);
        }
    }
    Ok(())
}

/// etcd's `checkRequestRange`: the revision must be neither future nor compacted.
fn check_range(view: &dyn ReadView, op: &RequestOp) -> Result<()> {
    let Some(Request::RequestRange(r)) = &op.request else {
        return Ok(());
    };
    if r.revision == 0 {
        Ok(())
    } else if r.revision > view.rev() {
        Err(Error::FutureRev)
    } else if r.revision < view.first_rev() {
        Err(Error::Compacted)
    } else {
        Ok(())
    }
}

fn path_mismatch() -> Error {
    Error::Corrupt("txn path does not match the txn request".into())
}

/// Executes the branch `path` takes, in order (etcd's `applyTxn`).
fn apply_txn<E: TxnExec>(exec: &mut E, req: &TxnRequest, path: &TxnPath) -> Result<TxnResponse> {
    let ops = path.ops(req);
    let mut nested = path.nested.iter();
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(exec.view(), r)?)),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(exec.put(p)?)),
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(exec.delete_range(d)?))
            }
            Some(Request::RequestTxn(t)) => {
                let p = nested.next().ok_or_else(path_mismatch)?;
                let mut resp = apply_txn(exec, t, p)?;
                resp.header = Some(ResponseHeader::default());
                Some(Response::ResponseTxn(resp))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: path.succeeded,
        responses,
    })
}

#[cfg(test)]
mod tests;
