//! The watch checker: random writes (puts, deletes, range deletes, multi-op txns) from
//! concurrent writers while many watchers on several streams receive, then a check of
//! etcd's six watch guarantees on everything received, against a ground truth rebuilt
//! from history reads (`Range` at every revision):
//! - ordered: revisions never go back per watcher;
//! - unique: no (revision, key) event twice;
//! - reliable: exactly the expected events from the start revision to the end, with
//!   values, types and (when asked) previous kvs;
//! - atomic: each revision's events for a watcher arrive in one response;
//! - resumable: a watch canceled and re-created from last revision + 1 continues exactly;
//! - bookmarkable (oxcd only; etcd 3.4 answers progress requests out of band): a progress
//!   response at revision P comes after every event `<= P` of every watcher of the stream.
//!
//! Streams: A (created before the writes, with progress requests), B (created mid-way
//! from historical revisions: catch-up racing live writes), C (a slow reader during the
//! writes, on its own connection: victims), D (resumed watchers). Everything is bounded:
//! fixed op counts, a deterministic PRNG, timeouts on every wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{channel, TestServer};
use crate::watch_support::*;
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCancelRequest,
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use oxcd_api::mvccpb::KeyValue;
use parking_lot::Mutex;
use tonic::transport::Channel;

const KEYS: u64 = 40;
const WRITERS: u64 = 4;
const OPS_PER_WRITER: u64 = 250;
const SEED: u64 = 0x0005_eed0_f0cd;

type Rng = oxcd_testkit::rng::XorShift;

fn key(i: u64) -> String {
    format!("c/{i:02}")
}

/// A watcher's range and options, as sent.
#[derive(Clone, Debug)]
struct Spec {
    req: WatchCreateRequest,
}

impl Spec {
    fn contains(&self, k: &[u8]) -> bool {
        let start: &[u8] = if self.req.key.is_empty() {
            &[0]
        } else {
            &self.req.key
        };
        match self.req.range_end.as_slice() {
            [] => k == start,
            [0] => k >= start,
            end => k >= start && k < end,
        }
    }
    fn wants(&self, ev: &Ev) -> bool {
        let filtered = if ev.delete { 1 } else { 0 };
        self.contains(ev.key.as_bytes()) && !self.req.filters.contains(&filtered)
    }
}

fn random_spec(rng: &mut Rng, start: i64) -> Spec {
    let a = rng.below(KEYS);
    let b = (a + 1 + rng.below(15)).min(KEYS);
    let (k, e) = match rng.below(6) {
        0 | 1 => (key(a), String::new()),
        2 => (format!("c/{}", a % 4), format!("c/{}", a % 4 + 1)),
        3 => (key(a), key(b)),
        4 => (key(a), "\0".to_string()),
        _ => (String::new(), "\0".to_string()),
    };
    let mut req = watch_of(&k, &e, start);
    match rng.below(5) {
        0 => req.filters = vec![0],
        1 => req.filters = vec![1],
        _ => {}
    }
    req.prev_kv = rng.below(3) == 0;
    Spec { req }
}

/// One event as the checker compares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    rev: i64,
    key: String,
    delete: bool,
    value: String,
    prev: Option<(i64, String)>,
}

fn to_ev(e: &oxcd_api::mvccpb::Event) -> Ev {
    let kv = e.kv.as_ref().expect("kv");
    Ev {
        rev: kv.mod_revision,
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        delete: e.r#type == 1,
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        prev: e.prev_kv.as_ref().map(|p| {
            (
                p.mod_revision,
                String::from_utf8_lossy(&p.value).into_owned(),
            )
        }),
    }
}

type Log = Arc<Mutex<Vec<WatchResponse>>>;

