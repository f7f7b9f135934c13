//! etcd's Watch service (`etcdserver/api/v3rpc/watch.go`) over the watchable store of
//! `oxcd_mvcc::watch`.
//!
//! Per gRPC stream: a receive task reads the client's requests (create, cancel, progress)
//! and runs the per-watcher progress timer; the response stream pulls the stream's queue,
//! adds the header (cluster, member, term), previous kvs (`prev_kv`, read at
//! `mod_revision - 1` as etcd does) and splits a response into fragments when the watcher
//! asked for `fragment` and the response reaches `--max-request-bytes` plus gRPC's 512 KiB
//! overhead allowance (etcd's `sendFragments` with `maxRequestBytes`).
//!
//! Invariants:
//! - The `created` response of a watcher precedes all of its events (the watchable store
//!   queues it under the lock that registers the watcher).
//! - A client half-close changes nothing (as etcd: watchers keep delivering); when the
//!   client resets or drops the stream, every watcher of the stream is canceled, the
//!   response stream ends and the receive task stops.
//! - Fragments of one response carry `fragment = true` on all but the last, and events of
//!   one revision never span two non-fragment responses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::etcdserverpb::watch_server::Watch;
use oxcd_api::etcdserverpb::{WatchRequest, WatchResponse};
use oxcd_api::mvccpb::Event;
use oxcd_api::EtcdError;
use oxcd_mvcc::watch::WatchStream;
use prost::Message;
use tokio::task::AbortHandle;
use tonic::{Request, Response, Status, Streaming};

use super::unimplemented::BoxStream;
use oxcd_etcdserver::EtcdServer;

/// `--experimental-watch-progress-notify-interval` in milliseconds (etcd: 10 minutes). A
/// process-wide setting, as etcd's `v3rpc.SetProgressReportInterval`.
static PROGRESS_INTERVAL_MS: AtomicU64 = AtomicU64::new(10 * 60 * 1000);

/// Sets the interval of per-watcher progress notifications (call before serving).
pub fn set_progress_report_interval(d: Duration) {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    PROGRESS_INTERVAL_MS.store(ms, Ordering::Relaxed);
}

