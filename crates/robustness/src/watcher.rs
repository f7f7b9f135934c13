//! Recording watchers. A watcher watches `[key, end)` from a start revision (optionally
//! after a linearizable list, Kubernetes-style: watch from list revision + 1), with
//! `prev_kv`, and asks for progress notifications every second. When its stream breaks
//! (member killed, paused, partitioned) it *resumes* on the next member from the revision
//! after the last one it has seen (event or progress notification): the merged stream must
//! still satisfy every watch guarantee.
//!
//! Invariants: bounded in time by the `deadline` and the final wait; every response is
//! recorded with the time it was received; the watcher stops once it has seen a revision
//! `>= final_rev` (when set) or when the final wait expires.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb as pb;
use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::mvccpb::event::EventType;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::client::kv_of;
use crate::history::{Kv, Recorder};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub put: bool,
    pub kv: Kv,
    pub prev: Option<Kv>,
}

#[derive(Clone, Debug)]
pub struct WatchResp {
    pub at: u64,
    pub segment: usize,
    pub header_rev: i64,
    pub events: Vec<Event>,
    pub created: bool,
    pub canceled: bool,
    pub compact_rev: i64,
    pub fragment: bool,
}

impl WatchResp {
    pub fn is_progress(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_rev == 0
    }
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub member: usize,
    pub start_rev: i64,
    pub opened_at: u64,
}

#[derive(Clone, Debug, Default)]
pub struct WatchRecord {
    pub id: usize,
    pub key: String,
    pub end: String,
    pub prev_kv: bool,
    pub segments: Vec<Segment>,
    pub resps: Vec<WatchResp>,
    pub errors: Vec<String>,
}

/// What to watch and how.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub id: usize,
    pub key: String,
    pub end: String,
    /// Start revision; 0 = list first and start after the list's revision.
    pub start_rev: i64,
    pub prev_kv: bool,
    pub first_member: usize,
}

