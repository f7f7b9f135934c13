//! Unit tests of the watchable store: created-before-events, synced and historical
//! delivery, hand-over without gap or duplicate, compaction, victims, cancel, filters,
//! progress.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::WatchCreateRequest;
use oxcd_storage::Backend;

use super::*;
use crate::test_util::{new_store, write};

struct Fixture {
    _dir: tempfile::TempDir,
    backend: Arc<Backend>,
    store: Arc<Store>,
    ws: WatchableStore,
}

fn fixture() -> Fixture {
    let (dir, backend, store) = new_store();
    let store = Arc::new(store);
    let ws = WatchableStore::new(Arc::clone(&store)).expect("watchable");
    Fixture {
        _dir: dir,
        backend,
        store,
        ws,
    }
}

impl Fixture {
    fn put(&self, key: &str, val: &str) -> i64 {
        write(&self.backend, &self.store, |w| {
            w.put(key.as_bytes(), val.as_bytes(), 0).unwrap()
        })
    }

    fn delete(&self, key: &str) {
        write(&self.backend, &self.store, |w| {
            w.delete_range(key.as_bytes(), b"").unwrap();
        });
    }

    fn compact(&self, rev: i64) {
        let mut wtx = self.backend.write_tx().unwrap();
        self.store.compact(&mut wtx, rev).unwrap();
        self.backend.commit(wtx).unwrap();
        self.store.publish();
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    }
}

/// Waits (bounded) for the next response.
fn next(s: &WatchStream) -> WatchResponse {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = s.try_recv() {
            return r;
        }
        assert!(Instant::now() < deadline, "no response within 5 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Collects event (key, mod revision) pairs until `n` events arrived (bounded).
fn events(s: &WatchStream, n: usize) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = next(s);
        for e in r.events.iter() {
            let kv = e.kv.as_ref().unwrap();
            out.push((
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            ));
        }
    }
    out
}

#[test]
fn created_comes_first_then_live_events() {
    let f = fixture();
    f.put("a", "0");
    let s = f.ws.open_stream();
    s.watch(&create("a", "", 0));
    let c = next(&s);
    assert!(c.created && !c.canceled);
    assert_eq!((c.watch_id, c.revision), (0, 2));
    f.put("b", "x");
    f.put("a", "1");
    let r = next(&s);
    assert_eq!(r.watch_id, 0);
    assert_eq!(r.revision, 4);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kv.as_ref().unwrap().value, b"1");
    assert!(s.try_recv().is_none());
}

#[test]
fn historical_watch_hands_over_without_gap() {
    let f = fixture();
    for i in 0..50 {
        f.put(&format!("p/{i}"), "v");
    }
    let s = f.ws.open_stream();
    s.watch(&create("p/", "p0", 2));
    assert!(next(&s).created);
    // Writes racing the catch-up.
    for i in 50..80 {
        f.put(&format!("p/{i}"), "v");
    }
    let got = events(&s, 80);
    let revs: Vec<i64> = got.iter().map(|e| e.1).collect();
    assert_eq!(revs, (2..82).collect::<Vec<_>>());
    f.put("p/x", "v");
    assert_eq!(events(&s, 1), vec![("p/x".to_string(), 82)]);
    assert_eq!(f.ws.stats().synced, 1);
}

#[test]
fn compacted_start_revision_is_answered_and_canceled() {
    let f = fixture();
    for _ in 0..5 {
        f.put("k", "v");
    }
    f.compact(4);
    let s = f.ws.open_stream();
    s.watch(&create("k", "", 2));
    assert!(next(&s).created);
    let r = next(&s);
    assert!(r.canceled);
    assert_eq!(r.compact_revision, 4);
    // The id stays taken until canceled.
    assert!(s.cancel(0));
    assert!(next(&s).canceled);
    assert_eq!(f.ws.stats().watchers, 0);
}

#[test]
fn duplicate_id_and_empty_range_are_refused() {
    let f = fixture();
    let s = f.ws.open_stream();
    let mut req = create("a", "", 0);
    req.watch_id = 7;
    s.watch(&req);
    assert_eq!(next(&s).watch_id, 7);
    s.watch(&req);
    let r = next(&s);
    assert!(r.created && r.canceled);
    assert_eq!((r.watch_id, r.cancel_reason), (-1, ERR_DUPLICATE_ID));
    s.watch(&create("b", "a", 0));
    let r = next(&s);
    assert_eq!((r.watch_id, r.cancel_reason), (-1, ERR_EMPTY_RANGE));
    // Auto ids skip taken ones.
    s.watch(&create("a", "", 0));
    assert_eq!(next(&s).watch_id, 0);
    assert!(!s.cancel(42));
}

