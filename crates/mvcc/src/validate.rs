//! etcd's gRPC-level request checks (`server/etcdserver/api/v3rpc/key.go`), run before a
//! request is proposed or served.
//!
//! Invariants:
//! - Checks only look at the request, never at the store.
//! - Errors are etcd's, in etcd's order: for a txn, the op counts and compare keys first,
//!   then each op (recursively), then the put/delete overlaps of each branch.
//! - Overlap detection mirrors etcd's interval tree: a delete's range is `[key, end)` taken
//!   literally, so a delete ending in `"\0"` ("to the end of the keyspace") is seen as an
//!   empty interval and overlaps no put, as in etcd.

use std::collections::HashSet;

use oxcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::error::{Error, Result};

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// etcd's `checkRangeRequest`.
pub fn check_range_request(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub fn check_put_request(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub fn check_delete_request(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: at most `max_txn_ops` compares, success ops and failure ops
/// (each counted separately; a nested txn gets what its parent leaves), compares with keys,
/// and every op valid. An op with no request is `KeyNotFound`, as in etcd.
pub fn check_txn_request(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(Error::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_request_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: usize) -> Result<()> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range_request(r),
        Some(Request::RequestPut(p)) => check_put_request(p),
        Some(Request::RequestDeleteRange(d)) => check_delete_request(d),
        Some(Request::RequestTxn(t)) => check_txn_request(t, max_txn_ops),
        None => Err(Error::KeyNotFound),
    }
}

/// Everything etcd's kvServer.Txn checks: [`check_txn_request`], then
/// [`check_intervals`] on the success branch and on the failure branch.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    check_txn_request(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// etcd's `checkIntervals` on one branch: `DuplicateKey` if a key is put twice or put
/// inside a deleted range, across nested txns (whose success and failure branches may put
/// the same key, being exclusive).
pub fn check_intervals(ops: &[RequestOp]) -> Result<()> {
    intervals(ops).map(|_| ())
}

/// A deleted range, `[start, end)`, or the single key `start` if `end` is empty.
#[derive(Debug, Clone, Copy)]
struct Deleted<'a> {
    start: &'a [u8],
    end: &'a [u8],
}

impl Deleted<'_> {
    fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            self.start == key
        } else {
            self.start <= key && key < self.end
        }
    }
}

