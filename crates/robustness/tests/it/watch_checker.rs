//! The watch checker on hand-made streams: a correct stream passes, and each broken
//! guarantee (a missed event, a duplicate, events out of order, one revision split over two
//! responses, an event after a bookmark at its revision) is flagged with its name.

use std::collections::BTreeMap;

use oxcd_robustness::history::Kv;
use oxcd_robustness::replay::RefLog;
use oxcd_robustness::watchcheck;
use oxcd_robustness::watcher::{Event, Segment, WatchRecord, WatchResp};

fn ev(key: &str, value: &str, rev: i64) -> Event {
    Event {
        put: true,
        kv: Kv {
            key: key.into(),
            value: value.into(),
            create: rev,
            modr: rev,
            version: 1,
            lease: 0,
        },
        prev: None,
    }
}

/// The reference log: revision 2 puts a and b (one txn), 3 puts c, 4 puts d.
fn log() -> RefLog {
    let mut events = BTreeMap::new();
    events.insert(2, vec![ev("a", "1", 2), ev("b", "1", 2)]);
    events.insert(3, vec![ev("c", "1", 3)]);
    events.insert(4, vec![ev("d", "1", 4)]);
    RefLog { events, horizon: 4 }
}

fn resp(header_rev: i64, events: Vec<Event>) -> WatchResp {
    WatchResp {
        at: 0,
        segment: 0,
        header_rev,
        events,
        created: false,
        canceled: false,
        compact_rev: 0,
        fragment: false,
    }
}

/// A watcher over every key from revision 2 that received `resps`.
fn watcher(resps: Vec<WatchResp>) -> WatchRecord {
    WatchRecord {
        id: 1,
        key: "a".into(),
        end: "z".into(),
        prev_kv: false,
        segments: vec![Segment {
            member: 0,
            start_rev: 2,
            opened_at: 0,
        }],
        resps,
        errors: Vec::new(),
    }
}

fn good() -> Vec<WatchResp> {
    vec![
        resp(2, vec![ev("a", "1", 2), ev("b", "1", 2)]),
        resp(3, vec![ev("c", "1", 3)]),
        resp(4, vec![ev("d", "1", 4)]),
    ]
}

fn violations(resps: Vec<WatchResp>) -> Vec<String> {
    watchcheck::check(&[watcher(resps)], &log(), 0).violations
}

fn assert_flagged(what: &str, resps: Vec<WatchResp>, needle: &str) {
    let v = violations(resps);
    assert!(
        v.iter().any(|x| x.contains(needle)),
        "{what}: expected a violation containing {needle:?}, got {v:#?}"
    );
}

#[test]
fn a_correct_stream_passes() {
    let rep = watchcheck::check(&[watcher(good())], &log(), 0);
    assert_eq!(rep.violations, Vec::<String>::new());
    assert_eq!(rep.events, 4);
    assert_eq!(rep.revisions_compared, 3);
}

#[test]
fn a_missed_event_is_flagged() {
    let mut r = good();
    r.remove(1);
    assert_flagged("missed revision 3", r, "missed events");
}

#[test]
fn a_duplicate_event_is_flagged() {
    let mut r = good();
    r.insert(2, resp(3, vec![ev("c", "1", 3)]));
    assert_flagged("revision 3 twice", r, "duplicate event at revision 3");
}

#[test]
fn out_of_order_events_are_flagged() {
    let r = vec![
        resp(2, vec![ev("a", "1", 2), ev("b", "1", 2)]),
        resp(4, vec![ev("d", "1", 4)]),
        resp(4, vec![ev("c", "1", 3)]),
    ];
    assert_flagged("3 after 4", r, "unordered");
}

#[test]
fn a_revision_split_over_two_responses_is_flagged() {
    let mut r = good();
    r[0] = resp(2, vec![ev("a", "1", 2)]);
    r.insert(1, resp(2, vec![ev("b", "1", 2)]));
    assert_flagged("revision 2 split", r, "not atomic");
}

#[test]
fn an_event_after_a_bookmark_at_its_revision_is_flagged() {
    let mut r = good();
    // A progress notification at 3 promises nothing at or below 3 follows.
    r.insert(1, resp(3, vec![]));
    assert_flagged("event 3 after progress 3", r, "bookmark broken");
}

#[test]
fn a_wrong_value_is_flagged() {
    let mut r = good();
    r[1] = resp(3, vec![ev("c", "other", 3)]);
    assert_flagged("wrong value at 3", r, "at revision 3 the watcher got");
}
