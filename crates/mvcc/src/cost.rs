//! The quota cost of a request (etcd's `backendQuota.Cost`, `server/etcdserver/quota.go`),
//! checked with [`oxcd_storage::Backend::would_exceed`].
//!
//! Invariant: only requests that add data cost anything (Put, Txn with puts, LeaseGrant);
//! everything else, deletes and compaction included, costs 0 and passes a full quota.

use oxcd_api::etcdserverpb::{request_op, PutRequest, RequestOp, TxnRequest};
use oxcd_storage::quota::{put_cost, LEASE_OVERHEAD};

/// etcd's `costPut`.
pub fn cost_put(r: &PutRequest) -> u64 {
    put_cost(r.key.len(), r.value.len())
}

/// etcd's `costTxn`: the costlier branch's puts (nested txns cost 0, as in etcd).
pub fn cost_txn(r: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

/// etcd's cost of a LeaseGrant.
pub fn cost_lease_grant() -> u64 {
    LEASE_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn costs_follow_etcd() {
        let p = PutRequest {
            key: b"abc".to_vec(),
            value: vec![0; 100],
            ..Default::default()
        };
        assert_eq!(cost_put(&p), 256 + 103);
        // The costlier branch counts, whichever it is.
        let t = TxnRequest {
            success: vec![put("a", "1")],
            failure: vec![put("c", "123456789"), put("d", "1")],
            ..Default::default()
        };
        assert_eq!(cost_txn(&t), 256 + 10 + 256 + 2);
        let t = TxnRequest {
            success: vec![put("a", "1"), put("b", "22"), put("c", "3")],
            failure: vec![put("c", "123456789")],
            ..Default::default()
        };
        assert_eq!(cost_txn(&t), 3 * 256 + 7);
        assert_eq!(cost_txn(&TxnRequest::default()), 0);
        assert_eq!(cost_lease_grant(), 64);
    }
}
