//! Watches through the Rust clients, against the real binary (oxcd, or etcd with
//! `OXCD_TEST_SERVER=etcd`): our `oxcd-client` and the `etcd-client` crate.

use std::time::Duration;

use crate::common::{etcd_client, TestServer};
use oxcd_client::{Client, EventType, PutOptions, WatchOptions};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn oxcd_client_prefix_watch_history_and_progress() {
    let s = TestServer::start();
    let c = Client::connect([s.client_url()]).await.expect("connect");
    let first = c
        .put("/app/a", "1", &PutOptions::default())
        .await
        .expect("put")
        .header
        .expect("header")
        .revision;
    let opts = WatchOptions {
        start_revision: first,
        prev_kv: true,
        ..WatchOptions::prefix()
    };
    let (watcher, mut stream) = c.watch("/app/", &opts).await.expect("watch");
    let history = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("history in time")
        .expect("message")
        .expect("open");
    assert_eq!(history.events.len(), 1);
    c.put("/app/a", "2", &PutOptions::default())
        .await
        .expect("put");
    let live = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("event in time")
        .expect("message")
        .expect("open");
    let ev = &live.events[0];
    assert_eq!(ev.r#type, EventType::Put as i32);
    assert_eq!(ev.prev_kv.as_ref().expect("prev kv").value, b"1");

    watcher.request_progress().await.expect("progress request");
    let p = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("progress in time")
        .expect("message")
        .expect("open");
    assert_eq!(p.watch_id, -1);
    assert_eq!(p.header.expect("header").revision, first + 1);

    watcher.cancel(watcher.watch_id()).await.expect("cancel");
    let c2 = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("cancel in time")
        .expect("message")
        .expect("open");
    assert!(c2.canceled);
}

#[tokio::test]
async fn etcd_client_crate_watch() {
    let s = TestServer::start();
    let mut c = etcd_client(&s).await;
    let mut stream = c
        .watch("/ec/", Some(etcd_client::WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let created = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("created in time")
        .expect("message")
        .expect("open");
    assert!(created.created());
    let id = created.watch_id();
    let mut writer = etcd_client(&s).await;
    writer.put("/ec/x", "1", None).await.expect("put");
    writer.delete("/ec/x", None).await.expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let resp = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("event in time")
            .expect("message")
            .expect("open");
        for e in resp.events() {
            seen.push((e.event_type(), e.kv().map(|kv| kv.key().to_vec())));
        }
    }
    assert_eq!(
        seen,
        vec![
            (etcd_client::EventType::Put, Some(b"/ec/x".to_vec())),
            (etcd_client::EventType::Delete, Some(b"/ec/x".to_vec())),
        ]
    );
    stream.cancel(id).await.expect("cancel");
    let canceled = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("cancel in time")
        .expect("message")
        .expect("open");
    assert!(canceled.canceled());
}