/// The interval plus up to a tenth of it as jitter, so streams opened together do not tick
/// together (etcd's `GetProgressReportInterval`).
fn progress_interval() -> Duration {
    let ms = PROGRESS_INTERVAL_MS.load(Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let jitter = if ms >= 10 { nanos % (ms / 10) } else { 0 };
    Duration::from_millis(ms + jitter)
}

/// etcd's cancel reason for a refused watch (`rpctypes.ErrGRPCPermissionDenied.Error()`).
const WATCH_PERMISSION_DENIED: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

pub struct WatchService {
    server: Arc<EtcdServer>,
}

impl WatchService {
    pub fn new(server: Arc<EtcdServer>) -> WatchService {
        WatchService { server }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = BoxStream<WatchResponse>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = Arc::new(self.server.watchable().open_stream());
        let creds = super::identity::Credentials::of(&req);
        let require_leader = req
            .metadata()
            .get(crate::require_leader::METADATA_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        let no_leader: Option<NoLeader> = require_leader
            .then(|| Box::pin(crate::require_leader::leader_lost(self.server.clone())) as NoLeader);
        let recv = tokio::spawn(recv_loop(
            req.into_inner(),
            Arc::clone(&stream),
            Arc::clone(&self.server),
            creds,
        ));
        let out = Outbound {
            server: Arc::clone(&self.server),
            stream,
            recv: recv.abort_handle(),
            pending: VecDeque::new(),
            no_leader,
            ended: false,
        };
        let responses = futures::stream::unfold(out, |mut out| async move {
            if out.ended {
                return None;
            }
            if out.pending.is_empty() {
                let next = match out.no_leader.as_mut() {
                    None => Some(out.stream.recv().await),
                    Some(lost) => tokio::select! {
                        r = out.stream.recv() => Some(r),
                        () = lost => None,
                    },
                };
                let Some(r) = next else {
                    // etcd cancels a require-leader stream after three election timeouts
                    // without a leader.
                    out.ended = true;
                    return Some((Err(Status::from(EtcdError::NoLeader)), out));
                };
                out.convert(r?);
            }
            let r = out.pending.pop_front()?;
            Some((Ok(r), out))
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Reads the client's requests and runs the progress timer. A client that half-closes
/// keeps its watchers (etcd ends the RPC only when the client goes away); a receive error
/// (the client reset the stream) closes the stream.
async fn recv_loop(
    mut inbound: Streaming<WatchRequest>,
    stream: Arc<WatchStream>,
    server: Arc<EtcdServer>,
    creds: super::identity::Credentials,
) {
    let every = progress_interval();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reading = true;
    loop {
        tokio::select! {
            msg = inbound.message(), if reading => match msg {
                Ok(Some(req)) => match req.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        // etcd's isWatchPermitted: read on the watched range, at create.
                        let permitted = match creds.resolve(&server).await {
                            Ok(info) => server.check_watch(&info, &c.key, &c.range_end).is_ok(),
                            Err(_) => false,
                        };
                        if permitted {
                            stream.watch(&c);
                        } else {
                            stream.refuse_create(WATCH_PERMISSION_DENIED);
                        }
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        stream.cancel(c.watch_id);
                    }
                    Some(RequestUnion::ProgressRequest(_)) => stream.request_progress(),
                    None => {}
                },
                Ok(None) => reading = false,
                Err(e) => {
                    tracing::debug!(error = %e, "watch stream receive failed");
                    break;
                }
            },
            _ = ticker.tick() => stream.progress_tick(),
        }
    }
    stream.close();
}

/// The response side of one stream.
/// Resolves when a require-leader stream must end (see `require_leader::leader_lost`).
type NoLeader = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

struct Outbound {
    server: Arc<EtcdServer>,
    stream: Arc<WatchStream>,
    recv: AbortHandle,
    pending: VecDeque<WatchResponse>,
    no_leader: Option<NoLeader>,
    /// The stream ended with an error; the next poll ends it.
    ended: bool,
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.recv.abort();
        self.stream.close();
    }
}

impl Outbound {
    /// Turns a watchable-store response into one or more gRPC responses in `pending`.
    fn convert(&mut self, r: oxcd_mvcc::watch::WatchResponse) {
        let mut events: Vec<Event> = r.events.to_vec();
        if r.prev_kv && !events.is_empty() {
            self.fill_prev_kvs(&mut events);
        }
        let wr = WatchResponse {
            header: Some(self.server.header(r.revision)),
            watch_id: r.watch_id,
            created: r.created,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            cancel_reason: r.cancel_reason.to_string(),
            fragment: false,
            events,
        };
        // etcd's sws.maxRequestBytes: the request limit plus gRPC's overhead allowance.
        let limit = self.server.settings().max_request_bytes + super::GRPC_OVERHEAD_BYTES;
        if !r.fragment || wr.events.len() < 2 || wr.encoded_len() < limit {
            self.pending.push_back(wr);
            return;
        }
        fragments(wr, limit, &mut self.pending);
    }

    fn fill_prev_kvs(&self, events: &mut [Event]) {
        self.server.fill_prev_kvs(events);
    }
}

/// etcd's `sendFragments`: splits `wr` into responses of about `limit` bytes (at least one
/// event each), all but the last marked `fragment`.
fn fragments(wr: WatchResponse, limit: usize, out: &mut VecDeque<WatchResponse>) {
    let mut template = wr;
    let events = std::mem::take(&mut template.events);
    let total = events.len();
    let mut cur = WatchResponse {
        fragment: true,
        ..template.clone()
    };
    let mut size = cur.encoded_len();
    for (i, ev) in events.into_iter().enumerate() {
        let ev_len = ev.encoded_len();
        let ev_size = 1 + prost::encoding::encoded_len_varint(ev_len as u64) + ev_len;
        if !cur.events.is_empty() && size + ev_size >= limit {
            out.push_back(std::mem::replace(
                &mut cur,
                WatchResponse {
                    fragment: true,
                    ..template.clone()
                },
            ));
            size = cur.encoded_len();
        }
        size += ev_size;
        cur.events.push(ev);
        if i + 1 == total {
            cur.fragment = false;
        }
    }
    out.push_back(cur);
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_api::mvccpb::KeyValue;

    #[test]
    fn fragments_keep_order_and_mark_all_but_last() {
        let events: Vec<Event> = (0..10)
            .map(|i| Event {
                r#type: 0,
                kv: Some(KeyValue {
                    key: format!("k{i}").into_bytes(),
                    value: vec![b'x'; 100],
                    mod_revision: 5,
                    ..Default::default()
                }),
                prev_kv: None,
            })
            .collect();
        let wr = WatchResponse {
            watch_id: 3,
            events: events.clone(),
            ..Default::default()
        };
        let mut out = VecDeque::new();
        fragments(wr, 300, &mut out);
        assert!(out.len() > 3);
        let n = out.len();
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.fragment, i + 1 < n);
            assert_eq!(r.watch_id, 3);
            assert!(!r.events.is_empty());
            assert!(r.events.len() == 1 || r.encoded_len() < 300);
        }
        let all: Vec<Event> = out.into_iter().flat_map(|r| r.events).collect();
        assert_eq!(all, events);
    }
}
