//! The client against a real etcd (`/usr/bin/etcd` or `$OXCD_TEST_ETCD`). Without an etcd
//! binary each test fails, unless `OXCD_ALLOW_SKIP=1` (never in CI) lets it skip.

use oxcd_client::test_util::{etcd_binary, EtcdProcess};
use oxcd_client::{
    Client, Cmp, CmpOp, DeleteOptions, Error, EventType, GetOptions, Op, PutOptions, Txn,
    WatchOptions,
};
use oxcd_testkit::skip_or_fail;

async fn etcd(test: &str) -> Option<(EtcdProcess, Client)> {
    let Some(bin) = etcd_binary() else {
        skip_or_fail(test, "no etcd binary (/usr/bin/etcd or $OXCD_TEST_ETCD)");
        return None;
    };
    let server = EtcdProcess::start(&bin).await.expect("start etcd");
    let client = Client::connect([server.endpoint()]).await.expect("connect");
    Some((server, client))
}

#[tokio::test]
async fn kv_roundtrip() {
    let Some((_server, c)) = etcd("kv_roundtrip").await else {
        return;
    };
    let put = c.put("a/1", "x", &PutOptions::default()).await.unwrap();
    assert!(put.prev_kv.is_none());
    let put = c
        .put(
            "a/1",
            "y",
            &PutOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(put.prev_kv.unwrap().value, b"x");
    c.put("a/2", "z", &PutOptions::default()).await.unwrap();
    c.put("b", "w", &PutOptions::default()).await.unwrap();

    assert_eq!(c.get("a/1").await.unwrap().unwrap().value, b"y");
    assert!(c.get("nope").await.unwrap().is_none());
    let kvs = c.get_prefix("a/").await.unwrap();
    assert_eq!(
        kvs.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(),
        [&b"a/1"[..], b"a/2"]
    );
    let count = GetOptions {
        count_only: true,
        serializable: true,
        ..GetOptions::prefix()
    };
    assert_eq!(
        c.range("", &count).await.unwrap().count,
        3,
        "\"\" prefix reads everything"
    );

    let del = c
        .delete(
            "a/",
            &DeleteOptions {
                prev_kv: true,
                ..DeleteOptions::prefix()
            },
        )
        .await
        .unwrap();
    assert_eq!(del.deleted, 2);
    assert_eq!(del.prev_kvs.len(), 2);

    let status = c.status().await.unwrap();
    assert!(status.version.starts_with('3'));
    assert_eq!(c.member_list().await.unwrap().members.len(), 1);
    let rev = status.header.unwrap().revision;
    c.compact(rev, false).await.unwrap();
    let old = GetOptions {
        revision: rev - 1,
        ..Default::default()
    };
    let err = c.range("b", &old).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::OutOfRange), "{err}");
}

#[tokio::test]
async fn txn_compare_and_swap() {
    let Some((_server, c)) = etcd("txn_compare_and_swap").await else {
        return;
    };
    let create = || {
        Txn::new()
            .when([Cmp::version("k", CmpOp::Equal, 0)])
            .and_then([Op::put("k", "1", &PutOptions::default())])
            .or_else([Op::get("k", &GetOptions::default())])
    };
    assert!(c.txn(create()).await.unwrap().succeeded);
    let second = c.txn(create()).await.unwrap();
    assert!(!second.succeeded);
    assert_eq!(second.responses.len(), 1);
    let kv = c.get("k").await.unwrap().unwrap();
    let swap = Txn::new()
        .when([Cmp::mod_revision("k", CmpOp::Equal, kv.mod_revision)])
        .and_then([Op::put("k", "2", &PutOptions::default())]);
    assert!(c.txn(swap).await.unwrap().succeeded);
    assert_eq!(c.get("k").await.unwrap().unwrap().value, b"2");
}

#[tokio::test]
async fn lease_grant_keepalive_revoke() {
    let Some((_server, c)) = etcd("lease_grant_keepalive_revoke").await else {
        return;
    };
    let lease = c.lease_grant(30, 0).await.unwrap();
    assert_eq!(lease.ttl, 30);
    c.put(
        "leased",
        "v",
        &PutOptions {
            lease: lease.id,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut ka = c.lease_keep_alive(lease.id).await.unwrap();
    for _ in 0..3 {
        assert_eq!(ka.keep_alive().await.unwrap(), 30);
    }
    let ttl = c.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.keys, vec![b"leased".to_vec()]);
    c.lease_revoke(lease.id).await.unwrap();
    assert!(c.get("leased").await.unwrap().is_none());
    assert!(matches!(ka.keep_alive().await, Err(Error::LeaseExpired(id)) if id == lease.id));
}

#[tokio::test]
async fn watch_prefix_sees_puts_and_deletes() {
    let Some((_server, c)) = etcd("watch_prefix_sees_puts_and_deletes").await else {
        return;
    };
    let (watcher, mut stream) = c.watch("w/", &WatchOptions::prefix()).await.unwrap();
    c.put("w/a", "1", &PutOptions::default()).await.unwrap();
    c.put("other", "1", &PutOptions::default()).await.unwrap();
    c.delete("w/a", &DeleteOptions::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let resp = stream.message().await.unwrap().expect("stream open");
        assert_eq!(resp.watch_id, watcher.watch_id());
        seen.extend(
            resp.events
                .into_iter()
                .map(|e| (e.r#type, e.kv.unwrap().key)),
        );
    }
    assert_eq!(
        seen,
        [
            (EventType::Put as i32, b"w/a".to_vec()),
            (EventType::Delete as i32, b"w/a".to_vec())
        ]
    );
    watcher.cancel(watcher.watch_id()).await.unwrap();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(resp.canceled);
}

#[tokio::test]
async fn connect_errors_are_typed() {
    assert!(matches!(
        Client::connect(Vec::<String>::new()).await,
        Err(Error::NoEndpoints)
    ));
    let port = oxcd_client::test_util::free_port().unwrap();
    let err = Client::connect([format!("127.0.0.1:{port}")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let err = Client::connect(["http://bad host"]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidEndpoint { .. }), "{err}");
}
