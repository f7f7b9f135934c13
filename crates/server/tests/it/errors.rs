//! Exact gRPC status codes and messages for KV errors (raw tonic clients from `oxcd-api`).
//! Runs against oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`).

use crate::common::kvreq::*;
use crate::common::TestServer;
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::response_op::Response;
use oxcd_api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest,
};
use tonic::Code;

const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const TOO_LARGE: &str = "etcdserver: request is too large";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const VALUE_PROVIDED: &str = "etcdserver: value is provided";
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";

#[tokio::test]
async fn empty_key_is_rejected() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    assert_status(
        c.put(put("", "v")).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_status(
        c.range(RangeRequest::default()).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_status(
        c.delete_range(DeleteRangeRequest::default()).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    let txn = TxnRequest {
        success: vec![put_op("", "v")],
        ..Default::default()
    };
    assert_status(c.txn(txn).await, Code::InvalidArgument, KEY_NOT_PROVIDED);
    let txn = TxnRequest {
        failure: vec![get_op("")],
        ..Default::default()
    };
    assert_status(c.txn(txn).await, Code::InvalidArgument, KEY_NOT_PROVIDED);
    assert_eq!(current_rev(&mut c).await, 1, "nothing was written");
}

fn n_puts(n: usize) -> Vec<RequestOp> {
    (0..n).map(|i| put_op(&format!("k{i}"), "v")).collect()
}

#[tokio::test]
async fn too_many_txn_ops_default_limit() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    let ok = c
        .txn(TxnRequest {
            success: n_puts(128),
            ..Default::default()
        })
        .await
        .expect("128 ops are allowed by default")
        .into_inner();
    assert!(ok.succeeded);
    assert_eq!(ok.responses.len(), 128);
    assert_eq!(ok.header.unwrap().revision, 2, "one txn is one revision");
    assert_status(
        c.txn(TxnRequest {
            success: n_puts(129),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    assert_status(
        c.txn(TxnRequest {
            failure: n_puts(129),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    let compares = (0..129).map(|i| cmp_version(&format!("c{i}"), 0)).collect();
    assert_status(
        c.txn(TxnRequest {
            compare: compares,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    assert_eq!(current_rev(&mut c).await, 2);
}

#[tokio::test]
async fn too_many_txn_ops_custom_limit() {
    let s = TestServer::start_with(&["--max-txn-ops", "3"]);
    let mut c = kv(&s).await;
    // The limit applies to compares, success and failure separately.
    let r = c
        .txn(TxnRequest {
            compare: (0..3).map(|i| cmp_version(&format!("c{i}"), 0)).collect(),
            success: n_puts(3),
            failure: n_puts(3),
        })
        .await
        .expect("3 of each is within --max-txn-ops 3")
        .into_inner();
    assert!(r.succeeded);
    assert_status(
        c.txn(TxnRequest {
            success: n_puts(4),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
    assert_status(
        c.txn(TxnRequest {
            compare: (0..4).map(|i| cmp_version(&format!("c{i}"), 0)).collect(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        TOO_MANY_OPS,
    );
}

#[tokio::test]
async fn duplicate_keys_in_txn() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    let dup = |ops: Vec<RequestOp>| TxnRequest {
        success: ops,
        ..Default::default()
    };
    assert_status(
        c.txn(dup(vec![put_op("a", "1"), put_op("a", "2")])).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    // A put inside a deleted range is a duplicate too.
    assert_status(
        c.txn(dup(vec![put_op("b", "1"), del_op("a", "c")])).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    // Duplicates in the failure branch are checked even if it would not run.
    assert_status(
        c.txn(TxnRequest {
            failure: vec![put_op("x", "1"), put_op("x", "2")],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    // Reads of the same key, and a put plus a read of it, are fine.
    let r = c
        .txn(dup(vec![
            get_op("a"),
            get_op("a"),
            put_op("a", "1"),
            get_op("a"),
        ]))
        .await
        .expect("reads do not conflict")
        .into_inner();
    assert_eq!(r.responses.len(), 4);
    match &r.responses[3].response {
        Some(Response::ResponseRange(rr)) => {
            assert_eq!(rr.kvs.len(), 1);
            assert_eq!(rr.kvs[0].value, b"1");
            assert_eq!(rr.kvs[0].mod_revision, 2);
        }
        other => panic!("expected a range response, got {other:?}"),
    }
    // Same key in success and failure branches is fine.
    c.txn(TxnRequest {
        success: vec![put_op("s", "1")],
        failure: vec![put_op("s", "2")],
        ..Default::default()
    })
    .await
    .expect("branches are checked separately");
    assert_eq!(current_rev(&mut c).await, 3);
}

#[tokio::test]
async fn request_too_large() {
    let s = TestServer::start_with(&["--max-request-bytes", "1024"]);
    let mut c = kv(&s).await;
    c.put(put("small", &"x".repeat(512)))
        .await
        .expect("a put under --max-request-bytes works");
    assert_status(
        c.put(put("big", &"x".repeat(4096))).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_status(
        c.put(put("big", &"x".repeat(100 * 1024))).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    let txn = TxnRequest {
        success: (0..4)
            .map(|i| put_op(&format!("t{i}"), &"y".repeat(400)))
            .collect(),
        ..Default::default()
    };
    assert_status(c.txn(txn).await, Code::InvalidArgument, TOO_LARGE);
    let r = c
        .range(RangeRequest {
            key: b"big".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.kvs.is_empty());
    assert_eq!(r.header.unwrap().revision, 2);
}

#[tokio::test]
async fn compacted_and_future_revisions() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    for i in 0..4 {
        c.put(put("k", &format!("v{i}"))).await.unwrap(); // revs 2..=5
    }
    let at = |rev: i64| RangeRequest {
        key: b"k".to_vec(),
        revision: rev,
        ..Default::default()
    };
    assert_status(c.range(at(6)).await, Code::OutOfRange, FUTURE_REV);
    let r = c
        .compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .expect("compact")
        .into_inner();
    assert_eq!(r.header.unwrap().revision, 5);
    assert_status(c.range(at(3)).await, Code::OutOfRange, COMPACTED);
    let r = c
        .range(at(4))
        .await
        .expect("read at the compact rev")
        .into_inner();
    assert_eq!(r.kvs[0].value, b"v2");
    assert_status(
        c.compact(CompactionRequest {
            revision: 4,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        c.compact(CompactionRequest {
            revision: 6,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    // Inside a txn the same errors surface as the txn's status.
    let txn = TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestRange(at(2))),
        }],
        ..Default::default()
    };
    assert_status(c.txn(txn).await, Code::OutOfRange, COMPACTED);
}

#[tokio::test]
async fn put_option_errors() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    let mut p = put("missing", "");
    p.ignore_value = true;
    assert_status(c.put(p).await, Code::InvalidArgument, KEY_NOT_FOUND);
    let mut p = put("missing", "");
    p.ignore_lease = true;
    assert_status(c.put(p).await, Code::InvalidArgument, KEY_NOT_FOUND);
    let mut p = put("missing", "v");
    p.lease = 0x1234_5678;
    assert_status(c.put(p).await, Code::NotFound, LEASE_NOT_FOUND);
    let mut p = put("k", "v");
    p.ignore_value = true;
    assert_status(c.put(p).await, Code::InvalidArgument, VALUE_PROVIDED);
    let mut p = put("k", "");
    p.ignore_lease = true;
    p.lease = 7;
    assert_status(c.put(p).await, Code::InvalidArgument, LEASE_PROVIDED);
    // Inside a txn: ignore_value on a missing key fails the whole txn.
    let mut p = put("missing", "");
    p.ignore_value = true;
    let txn = TxnRequest {
        success: vec![
            put_op("other", "1"),
            RequestOp {
                request: Some(Request::RequestPut(p)),
            },
        ],
        ..Default::default()
    };
    assert_status(c.txn(txn).await, Code::InvalidArgument, KEY_NOT_FOUND);
    assert_eq!(current_rev(&mut c).await, 1, "no error wrote anything");

    // ignore_value on an existing key keeps the value.
    c.put(put("k", "orig")).await.unwrap(); // 2
    let mut p = put("k", "");
    p.ignore_value = true;
    p.prev_kv = true;
    let r = c.put(p).await.unwrap().into_inner(); // 3
    assert_eq!(r.header.unwrap().revision, 3);
    assert_eq!(r.prev_kv.unwrap().value, b"orig");
    let r = c
        .range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.kvs[0].value, b"orig");
    assert_eq!((r.kvs[0].mod_revision, r.kvs[0].version), (3, 2));
}