#[test]
fn filters_and_ranges() {
    let f = fixture();
    let s = f.ws.open_stream();
    let mut noput = create("a", "c", 0);
    noput.filters = vec![0];
    s.watch(&noput);
    s.watch(&create("", "\0", 0)); // every key
    s.watch(&create("b", "\0", 0)); // >= b
    for _ in 0..3 {
        assert!(next(&s).created);
    }
    f.put("a", "1"); // rev 2: watchers 1
    f.put("b", "1"); // rev 3: watchers 1, 2
    f.delete("a"); // rev 4: watchers 0, 1
    let mut by_id: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut n = 0;
    while n < 5 {
        let r = next(&s);
        for e in r.events.iter() {
            by_id
                .entry(r.watch_id)
                .or_default()
                .push(e.kv.as_ref().unwrap().mod_revision);
            n += 1;
        }
    }
    assert_eq!(by_id[&0], vec![4]);
    assert_eq!(by_id[&1], vec![2, 3, 4]);
    assert_eq!(by_id[&2], vec![3]);
}

#[test]
fn one_revision_is_one_response() {
    let f = fixture();
    let s = f.ws.open_stream();
    s.watch(&create("t/", "t0", 0));
    next(&s);
    write(&f.backend, &f.store, |w| {
        for i in 0..10 {
            w.put(format!("t/{i}").as_bytes(), b"v", 0).unwrap();
        }
    });
    let r = next(&s);
    assert_eq!(r.events.len(), 10);
    assert!(r
        .events
        .iter()
        .all(|e| e.kv.as_ref().unwrap().mod_revision == 2));
}

#[test]
fn slow_stream_becomes_victim_and_catches_up_in_order() {
    let f = fixture();
    let slow = f.ws.open_stream();
    let fast = f.ws.open_stream();
    slow.watch(&create("k", "", 0));
    fast.watch(&create("k", "", 0));
    next(&slow);
    next(&fast);
    let n = QUEUE_BASE as i64 * 3;
    for i in 0..n {
        f.put("k", &i.to_string());
        // The fast stream keeps up.
        assert_eq!(events(&fast, 1)[0].1, i + 2);
    }
    assert!(
        f.ws.stats().victims + f.ws.stats().unsynced > 0,
        "{:?}",
        f.ws.stats()
    );
    let revs: Vec<i64> = events(&slow, n as usize).iter().map(|e| e.1).collect();
    assert_eq!(revs, (2..n + 2).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.ws.stats().synced != 2 {
        assert!(Instant::now() < deadline, "{:?}", f.ws.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    f.put("k", "last");
    assert_eq!(events(&slow, 1)[0].1, n + 2);
}

#[test]
fn progress_request_waits_for_sync() {
    let f = fixture();
    for _ in 0..3 {
        f.put("k", "v");
    }
    let s = f.ws.open_stream();
    s.request_progress();
    let r = next(&s);
    assert_eq!((r.watch_id, r.revision), (INVALID_WATCH_ID, 4));
    s.watch(&create("k", "", 1));
    assert!(next(&s).created);
    s.request_progress();
    // The progress response comes after the catch-up events, never before.
    let first = next(&s);
    assert_eq!(first.events.len(), 3, "{first:?}");
    let p = next(&s);
    assert_eq!((p.watch_id, p.revision, p.events.len()), (-1, 4, 0));

    let mut req = create("k", "", 0);
    req.progress_notify = true;
    req.watch_id = 5;
    s.watch(&req);
    next(&s);
    s.progress_tick();
    let p = next(&s);
    assert_eq!((p.watch_id, p.revision), (5, 4));
    f.put("k", "v");
    events(&s, 2); // both watchers
    s.progress_tick(); // events were sent since the last tick: nothing
    assert!(s.try_recv().is_none());
    s.progress_tick();
    assert_eq!(next(&s).watch_id, 5);
}

#[test]
fn closing_a_stream_removes_its_watchers() {
    let f = fixture();
    let s = f.ws.open_stream();
    for i in 0..100 {
        s.watch(&create(&format!("k{}", i % 10), "", 0));
    }
    assert_eq!(f.ws.stats().watchers, 100);
    assert_eq!(f.ws.stats().ranges, 10);
    drop(s);
    let st = f.ws.stats();
    assert_eq!((st.watchers, st.ranges, st.streams), (0, 0, 0));
    f.put("k1", "v"); // nobody to deliver to
}

#[test]
fn future_start_revision_skips_earlier_events() {
    let f = fixture();
    let s = f.ws.open_stream();
    s.watch(&create("k", "", 4));
    assert_eq!(next(&s).revision, 1);
    f.put("k", "a"); // 2
    f.put("k", "b"); // 3
    f.put("k", "c"); // 4
    assert_eq!(events(&s, 1), vec![("k".to_string(), 4)]);
}

#[test]
fn reload_from_snapshot_catches_synced_watchers_up() {
    let f = fixture();
    f.put("k", "0"); // 2
    let s = f.ws.open_stream();
    s.watch(&create("k", "", 0));
    assert!(next(&s).created);
    // Another store instance writes revisions 3..=5 behind this one's back, as an
    // installed snapshot would.
    let other = Store::open(Arc::clone(&f.backend)).unwrap();
    for v in ["a", "b", "c"] {
        write(&f.backend, &other, |w| {
            w.put(b"k", v.as_bytes(), 0).unwrap();
        });
    }
    f.store.reload().unwrap();
    let got = events(&s, 3);
    assert_eq!(got.iter().map(|e| e.1).collect::<Vec<_>>(), vec![3, 4, 5]);
    f.put("k", "d");
    assert_eq!(events(&s, 1)[0].1, 6);
}