/// Runs a watcher until `deadline`, then until it has seen `final_rev` (if set, > 0) or
/// `final_wait` passes.
pub async fn run_watcher(
    spec: WatchSpec,
    urls: Vec<String>,
    rec: Recorder,
    deadline: Instant,
    final_rev: Arc<AtomicI64>,
    final_wait: Duration,
) -> WatchRecord {
    let mut r = WatchRecord {
        id: spec.id,
        key: spec.key.clone(),
        end: spec.end.clone(),
        prev_kv: spec.prev_kv,
        ..Default::default()
    };
    let mut member = spec.first_member % urls.len();
    let mut next_rev = spec.start_rev;
    let mut seen: i64 = 0;
    let hard_deadline = deadline + final_wait;
    for attempt in 0..10_000 {
        if Instant::now() >= hard_deadline {
            break;
        }
        let fr = final_rev.load(Ordering::SeqCst);
        if Instant::now() >= deadline && fr > 0 && seen >= fr {
            break;
        }
        if attempt > 0 {
            member = (member + 1) % urls.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if next_rev == 0 {
            match list_rev(&urls[member], &spec.key, &spec.end).await {
                Ok(rev) => next_rev = rev + 1,
                Err(e) => {
                    r.errors.push(format!("list on m{member}: {e}"));
                    continue;
                }
            }
        }
        let seg = r.segments.len();
        r.segments.push(Segment {
            member,
            start_rev: next_rev,
            opened_at: rec.now(),
        });
        let res = segment(
            &mut r,
            seg,
            &spec,
            &urls[member],
            next_rev,
            &rec,
            deadline,
            hard_deadline,
            &final_rev,
        )
        .await;
        // Resume after the last revision seen in this segment.
        for x in r.resps.iter().filter(|x| x.segment == seg) {
            let rev = match x.events.last() {
                Some(e) => e.kv.modr,
                None if x.is_progress() => x.header_rev,
                None => 0,
            };
            if rev + 1 > next_rev && !x.fragment {
                next_rev = rev + 1;
            }
            if x.compact_rev > 0 && x.compact_rev > next_rev {
                next_rev = x.compact_rev;
            }
            seen = seen.max(rev);
        }
        match res {
            Ok(()) => break,
            Err(e) => r.errors.push(format!("m{member} seg {seg}: {e}")),
        }
    }
    r
}

async fn list_rev(url: &str, key: &str, end: &str) -> Result<i64, String> {
    let ch = crate::cluster::channel(url)?;
    let mut kv = pb::kv_client::KvClient::new(ch);
    let req = pb::RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        count_only: true,
        ..Default::default()
    };
    let r = tokio::time::timeout(Duration::from_secs(3), kv.range(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.message().to_string())?;
    Ok(r.into_inner().header.map(|h| h.revision).unwrap_or(0))
}

/// One watch stream; Ok when done (deadline and final revision seen), Err when broken.
#[allow(clippy::too_many_arguments)]
async fn segment(
    r: &mut WatchRecord,
    seg: usize,
    spec: &WatchSpec,
    url: &str,
    start_rev: i64,
    rec: &Recorder,
    deadline: Instant,
    hard_deadline: Instant,
    final_rev: &AtomicI64,
) -> Result<(), String> {
    let ch = crate::cluster::channel(url)?;
    let mut wc = pb::watch_client::WatchClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::WatchRequest>(16);
    let create = pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: spec.key.as_bytes().to_vec(),
            range_end: spec.end.as_bytes().to_vec(),
            start_revision: start_rev,
            progress_notify: true,
            prev_kv: spec.prev_kv,
            ..Default::default()
        })),
    };
    tx.send(create).await.map_err(|e| e.to_string())?;
    let mut stream =
        tokio::time::timeout(Duration::from_secs(3), wc.watch(ReceiverStream::new(rx)))
            .await
            .map_err(|_| "watch open timed out".to_string())?
            .map_err(|e| format!("watch open: {}", e.message()))?
            .into_inner();
    let mut last_progress_req = Instant::now();
    let mut last_recv = Instant::now();
    let mut seen = 0i64;
    for _ in 0..10_000_000u64 {
        let now = Instant::now();
        if now >= hard_deadline {
            return Ok(());
        }
        let fr = final_rev.load(Ordering::SeqCst);
        if now >= deadline && fr > 0 && seen >= fr {
            return Ok(());
        }
        if now.duration_since(last_recv) > Duration::from_secs(5) {
            return Err("no response for 5s".into());
        }
        if now.duration_since(last_progress_req) > Duration::from_millis(1000) {
            last_progress_req = now;
            let req = pb::WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
            };
            if tx.send(req).await.is_err() {
                return Err("request stream closed".into());
            }
        }
        let msg = match tokio::time::timeout(Duration::from_millis(250), stream.next()).await {
            Err(_) => continue,
            Ok(None) => return Err("stream ended".into()),
            Ok(Some(Err(e))) => return Err(format!("stream error: {}", e.message())),
            Ok(Some(Ok(m))) => m,
        };
        last_recv = Instant::now();
        let events: Vec<Event> = msg
            .events
            .iter()
            .map(|e| Event {
                put: e.r#type == EventType::Put as i32,
                kv: e
                    .kv
                    .as_ref()
                    .map(kv_of)
                    .unwrap_or_else(|| kv_of(&Default::default())),
                prev: e.prev_kv.as_ref().map(kv_of),
            })
            .collect();
        let header_rev = msg.header.as_ref().map(|h| h.revision).unwrap_or(0);
        let resp = WatchResp {
            at: rec.now(),
            segment: seg,
            header_rev,
            events,
            created: msg.created,
            canceled: msg.canceled,
            compact_rev: msg.compact_revision,
            fragment: msg.fragment,
        };
        seen = seen.max(match resp.events.last() {
            Some(e) => e.kv.modr,
            None if resp.is_progress() => header_rev,
            None => 0,
        });
        let canceled = resp.canceled;
        let reason = msg.cancel_reason.clone();
        r.resps.push(resp);
        if canceled {
            return Err(format!("canceled: {reason}"));
        }
    }
    Ok(())
}