/// The keys put and the ranges deleted by `ops`, nested txns included.
fn intervals(ops: &[RequestOp]) -> Result<(HashSet<&[u8]>, Vec<Deleted<'_>>)> {
    // This level's deletes first, to check the puts of nested txns against them.
    let mut dels: Vec<Deleted<'_>> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                start: &d.key,
                end: &d.range_end,
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Deleted<'_>], k: &[u8]| dels.iter().any(|d| d.contains(k));

    let mut puts: HashSet<&[u8]> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = intervals(&t.success)?;
        let (puts_else, dels_else) = intervals(&t.failure)?;
        for &k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        for &k in &puts_else {
            // A key put by both branches is fine: only one of them runs.
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(Error::DuplicateKey);
            }
            if deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }

    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        let k = p.key.as_slice();
        if puts.contains(k) || deleted(&dels, k) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(k);
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use oxcd_api::etcdserverpb::Compare;

    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn get(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(txn(success, failure))),
        }
    }

    fn cmp(k: &str) -> Compare {
        Compare {
            key: k.into(),
            ..Default::default()
        }
    }

    #[test]
    fn range_request() {
        assert!(matches!(
            check_range_request(&RangeRequest::default()),
            Err(Error::EmptyKey)
        ));
        let ok = RangeRequest {
            key: b"a".to_vec(),
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            ..Default::default()
        };
        assert!(check_range_request(&ok).is_ok());
        for (order, target) in [(99, 0), (0, 99), (-1, 0)] {
            let r = RangeRequest {
                key: b"a".to_vec(),
                sort_order: order,
                sort_target: target,
                ..Default::default()
            };
            assert!(matches!(
                check_range_request(&r),
                Err(Error::InvalidSortOption)
            ));
        }
    }

    #[test]
    fn put_request() {
        let p = |key: &str, value: &str, lease, iv, il| PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ignore_value: iv,
            ignore_lease: il,
            prev_kv: false,
        };
        assert!(matches!(
            check_put_request(&p("", "v", 0, false, false)),
            Err(Error::EmptyKey)
        ));
        assert!(matches!(
            check_put_request(&p("k", "v", 0, true, false)),
            Err(Error::ValueProvided)
        ));
        assert!(matches!(
            check_put_request(&p("k", "", 5, false, true)),
            Err(Error::LeaseProvided)
        ));
        assert!(check_put_request(&p("k", "", 0, true, true)).is_ok());
        assert!(check_put_request(&p("k", "v", 5, false, false)).is_ok());
    }

    #[test]
    fn delete_request() {
        assert!(matches!(
            check_delete_request(&DeleteRangeRequest::default()),
            Err(Error::EmptyKey)
        ));
        assert!(check_delete_request(&DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .is_ok());
    }

    #[test]
    fn txn_request_op_counts() {
        let ops = |n| (0..n).map(|i| get(&format!("k{i}"))).collect::<Vec<_>>();
        assert!(check_txn_request(&txn(ops(3), ops(3)), 3).is_ok());
        assert!(matches!(
            check_txn_request(&txn(ops(4), vec![]), 3),
            Err(Error::TooManyOps)
        ));
        assert!(matches!(
            check_txn_request(&txn(vec![], ops(4)), 3),
            Err(Error::TooManyOps)
        ));
        let mut t = txn(vec![], vec![]);
        t.compare = (0..4).map(|i| cmp(&format!("k{i}"))).collect();
        assert!(matches!(check_txn_request(&t, 3), Err(Error::TooManyOps)));
        // A nested txn gets what its parent leaves: 4 - 2 = 2.
        let t = txn(vec![get("a"), nested(ops(2), vec![])], vec![]);
        assert!(check_txn_request(&t, 4).is_ok());
        let t = txn(vec![get("a"), nested(ops(3), vec![])], vec![]);
        assert!(matches!(check_txn_request(&t, 4), Err(Error::TooManyOps)));
    }

    #[test]
    fn txn_request_keys_and_ops() {
        let mut t = txn(vec![], vec![]);
        t.compare = vec![cmp("a"), cmp("")];
        assert!(matches!(check_txn_request(&t, 128), Err(Error::EmptyKey)));
        // The compare check comes before the ops.
        t.success = vec![RequestOp { request: None }];
        assert!(matches!(check_txn_request(&t, 128), Err(Error::EmptyKey)));

        let t = txn(vec![RequestOp { request: None }], vec![]);
        assert!(matches!(
            check_txn_request(&t, 128),
            Err(Error::KeyNotFound)
        ));
        let t = txn(vec![], vec![put("")]);
        assert!(matches!(check_txn_request(&t, 128), Err(Error::EmptyKey)));
        let t = txn(vec![nested(vec![del("", "")], vec![])], vec![]);
        assert!(matches!(check_txn_request(&t, 128), Err(Error::EmptyKey)));
        let mut bad_sort = get("a");
        if let Some(Request::RequestRange(r)) = &mut bad_sort.request {
            r.sort_order = 99;
        }
        let t = txn(vec![bad_sort], vec![]);
        assert!(matches!(
            check_txn_request(&t, 128),
            Err(Error::InvalidSortOption)
        ));
    }

    fn dup(ops: Vec<RequestOp>) -> bool {
        matches!(check_intervals(&ops), Err(Error::DuplicateKey))
    }

    #[test]
    fn intervals_at_one_level() {
        assert!(!dup(vec![put("a"), put("b"), del("c", "")]));
        assert!(dup(vec![put("a"), put("a")]));
        assert!(dup(vec![put("a"), del("a", "")]));
        assert!(
            dup(vec![del("a", "c"), put("b")]),
            "put inside a deleted range"
        );
        assert!(!dup(vec![del("a", "c"), put("c")]), "the end is exclusive");
        assert!(
            !dup(vec![del("a", "c"), del("b", "d")]),
            "deletes may overlap"
        );
        assert!(!dup(vec![get("a"), put("a")]));
        // As in etcd, a "\0" end is taken literally: it overlaps no put.
        assert!(!dup(vec![del("a", "\0"), put("b")]));
    }

    #[test]
    fn intervals_across_nested_txns() {
        // A nested put under a parent's delete, or a parent's put under a nested delete.
        assert!(dup(vec![del("a", "c"), nested(vec![put("b")], vec![])]));
        assert!(dup(vec![nested(vec![del("a", "c")], vec![]), put("b")]));
        assert!(dup(vec![nested(vec![], vec![del("b", "")]), put("b")]));
        // The same key put by a parent and a nested txn.
        assert!(dup(vec![put("a"), nested(vec![put("a")], vec![])]));
        // Both branches of one nested txn may put the same key.
        assert!(!dup(vec![nested(vec![put("a")], vec![put("a")])]));
        // Two sibling nested txns may not.
        assert!(dup(vec![
            nested(vec![put("a")], vec![]),
            nested(vec![], vec![put("a")]),
        ]));
        // A later sibling's put under an earlier sibling's delete.
        assert!(dup(vec![
            nested(vec![del("a", "z")], vec![]),
            nested(vec![put("m")], vec![]),
        ]));
        // Duplicates inside a nested branch.
        assert!(dup(vec![nested(vec![], vec![put("x"), put("x")])]));
        assert!(!dup(vec![nested(vec![put("x")], vec![del("x", "")])]));
    }

    #[test]
    fn check_txn_checks_each_branch_separately() {
        assert!(check_txn(&txn(vec![put("a")], vec![put("a")]), 128).is_ok());
        assert!(matches!(
            check_txn(&txn(vec![put("a")], vec![put("b"), put("b")]), 128),
            Err(Error::DuplicateKey)
        ));
        assert!(matches!(
            check_txn(&txn(vec![put("a"), put("a"), put("")], vec![]), 128),
            Err(Error::EmptyKey)
        ));
    }
}