async fn writer(ch: Channel, w: u64) {
    let mut kv = KvClient::new(ch);
    let mut rng = Rng::new(SEED ^ (w + 1).wrapping_mul(0x9e37_79b9));
    let put = |k: String, v: String| PutRequest {
        key: k.into_bytes(),
        value: v.into_bytes(),
        ..Default::default()
    };
    for i in 0..OPS_PER_WRITER {
        let value = format!("w{w}-{i}");
        let r = match rng.below(20) {
            0..=10 => kv.put(put(key(rng.below(KEYS)), value)).await.map(|_| ()),
            11 => kv
                .put(put(format!("d/{}", rng.below(5)), value))
                .await
                .map(|_| ()),
            12..=14 => kv
                .delete_range(DeleteRangeRequest {
                    key: key(rng.below(KEYS)).into_bytes(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            15 => {
                let a = rng.below(KEYS);
                kv.delete_range(DeleteRangeRequest {
                    key: key(a).into_bytes(),
                    range_end: key(a + 3).into_bytes(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
            }
            _ => {
                let n = 2 + rng.below(3);
                let first = rng.below(KEYS - n);
                let ops = (0..n)
                    .map(|j| RequestOp {
                        request: Some(if rng.below(4) == 0 {
                            Request::RequestDeleteRange(DeleteRangeRequest {
                                key: key(first + j).into_bytes(),
                                ..Default::default()
                            })
                        } else {
                            Request::RequestPut(put(key(first + j), format!("{value}-{j}")))
                        }),
                    })
                    .collect();
                kv.txn(TxnRequest {
                    success: ops,
                    ..Default::default()
                })
                .await
                .map(|_| ())
            }
        };
        r.expect("write");
    }
}

/// Records every response of a stream until `stop`; when `slow`, it naps while the
/// writers run so its queue overflows.
async fn reader(mut ws: Ws, log: Log, slow: Arc<std::sync::atomic::AtomicBool>) {
    loop {
        if slow.load(std::sync::atomic::Ordering::Relaxed) && log.lock().len().is_multiple_of(20) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match ws.next_within(Duration::from_millis(200)).await {
            Some(r) => log.lock().push(r),
            None => {
                if Arc::strong_count(&log) == 1 {
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_writes_many_watchers_six_guarantees() {
    let s = TestServer::start();
    let ch = channel(&s).await;
    let slow_ch = channel(&s).await;
    let mut kv = KvClient::new(ch.clone());
    let mut rng = Rng::new(SEED);
    let deadline = Instant::now() + Duration::from_secs(120);

    // Stream A: 100 watchers from now on; stream C: 50 on a slow reader.
    let mut streams: Vec<(Vec<Spec>, Log, &str)> = Vec::new();
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let not_slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut a_tx = None;
    for (name, n, conn, flag) in [("A", 100, &ch, &not_slow), ("C", 50, &slow_ch, &slow)] {
        let specs: Vec<Spec> = (0..n).map(|_| random_spec(&mut rng, 0)).collect();
        let mut ws = Ws::open(conn, create_req(specs[0].req.clone())).await;
        for sp in &specs[1..] {
            ws.create(sp.req.clone()).await;
        }
        // Wait for every `created` before writing (they carry the start revision).
        let log: Log = Arc::default();
        while log.lock().len() < n {
            let r = ws.next().await;
            assert!(r.created && !r.canceled, "{r:?}");
            log.lock().push(r);
        }
        let (tx, rx) = ws.split();
        if name == "A" {
            a_tx = Some(tx.clone());
        }
        let ws = Ws::from_split(tx, rx);
        tasks.push(tokio::spawn(reader(ws, log.clone(), flag.clone())));
        streams.push((specs, log, name));
    }

    // Writers, with stream B created from historical revisions half-way, stream D resumed.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(ch.clone(), w)))
        .collect();
    let a_tx = a_tx.expect("stream A");
    let progress = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let req = WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            };
            if a_tx.send(req).await.is_err() {
                return;
            }
        }
    });
    let mut mid = 0;
    while mid < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        mid = current_rev(&mut kv).await;
    }
    let b_specs: Vec<Spec> = (0..50)
        .map(|_| {
            let start = 1 + rng.below(mid as u64) as i64;
            random_spec(&mut rng, start)
        })
        .collect();
    let ws_b = Ws::open(&ch, create_req(b_specs[0].req.clone())).await;
    for sp in &b_specs[1..] {
        ws_b.create(sp.req.clone()).await;
    }
    let b_log: Log = Arc::default();
    tasks.push(tokio::spawn(reader(ws_b, b_log.clone(), not_slow.clone())));
    streams.push((b_specs, b_log, "B"));
    let resumed = tokio::spawn(resumer(ch.clone(), mid));

    for w in writers {
        w.await.expect("writer");
    }
    slow.store(false, std::sync::atomic::Ordering::Relaxed);
    progress.await.expect("progress task");
    let final_rev = current_rev(&mut kv).await;

    // Ground truth: the store at every revision.
    let truth = history(&mut kv, final_rev).await;

    // Wait (bounded) until every watcher has all it is owed, then stop the readers.
    let wait_until = Instant::now() + Duration::from_secs(60);
    loop {
        let done = streams.iter().all(|(specs, log, _)| {
            let log = log.lock();
            owed_and_received(specs, &log, &truth)
                .iter()
                .all(|(o, r)| r >= o)
        });
        if done || Instant::now() > wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resumed = resumed.await.expect("resumer");
    for (specs, log, name) in &streams {
        let log = log.lock();
        check_stream(name, specs, &log, &truth);
        let events: usize = log.iter().map(|r| r.events.len()).sum();
        eprintln!(
            "stream {name}: {} watchers, {} responses, {events} events checked",
            specs.len(),
            log.len()
        );
    }
    eprintln!("final revision {final_rev}");
    let check_progress = crate::common::server_kind() == crate::common::ServerKind::Oxcd;
    if check_progress {
        let (specs, log, _) = &streams[0];
        check_bookmarks(specs, &log.lock(), &truth);
    }
    check_resumed(&resumed, &truth);
    drop(streams);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}

async fn current_rev(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(RangeRequest {
        key: b"probe".to_vec(),
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .header
    .expect("header")
    .revision
}

/// rev -> (events of that revision, sorted by key), from a Range of every key at each
/// revision.
type Truth = BTreeMap<i64, Vec<Ev>>;

async fn history(kv: &mut KvClient<Channel>, final_rev: i64) -> Truth {
    let mut truth = Truth::new();
    let mut prev: BTreeMap<String, KeyValue> = BTreeMap::new();
    for rev in 2..=final_rev {
        let kvs = kv
            .range(RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..Default::default()
            })
            .await
            .expect("history range")
            .into_inner()
            .kvs;
        let now: BTreeMap<String, KeyValue> = kvs
            .into_iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv))
            .collect();
        let mut evs = Vec::new();
        for (k, kv) in &now {
            if kv.mod_revision == rev {
                let prev_kv = prev.get(k).map(|p| (p.mod_revision, str(&p.value)));
                evs.push(Ev {
                    rev,
                    key: k.clone(),
                    delete: false,
                    value: str(&kv.value),
                    prev: prev_kv,
                });
            }
        }
        for (k, p) in &prev {
            if !now.contains_key(k) {
                evs.push(Ev {
                    rev,
                    key: k.clone(),
                    delete: true,
                    value: String::new(),
                    prev: Some((p.mod_revision, str(&p.value))),
                });
            }
        }
        assert!(!evs.is_empty(), "revision {rev} changed nothing");
        evs.sort();
        truth.insert(rev, evs);
        prev = now;
    }
    truth
}

fn str(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The events `spec` is owed from `start` on (prev kvs only if it asked for them).
fn expected(spec: &Spec, start: i64, truth: &Truth) -> Vec<Ev> {
    truth
        .range(start..)
        .flat_map(|(_, evs)| evs.iter())
        .filter(|e| spec.wants(e))
        .map(|e| Ev {
            prev: if spec.req.prev_kv {
                e.prev.clone()
            } else {
                None
            },
            ..e.clone()
        })
        .collect()
}

/// The created responses of a stream give each watcher (in creation order) its id and
/// start revision.
fn starts(specs: &[Spec], log: &[WatchResponse]) -> Vec<(i64, i64)> {
    let created: Vec<&WatchResponse> = log.iter().filter(|r| r.created).collect();
    assert_eq!(created.len(), specs.len(), "one created per watcher");
    specs
        .iter()
        .zip(created)
        .map(|(sp, c)| {
            assert!(!c.canceled, "{c:?}");
            let start = if sp.req.start_revision == 0 {
                c.header.as_ref().expect("header").revision + 1
            } else {
                sp.req.start_revision
            };
            (c.watch_id, start)
        })
        .collect()
}

fn owed_and_received(specs: &[Spec], log: &[WatchResponse], truth: &Truth) -> Vec<(usize, usize)> {
    if log.iter().filter(|r| r.created).count() < specs.len() {
        return vec![(1, 0)];
    }
    starts(specs, log)
        .iter()
        .zip(specs)
        .map(|(&(id, start), sp)| {
            let got = log
                .iter()
                .filter(|r| r.watch_id == id)
                .map(|r| r.events.len())
                .sum();
            (expected(sp, start, truth).len(), got)
        })
        .collect()
}

fn check_stream(name: &str, specs: &[Spec], log: &[WatchResponse], truth: &Truth) {
    for ((id, start), sp) in starts(specs, log).into_iter().zip(specs) {
        let ctx = format!("stream {name} watcher {id} {:?} from {start}", sp.req);
        let mut got = Vec::new();
        let mut seen_created = false;
        let mut rev_response: HashMap<i64, usize> = HashMap::new();
        for (i, r) in log.iter().enumerate() {
            if r.watch_id != id {
                continue;
            }
            if r.created {
                seen_created = true;
                continue;
            }
            assert!(seen_created, "{ctx}: event before created");
            assert!(!r.canceled, "{ctx}: canceled {r:?}");
            for e in &r.events {
                let ev = to_ev(e);
                // Atomic: all of a revision's events in one response.
                let at = *rev_response.entry(ev.rev).or_insert(i);
                assert_eq!(at, i, "{ctx}: revision {} split across responses", ev.rev);
                got.push(ev);
            }
        }
        // Ordered.
        assert!(
            got.windows(2).all(|w| w[0].rev <= w[1].rev),
            "{ctx}: out of order"
        );
        // Unique.
        let mut keys: Vec<(i64, &str)> = got.iter().map(|e| (e.rev, e.key.as_str())).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "{ctx}: duplicate events");
        // Reliable.
        let mut sorted = got.clone();
        sorted.sort();
        let want = expected(sp, start, truth);
        if sorted != want {
            let missing: Vec<&Ev> = want
                .iter()
                .filter(|e| !sorted.contains(e))
                .take(5)
                .collect();
            let extra: Vec<&Ev> = sorted
                .iter()
                .filter(|e| !want.contains(e))
                .take(5)
                .collect();
            panic!(
                "{ctx}: got {} events, want {}; missing {missing:?}; unexpected {extra:?}",
                sorted.len(),
                want.len()
            );
        }
    }
}

/// Every progress response (watch id -1) at P follows all events `<= P` of the stream.
fn check_bookmarks(specs: &[Spec], log: &[WatchResponse], truth: &Truth) {
    let ids = starts(specs, log);
    let mut checked = 0;
    for (i, r) in log.iter().enumerate() {
        if r.watch_id != -1 {
            continue;
        }
        let p = r.header.as_ref().expect("header").revision;
        for ((id, start), sp) in ids.iter().zip(specs) {
            let owed = expected(sp, *start, truth)
                .iter()
                .filter(|e| e.rev <= p)
                .count();
            let before: usize = log[..i]
                .iter()
                .filter(|x| x.watch_id == *id)
                .map(|x| x.events.len())
                .sum();
            assert_eq!(
                before, owed,
                "progress at {p}: watcher {id} had {before} of {owed}"
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no progress response received");
    eprintln!("{checked} progress responses checked");
}

/// Stream D: 10 watchers on `c/`; each is canceled once it got 20 events and re-created
/// from its last revision + 1. Returns per watcher the combined events and its start.
async fn resumer(ch: Channel, start: i64) -> Vec<(i64, Vec<Ev>)> {
    let mut ws = Ws::open(&ch, create_req(resumable(0, start))).await;
    for i in 1..10 {
        ws.create(resumable(i, start)).await;
    }
    // Per watcher: events kept, and whether it was already resumed.
    let mut got: Vec<(Vec<Ev>, bool)> = vec![(Vec::new(), false); 10];
    let quiet_until = Instant::now() + Duration::from_secs(60);
    let mut idle = 0;
    while Instant::now() < quiet_until && idle < 15 {
        let Some(r) = ws.next_within(Duration::from_millis(200)).await else {
            idle += 1;
            continue;
        };
        idle = 0;
        let (idx, second) = match r.watch_id {
            id @ 1000..=1009 => ((id - 1000) as usize, false),
            id @ 2000..=2009 => ((id - 2000) as usize, true),
            other => panic!("unexpected watch id {other}"),
        };
        let entry = &mut got[idx];
        if r.created || r.canceled || entry.1 != second {
            continue; // late events of the canceled first watcher are not kept
        }
        entry.0.extend(r.events.iter().map(to_ev));
        if !second && entry.0.len() >= 20 {
            entry.1 = true;
            let last = entry.0.last().expect("events").rev;
            ws.send(WatchRequest {
                request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                    watch_id: 1000 + idx as i64,
                })),
            })
            .await;
            let mut again = resumable(idx, last + 1);
            again.watch_id = 2000 + idx as i64;
            ws.create(again).await;
        }
    }
    got.into_iter().map(|(evs, _)| (start, evs)).collect()
}

fn resumable(i: usize, start: i64) -> WatchCreateRequest {
    let mut r = watch_of("c/", &prefix_end("c/"), start);
    r.watch_id = 1000 + i as i64;
    r
}

fn check_resumed(resumed: &[(i64, Vec<Ev>)], truth: &Truth) {
    let spec = Spec {
        req: watch_of("c/", &prefix_end("c/"), 0),
    };
    let total: usize = resumed.iter().map(|r| r.1.len()).sum();
    eprintln!("resumed watchers: {total} events checked");
    for (i, (start, evs)) in resumed.iter().enumerate() {
        let want = expected(&spec, *start, truth);
        let got: Vec<(i64, &str, bool)> = evs
            .iter()
            .map(|e| (e.rev, e.key.as_str(), e.delete))
            .collect();
        let mut want: Vec<(i64, &str, bool)> = want
            .iter()
            .map(|e| (e.rev, e.key.as_str(), e.delete))
            .collect();
        // Events of one revision come in op order, the truth in key order.
        let mut got_sorted = got.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(got_sorted, want, "resumed watcher {i}");
        assert!(
            got.windows(2).all(|w| w[0].0 <= w[1].0),
            "resumed watcher {i} order"
        );
    }
}
