//! Helpers shared by the watch integration tests: a raw gRPC watch stream (tonic, so every
//! response field can be checked) and KV shortcuts.

use std::time::Duration;

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::watch_client::WatchClient;
use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::etcdserverpb::{
    PutRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// How long a test waits for one expected response.
pub const WAIT: Duration = Duration::from_secs(10);

/// One raw Watch stream.
pub struct Ws {
    tx: Option<mpsc::Sender<WatchRequest>>,
    rx: Streaming<WatchResponse>,
}

pub fn create_req(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

/// A create request for `[key, end)` (`end` as on the wire) from `start`.
pub fn watch_of(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    }
}

/// etcd's prefix end.
pub fn prefix_end(p: &str) -> String {
    let mut b = p.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return String::from_utf8(b).expect("ascii prefix");
        }
    }
    "\0".into()
}

impl Ws {
    /// Opens a stream whose first request is `first` (a server may send no headers before
    /// its first response, so the call only completes once there is something to answer).
    pub async fn open(ch: &Channel, first: WatchRequest) -> Ws {
        let (tx, rx) = mpsc::channel(1024);
        tx.send(first).await.expect("queue first request");
        let mut client = WatchClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
        let rx = tokio::time::timeout(WAIT, client.watch(ReceiverStream::new(rx)))
            .await
            .expect("watch call timed out")
            .expect("watch call")
            .into_inner();
        Ws { tx: Some(tx), rx }
    }

    /// Opens a stream with one watcher and returns it with its `created` response.
    pub async fn watch(ch: &Channel, c: WatchCreateRequest) -> (Ws, WatchResponse) {
        let mut ws = Ws::open(ch, create_req(c)).await;
        let created = ws.next().await;
        assert!(
            created.created,
            "first response must be `created`: {created:?}"
        );
        (ws, created)
    }

    pub async fn send(&self, r: WatchRequest) {
        let tx = self.tx.as_ref().expect("stream not half-closed");
        tx.send(r).await.expect("send watch request");
    }

    /// The request and response halves.
    pub fn split(self) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
        (self.tx.expect("stream not half-closed"), self.rx)
    }

    /// Puts the halves back together.
    pub fn from_split(tx: mpsc::Sender<WatchRequest>, rx: Streaming<WatchResponse>) -> Ws {
        Ws { tx: Some(tx), rx }
    }

    /// Closes the request side.
    pub fn half_close(&mut self) {
        self.tx = None;
    }

    pub async fn create(&self, c: WatchCreateRequest) {
        self.send(create_req(c)).await;
    }

    pub async fn cancel(&self, watch_id: i64) {
        self.send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })),
        })
        .await;
    }

    pub async fn progress(&self) {
        self.send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await;
    }

    /// The next response (panics after [`WAIT`]).
    pub async fn next(&mut self) -> WatchResponse {
        match tokio::time::timeout(WAIT, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("watch stream ended"),
            Ok(Err(e)) => panic!("watch stream failed: {e}"),
            Err(_) => panic!("no watch response within {WAIT:?}"),
        }
    }

    /// The next response within `d`, if any.
    pub async fn next_within(&mut self, d: Duration) -> Option<WatchResponse> {
        match tokio::time::timeout(d, self.rx.message()).await {
            Ok(Ok(Some(r))) => Some(r),
            Ok(Ok(None)) => panic!("watch stream ended"),
            Ok(Err(e)) => panic!("watch stream failed: {e}"),
            Err(_) => None,
        }
    }

    /// Reads responses until `n` events arrived; returns (key, value, mod revision, type).
    pub async fn events(&mut self, n: usize) -> Vec<(String, String, i64, i32)> {
        let mut out = Vec::new();
        while out.len() < n {
            let r = self.next().await;
            for e in r.events {
                let kv = e.kv.expect("event kv");
                out.push((
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.mod_revision,
                    e.r#type,
                ));
            }
        }
        assert_eq!(out.len(), n, "more events than expected: {out:?}");
        out
    }
}

/// Puts `key` and returns the revision.
pub async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> i64 {
    kv.put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .header
    .expect("header")
    .revision
}
