//! Lease service semantics over raw gRPC (the `oxcd-api` tonic clients): grant rules,
//! attach/detach through Put and Txn, revoke in one revision, keep-alive streams carrying
//! many leases, time-to-live and list, expiry. Runs against oxcd (default) or etcd
//! (`OXCD_TEST_SERVER=etcd`); every wait is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::kvreq::*;
use crate::common::{channel, TestServer};
use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tonic::transport::Channel;
use tonic::Code;

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

async fn clients(s: &TestServer) -> (LeaseClient<Channel>, KvClient<Channel>) {
    let ch = channel(s).await;
    (LeaseClient::new(ch.clone()), KvClient::new(ch))
}

async fn grant(l: &mut LeaseClient<Channel>, id: i64, ttl: i64) -> i64 {
    l.lease_grant(LeaseGrantRequest { id, ttl })
        .await
        .unwrap()
        .into_inner()
        .id
}

fn put_lease(key: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put(key, "v")
    }
}

async fn ttl_keys(l: &mut LeaseClient<Channel>, id: i64) -> (i64, i64, BTreeSet<Vec<u8>>) {
    let r = l
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    (r.ttl, r.granted_ttl, r.keys.into_iter().collect())
}

async fn get_lease(kv: &mut KvClient<Channel>, key: &str) -> Option<i64> {
    kv.range(RangeRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .kvs
    .first()
    .map(|kv| kv.lease)
}

fn keys(ks: &[&str]) -> BTreeSet<Vec<u8>> {
    ks.iter().map(|k| k.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn grant_rules() {
    let s = TestServer::start();
    let (mut l, _) = clients(&s).await;
    // Server-chosen ids are positive and distinct.
    let r = l
        .lease_grant(LeaseGrantRequest { id: 0, ttl: 60 })
        .await
        .unwrap()
        .into_inner();
    assert!(r.id > 0);
    assert_eq!(r.ttl, 60);
    assert!(r.header.unwrap().revision >= 1);
    let r2 = grant(&mut l, 0, 60).await;
    assert!(r2 > 0 && r2 != r.id);
    // Client-chosen id; a second grant of it is LeaseExist.
    let r = l
        .lease_grant(LeaseGrantRequest { id: 4242, ttl: 30 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.id, r.ttl), (4242, 30));
    assert_status(
        l.lease_grant(LeaseGrantRequest { id: 4242, ttl: 30 }).await,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );
    // TTLs below the minimum (2 s with the default election settings) are raised.
    for ttl in [1, 0, -5] {
        let r = l
            .lease_grant(LeaseGrantRequest { id: 0, ttl })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.ttl, 2, "ttl {ttl}");
    }
    assert_status(
        l.lease_grant(LeaseGrantRequest {
            id: 0,
            ttl: 9_000_000_001,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: too large lease TTL",
    );
    let r = l
        .lease_grant(LeaseGrantRequest {
            id: 77,
            ttl: 9_000_000_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.ttl, 9_000_000_000);
    // Listing sees them all; time-to-live of a missing lease is TTL -1, not an error.
    let ids: BTreeSet<i64> = l
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner()
        .leases
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(ids.contains(&4242) && ids.contains(&77) && ids.contains(&r2));
    assert_eq!(ids.len(), 7);
    let t = l
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: 999,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((t.id, t.ttl, t.granted_ttl, t.keys.len()), (999, -1, 0, 0));
    let t = l
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: 4242,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.granted_ttl, 30);
    assert!((28..=30).contains(&t.ttl), "{t:?}");
}

#[tokio::test]
async fn put_attaches_ignore_lease_keeps_and_missing_lease_fails() {
    let s = TestServer::start();
    let (mut l, mut kv) = clients(&s).await;
    let a = grant(&mut l, 0, 100).await;
    let b = grant(&mut l, 0, 100).await;
    let rev0 = current_rev(&mut kv).await;
    assert_status(
        kv.put(put_lease("k", 12345)).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(current_rev(&mut kv).await, rev0, "nothing written");
    kv.put(put_lease("k1", a)).await.unwrap();
    kv.put(put_lease("k2", a)).await.unwrap();
    kv.put(put_lease("k3", b)).await.unwrap();
    assert_eq!(ttl_keys(&mut l, a).await.2, keys(&["k1", "k2"]));
    // ignore_lease keeps the key's lease.
    kv.put(PutRequest {
        ignore_lease: true,
        ..put("k1", "new")
    })
    .await
    .unwrap();
    assert_eq!(get_lease(&mut kv, "k1").await, Some(a));
    // Re-put with another lease moves it; without a lease detaches it.
    kv.put(put_lease("k2", b)).await.unwrap();
    kv.put(put("k3", "plain")).await.unwrap();
    assert_eq!(ttl_keys(&mut l, a).await.2, keys(&["k1"]));
    assert_eq!(ttl_keys(&mut l, b).await.2, keys(&["k2"]));
    assert_eq!(get_lease(&mut kv, "k3").await, Some(0));
    // A deleted key is detached: revoking b later must not touch a recreated k2.
    kv.delete_range(oxcd_api::etcdserverpb::DeleteRangeRequest {
        key: "k2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(ttl_keys(&mut l, b).await.2.is_empty());
    kv.put(put("k2", "again")).await.unwrap();
    l.lease_revoke(LeaseRevokeRequest { id: b }).await.unwrap();
    assert_eq!(get_lease(&mut kv, "k2").await, Some(0));
}

fn txn_put(key: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put_lease(key, lease))),
    }
}

fn cmp_exists(key: &str) -> Compare {
    Compare {
        result: CompareResult::Greater as i32,
        target: CompareTarget::Create as i32,
        key: key.into(),
        target_union: Some(TargetUnion::CreateRevision(0)),
        range_end: vec![],
    }
}

#[tokio::test]
async fn txn_checks_only_the_branch_that_runs() {
    let s = TestServer::start();
    let (mut l, mut kv) = clients(&s).await;
    let a = grant(&mut l, 0, 100).await;
    kv.put(put("exists", "1")).await.unwrap();
    let rev0 = current_rev(&mut kv).await;
    // The branch that runs names a missing lease: nothing at all is applied.
    assert_status(
        kv.txn(TxnRequest {
            compare: vec![cmp_exists("exists")],
            success: vec![txn_put("t1", a), txn_put("t2", 999)],
            failure: vec![],
        })
        .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(current_rev(&mut kv).await, rev0);
    // The missing lease is in the branch that does not run: fine.
    let r = kv
        .txn(TxnRequest {
            compare: vec![cmp_exists("exists")],
            success: vec![txn_put("t1", a)],
            failure: vec![txn_put("t2", 999)],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.succeeded);
    assert_eq!(ttl_keys(&mut l, a).await.2, keys(&["t1"]));
    // Nested txns are checked by their own compares.
    let nested = |lease: i64| RequestOp {
        request: Some(Request::RequestTxn(TxnRequest {
            compare: vec![cmp_exists("missing")],
            success: vec![txn_put("n1", 999)],
            failure: vec![txn_put("n2", lease)],
        })),
    };
    kv.txn(TxnRequest {
        compare: vec![],
        success: vec![nested(a)],
        failure: vec![],
    })
    .await
    .unwrap();
    assert_eq!(ttl_keys(&mut l, a).await.2, keys(&["n2", "t1"]));
    assert_status(
        kv.txn(TxnRequest {
            compare: vec![],
            success: vec![nested(555)],
            failure: vec![],
        })
        .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
}

#[tokio::test]
async fn revoke_deletes_every_key_in_one_revision() {
    let s = TestServer::start();
    let (mut l, mut kv) = clients(&s).await;
    let a = grant(&mut l, 0, 100).await;
    for k in ["r1", "r2", "r3"] {
        kv.put(put_lease(k, a)).await.unwrap();
    }
    kv.put(put("other", "x")).await.unwrap();
    let rev0 = current_rev(&mut kv).await;
    let r = l
        .lease_revoke(LeaseRevokeRequest { id: a })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.header.unwrap().revision, rev0 + 1);
    assert_eq!(current_rev(&mut kv).await, rev0 + 1);
    for k in ["r1", "r2", "r3"] {
        assert_eq!(get_lease(&mut kv, k).await, None, "{k}");
    }
    assert_eq!(get_lease(&mut kv, "other").await, Some(0));
    assert_status(
        l.lease_revoke(LeaseRevokeRequest { id: a }).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(ttl_keys(&mut l, a).await.0, -1);
    // A lease without keys: the revision does not move.
    let b = grant(&mut l, 0, 100).await;
    let r = l
        .lease_revoke(LeaseRevokeRequest { id: b })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.header.unwrap().revision, rev0 + 1);
}

#[tokio::test]
async fn keep_alive_stream_serves_many_leases() {
    let s = TestServer::start();
    let (mut l, _) = clients(&s).await;
    let ids = [
        grant(&mut l, 0, 10).await,
        grant(&mut l, 0, 20).await,
        grant(&mut l, 0, 30).await,
    ];
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let send_round = |tx: tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>| async move {
        for id in ids.iter().copied().chain([424242]) {
            tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        }
    };
    // etcd sends the response headers with the first answer: queue requests first.
    send_round(tx.clone()).await;
    let mut stream = l
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for round in 0..3 {
        if round > 0 {
            send_round(tx.clone()).await;
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("keep-alive answer")
                .unwrap()
                .unwrap();
            assert!(r.header.is_some());
            got.push((r.id, r.ttl));
        }
        assert_eq!(
            got,
            vec![(ids[0], 10), (ids[1], 20), (ids[2], 30), (424242, 0)],
            "round {round}"
        );
    }
    drop(tx);
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
    assert!(matches!(end, Ok(Ok(None))), "{end:?}");
}

/// Polls until `key` is gone; returns how long it took.
async fn wait_gone(kv: &mut KvClient<Channel>, key: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if get_lease(kv, key).await.is_none() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} still there after {limit:?}");
}

#[tokio::test]
async fn expiry_removes_keys_and_keep_alive_prevents_it() {
    let s = TestServer::start();
    let (mut l, mut kv) = clients(&s).await;
    let short = grant(&mut l, 0, 2).await;
    let kept = grant(&mut l, 0, 2).await;
    kv.put(put_lease("short", short)).await.unwrap();
    kv.put(put_lease("kept", kept)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // etcd sends the response headers with the first answer: queue a request first.
    tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
    let mut stream = l
        .clone()
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut short_gone = false;
    let mut first = true;
    while Instant::now() < deadline {
        if !first {
            tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
        }
        first = false;
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!(r.ttl, 2);
        short_gone |= get_lease(&mut kv, "short").await.is_none();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(short_gone, "the lease without keep-alives expired");
    assert_eq!(get_lease(&mut kv, "kept").await, Some(kept));
    // Its time-to-live is that of a renewed lease.
    let (ttl, granted, ks) = ttl_keys(&mut l, kept).await;
    assert!((0..=2).contains(&ttl) && granted == 2, "{ttl} {granted}");
    assert_eq!(ks, keys(&["kept"]));
    drop(tx);
    wait_gone(&mut kv, "kept", Duration::from_secs(8)).await;
    // An expired lease answers TTL 0 on a keep-alive stream.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
    let mut stream = l
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let r = stream.message().await.unwrap().unwrap();
    assert_eq!((r.id, r.ttl), (kept, 0));
}
