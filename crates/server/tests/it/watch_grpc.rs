//! Watch service over raw gRPC, against the real binary (oxcd, or etcd with
//! `OXCD_TEST_SERVER=etcd`): created-first, live and historical events, prev_kv, filters,
//! txn atomicity, cancel and refused creates, compaction, resumption, progress (on request
//! and on the `--experimental-watch-progress-notify-interval` timer), fragments, and a
//! stalled watcher that must not block writes or other watchers.

use std::time::{Duration, Instant};

use crate::common::kvreq::{del_op, put_op};
use crate::common::{channel, TestServer};
use crate::watch_support::*;
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, TxnRequest};
use prost::Message;

const PUT: i32 = 0;
const DELETE: i32 = 1;

#[tokio::test]
async fn created_first_then_live_events_with_headers() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    put(&mut kv, "a", "0").await; // rev 2
    let (mut ws, created) = Ws::watch(&ch, watch_of("a", "", 0)).await;
    assert_eq!(created.watch_id, 0);
    assert_eq!(created.header.as_ref().unwrap().revision, 2);
    assert!(!created.canceled && created.events.is_empty());

    put(&mut kv, "b", "x").await; // rev 3, not watched
    put(&mut kv, "a", "1").await; // rev 4
    kv.delete_range(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap(); // rev 5
    let r = ws.next().await;
    assert_eq!(r.watch_id, 0);
    assert_eq!(r.header.as_ref().unwrap().revision, 4);
    assert_eq!(r.events.len(), 1);
    let kv1 = r.events[0].kv.as_ref().unwrap();
    assert_eq!(
        (kv1.create_revision, kv1.mod_revision, kv1.version),
        (2, 4, 2)
    );
    let del = ws.next().await;
    assert_eq!(del.events[0].r#type, DELETE);
    let dkv = del.events[0].kv.as_ref().unwrap();
    assert_eq!(
        (dkv.key.as_slice(), dkv.mod_revision, dkv.version),
        (&b"a"[..], 5, 0)
    );
}

#[tokio::test]
async fn prefix_history_prev_kv_and_filters() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    for (k, v) in [("/p/a", "1"), ("/q", "x"), ("/p/b", "2"), ("/p/a", "3")] {
        put(&mut kv, k, v).await; // revs 2..5
    }
    let mut req = watch_of("/p/", &prefix_end("/p/"), 2);
    req.prev_kv = true;
    let (mut ws, _) = Ws::watch(&ch, req).await;
    let r = ws.next().await;
    // History arrives in one response (all of it is below the batch limit).
    let got: Vec<(String, i64, Option<String>)> = r
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
                e.prev_kv
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.value).into_owned()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/p/a".into(), 2, None),
            ("/p/b".into(), 4, None),
            ("/p/a".into(), 5, Some("1".into())),
        ]
    );

    // NOPUT on one stream, NODELETE on another.
    let mut noput = watch_of("/p/", &prefix_end("/p/"), 0);
    noput.filters = vec![0];
    let (mut ws_noput, _) = Ws::watch(&ch, noput).await;
    let mut nodel = watch_of("/p/", &prefix_end("/p/"), 0);
    nodel.filters = vec![1];
    let (mut ws_nodel, _) = Ws::watch(&ch, nodel).await;
    put(&mut kv, "/p/c", "4").await; // 6
    kv.delete_range(DeleteRangeRequest {
        key: b"/p/a".to_vec(),
        prev_kv: true,
        ..Default::default()
    })
    .await
    .unwrap(); // 7
    let d = ws.events(2).await;
    assert_eq!((d[0].2, d[0].3, d[1].2, d[1].3), (6, PUT, 7, DELETE));
    let only_del = ws_noput.events(1).await;
    assert_eq!((only_del[0].0.as_str(), only_del[0].3), ("/p/a", DELETE));
    let only_put = ws_nodel.events(1).await;
    assert_eq!((only_put[0].0.as_str(), only_put[0].3), ("/p/c", PUT));
    assert!(ws_noput
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn txn_events_of_one_revision_arrive_together() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    put(&mut kv, "t/old", "x").await;
    let (mut ws, _) = Ws::watch(&ch, watch_of("t/", &prefix_end("t/"), 0)).await;
    kv.txn(TxnRequest {
        success: vec![
            put_op("t/1", "a"),
            put_op("t/2", "b"),
            del_op("t/old", ""),
            put_op("u/other", "c"),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let r = ws.next().await;
    let keys: Vec<(String, i32, i64)> = r
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                e.r#type,
                kv.mod_revision,
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("t/1".into(), PUT, 3),
            ("t/2".into(), PUT, 3),
            ("t/old".into(), DELETE, 3)
        ]
    );
}

#[tokio::test]
async fn cancel_duplicate_id_and_empty_range() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let mut first = watch_of("k", "", 0);
    first.watch_id = 7;
    let (mut ws, created) = Ws::watch(&ch, first.clone()).await;
    assert_eq!(created.watch_id, 7);
    ws.create(first).await;
    let dup = ws.next().await;
    assert!(dup.created && dup.canceled, "{dup:?}");
    assert_eq!(dup.watch_id, -1);
    assert_eq!(
        dup.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    ws.create(watch_of("k", "a", 0)).await;
    let empty = ws.next().await;
    assert!(empty.created && empty.canceled);
    assert_eq!(empty.watch_id, -1);
    assert_eq!(empty.cancel_reason, "mvcc: watcher range is empty");

    ws.cancel(99).await; // unknown: no answer
    ws.cancel(7).await;
    let c = ws.next().await;
    assert!(c.canceled && !c.created);
    assert_eq!(c.watch_id, 7);
    put(&mut kv, "k", "v").await;
    assert!(ws.next_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn compacted_start_revision_and_resume() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    for i in 0..10 {
        put(&mut kv, "r", &i.to_string()).await; // revs 2..11
    }
    kv.compact(CompactionRequest {
        revision: 6,
        physical: true,
    })
    .await
    .unwrap();
    let (mut ws, created) = Ws::watch(&ch, watch_of("r", "", 3)).await;
    assert_eq!(created.header.as_ref().unwrap().revision, 11);
    let c = ws.next().await;
    assert!(c.canceled, "{c:?}");
    assert_eq!(c.compact_revision, 6);
    assert!(c.events.is_empty());

    // Resumable: read a few, cancel, continue from last + 1: exactly the rest.
    let (mut ws, _) = Ws::watch(&ch, watch_of("r", "", 6)).await;
    let first = ws.events(6).await;
    assert_eq!(
        first.iter().map(|e| e.2).collect::<Vec<_>>(),
        (6..12).collect::<Vec<_>>()
    );
    for i in 10..15 {
        put(&mut kv, "r", &i.to_string()).await; // 12..16
    }
    let (mut resumed, _) = Ws::watch(&ch, watch_of("r", "", 12)).await;
    let rest = resumed.events(5).await;
    assert_eq!(
        rest.iter().map(|e| e.2).collect::<Vec<_>>(),
        (12..17).collect::<Vec<_>>()
    );
    assert_eq!(rest[0].1, "10");
}

#[tokio::test]
async fn progress_request_reports_the_current_revision() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    for _ in 0..3 {
        put(&mut kv, "x", "v").await; // 2..4
    }
    let (mut ws, _) = Ws::watch(&ch, watch_of("y", "", 0)).await;
    ws.progress().await;
    let p = ws.next().await;
    assert_eq!(p.watch_id, -1);
    assert!(!p.created && !p.canceled && p.events.is_empty());
    assert_eq!(p.header.as_ref().unwrap().revision, 4);
}

#[tokio::test]
async fn progress_notify_on_the_interval_timer() {
    let s = TestServer::start_with(&["--experimental-watch-progress-notify-interval", "300ms"]);
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let mut req = watch_of("pn", "", 0);
    req.progress_notify = true;
    let (mut ws, _) = Ws::watch(&ch, req).await;
    let rev = put(&mut kv, "other", "v").await;
    let start = Instant::now();
    let p = ws.next().await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(p.watch_id, 0);
    assert!(p.events.is_empty() && !p.canceled);
    assert!(p.header.as_ref().unwrap().revision >= rev - 1);
    // Keeps coming while idle.
    let p2 = ws.next().await;
    assert!(p2.events.is_empty());
    assert_eq!(p2.header.as_ref().unwrap().revision, rev);
}

#[tokio::test]
async fn fragments_split_a_large_response() {
    // etcd fragments at --max-request-bytes + 512 KiB; a catch-up of ~800 KB exceeds it.
    let s = TestServer::start_with(&["--max-request-bytes", "20000"]);
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let big = "v".repeat(2000);
    let n = 400;
    for i in 0..n {
        put(&mut kv, &format!("f/{}", i % 7), &big).await; // 2..=401
    }
    let mut req = watch_of("f/", &prefix_end("f/"), 2);
    req.fragment = true;
    let (mut ws, _) = Ws::watch(&ch, req).await;
    let mut revs = Vec::new();
    let mut parts = 0;
    let mut fragmented = 0;
    while revs.len() < n {
        let r = ws.next().await;
        parts += 1;
        assert!(parts < 100, "too many responses");
        if r.fragment {
            fragmented += 1;
            assert!(r.encoded_len() < 20000 + 512 * 1024 + 4096);
        }
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    assert_eq!(revs, (2..n as i64 + 2).collect::<Vec<_>>());
    assert!(fragmented >= 1, "expected fragments, got {parts} responses");

    // Without `fragment` the same history comes whole.
    let (mut whole, _) = Ws::watch(&ch, watch_of("f/", &prefix_end("f/"), 2)).await;
    let r = whole.next().await;
    assert!(!r.fragment);
    assert_eq!(r.events.len(), n);
}

#[tokio::test]
async fn stalled_watcher_blocks_neither_writes_nor_others() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    // Separate connections, so HTTP/2 flow control of the stalled one is its own.
    let stalled_ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let (mut stalled, _) = Ws::watch(&stalled_ch, watch_of("s/", &prefix_end("s/"), 0)).await;
    let (mut live, _) = Ws::watch(&ch, watch_of("s/", &prefix_end("s/"), 0)).await;
    let value = "z".repeat(16 * 1024);
    let n = 1500; // ~24 MB, far beyond what the stalled stream can buffer
    let start = Instant::now();
    for i in 0..n {
        kv.put(PutRequest {
            key: format!("s/{}", i % 20).into_bytes(),
            value: value.clone().into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap();
        // The live watcher keeps up all along.
        let e = live.events(1).await;
        assert_eq!(e[0].2, i + 2);
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    // Now the stalled one reads: everything, in order, once.
    let got = stalled.events(n as usize).await;
    let revs: Vec<i64> = got.iter().map(|e| e.2).collect();
    assert_eq!(revs, (2..n + 2).collect::<Vec<_>>());
    let rev = put(&mut kv, "s/last", "v").await;
    assert_eq!(stalled.events(1).await[0].2, rev);
}

#[tokio::test]
async fn half_closed_stream_keeps_delivering() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let (mut ws, _) = Ws::watch(&ch, watch_of("h", "", 0)).await;
    ws.half_close();
    put(&mut kv, "h", "v").await;
    assert_eq!(ws.events(1).await[0].0, "h");
}
