//! Watch guarantees (etcd's documented API guarantees), checked per watcher over its merged
//! stream (all segments, i.e. across resumes on other members):
//! - ordered: event revisions never decrease, and a revision never reappears after a later
//!   one;
//! - unique: no (revision, key) event is delivered twice;
//! - atomic: all events of one revision arrive in one response (fragments merged);
//! - bookmarkable: after a progress notification at revision R no event with revision <= R
//!   arrives;
//! - reliable + resumable: between the first start revision and the last revision the
//!   watcher has covered (last event or progress notification), the events in its range are
//!   exactly the reference log's (up to the replay horizon), except revisions the server
//!   reported compacted;
//! - prev_kv correct: every event's `prev_kv` (when asked for) equals the key's value at
//!   revision - 1, and every event's kv equals the reference event's; a missing `prev_kv`
//!   is correct when a compaction at or above the event's revision was issued (etcd reads
//!   the previous kv when it sends the event: "if the previous KV is already compacted,
//!   nothing will be returned");
//! - consistent: watchers with overlapping ranges agree on every revision both delivered.

use std::collections::{BTreeMap, BTreeSet};

use crate::replay::RefLog;
use crate::watcher::{Event, WatchRecord};

#[derive(Debug, Default)]
pub struct WatchReport {
    pub watchers: usize,
    pub responses: usize,
    pub events: usize,
    pub progress_notifications: usize,
    pub resumes: usize,
    pub revisions_compared: usize,
    pub violations: Vec<String>,
}

fn in_range(k: &str, key: &str, end: &str) -> bool {
    if end.is_empty() {
        k == key
    } else {
        k >= key && k < end
    }
}

/// `got` matches the reference `exp`; `max_compact` is the highest compaction revision any
/// client asked for (its prev_kv may then be gone).
fn ev_eq(got: &Event, exp: &Event, prev_kv: bool, max_compact: i64) -> bool {
    let kv_eq = if got.put {
        got.kv == exp.kv
    } else {
        got.kv.key == exp.kv.key && got.kv.modr == exp.kv.modr
    };
    let prev_ok =
        !prev_kv || got.prev == exp.prev || (got.prev.is_none() && max_compact >= got.kv.modr);
    got.put == exp.put && kv_eq && prev_ok
}

/// Checks every watcher against the reference log.
pub fn check(watchers: &[WatchRecord], log: &RefLog, max_compact: i64) -> WatchReport {
    let mut rep = WatchReport {
        watchers: watchers.len(),
        ..Default::default()
    };
    let mut all: Vec<BTreeMap<i64, Vec<Event>>> = Vec::new();
    for w in watchers {
        let name = format!("watcher {} [{}, {})", w.id, w.key, w.end);
        rep.resumes += w.segments.len().saturating_sub(1);
        rep.responses += w.resps.len();
        let mut by_rev: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        let mut last_rev = 0i64;
        let mut progress = 0i64;
        let mut covered = 0i64;
        let mut compacted: Vec<(i64, i64)> = Vec::new();
        let mut pending: Vec<Event> = Vec::new();
        let mut resp_of_rev: BTreeMap<i64, usize> = BTreeMap::new();
        for (ri, r) in w.resps.iter().enumerate() {
            if r.is_progress() {
                rep.progress_notifications += 1;
                progress = progress.max(r.header_rev);
                covered = covered.max(r.header_rev);
                continue;
            }
            if r.compact_rev > 0 {
                let start = w.segments.get(r.segment).map(|s| s.start_rev).unwrap_or(0);
                compacted.push((start, r.compact_rev));
            }
            let seg_start = w.segments.get(r.segment).map(|s| s.start_rev).unwrap_or(0);
            for e in r.events.iter().filter(|e| e.kv.modr < seg_start) {
                rep.violations.push(format!(
                    "{name}: segment {} (member {:?}) started at revision {seg_start} but delivered an event at revision {}: {e:?}",
                    r.segment,
                    w.segments.get(r.segment).map(|s| s.member),
                    e.kv.modr
                ));
            }
            pending.extend(r.events.iter().cloned());
            if r.fragment {
                continue;
            }
            let evs = std::mem::take(&mut pending);
            for e in evs {
                rep.events += 1;
                let rev = e.kv.modr;
                if rev < last_rev {
                    rep.violations.push(format!("{name}: unordered: event at revision {rev} after revision {last_rev}: {e:?}"));
                }
                if rev <= progress {
                    rep.violations.push(format!(
                        "{name}: bookmark broken: event at revision {rev} after a progress notification at {progress}"
                    ));
                }
                if let Some(&other) = resp_of_rev.get(&rev) {
                    if other != ri {
                        rep.violations.push(format!(
                            "{name}: not atomic: events of revision {rev} split over responses"
                        ));
                    }
                }
                resp_of_rev.insert(rev, ri);
                let list = by_rev.entry(rev).or_default();
                if list.iter().any(|x| x.kv.key == e.kv.key) {
                    rep.violations
                        .push(format!("{name}: duplicate event at revision {rev}: {e:?}"));
                } else {
                    list.push(e);
                }
                last_rev = last_rev.max(rev);
                covered = covered.max(rev);
            }
        }
        // Reliability against the reference log.
        let start = w.segments.first().map(|s| s.start_rev).unwrap_or(1).max(1);
        let upto = covered.min(log.horizon);
        let is_compacted = |r: i64| compacted.iter().any(|&(a, b)| r >= a && r < b);
        for r in start..=upto {
            if is_compacted(r) {
                continue;
            }
            let exp: Vec<&Event> = log
                .events
                .get(&r)
                .into_iter()
                .flatten()
                .filter(|e| in_range(&e.kv.key, &w.key, &w.end))
                .collect();
            let got: Vec<&Event> = by_rev.get(&r).into_iter().flatten().collect();
            rep.revisions_compared += 1;
            let ok = exp.len() == got.len()
                && exp
                    .iter()
                    .all(|e| got.iter().any(|g| ev_eq(g, e, w.prev_kv, max_compact)));
            if !ok {
                rep.violations.push(format!(
                    "{name}: at revision {r} the watcher got {got:?}\n    but the history implies {exp:?}{}",
                    if got.len() < exp.len() { " (missed events: not reliable)" } else { "" }
                ));
            }
        }
        for (&r, _) in by_rev.range(..start) {
            rep.violations.push(format!(
                "{name}: event at revision {r} before its start revision {start}"
            ));
        }
        if rep.violations.len() > 50 {
            rep.violations.truncate(50);
            rep.violations
                .push("(more watch violations omitted)".into());
            break;
        }
        all.push(by_rev);
    }
    // Cross-watcher consistency (also beyond the horizon).
    let sets: Vec<BTreeSet<(i64, String, String)>> = all
        .iter()
        .map(|m| {
            m.values()
                .flatten()
                .map(|e| (e.kv.modr, e.kv.key.clone(), e.kv.value.clone()))
                .collect()
        })
        .collect();
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            let (a, b) = (&watchers[i], &watchers[j]);
            if a.key != b.key || a.end != b.end {
                continue;
            }
            let lo = all[i]
                .keys()
                .next()
                .max(all[j].keys().next())
                .copied()
                .unwrap_or(0);
            let hi = all[i]
                .keys()
                .next_back()
                .min(all[j].keys().next_back())
                .copied()
                .unwrap_or(0);
            let x: BTreeSet<_> = sets[i].iter().filter(|e| e.0 >= lo && e.0 <= hi).collect();
            let y: BTreeSet<_> = sets[j].iter().filter(|e| e.0 >= lo && e.0 <= hi).collect();
            if x != y {
                let diff: Vec<_> = x.symmetric_difference(&y).take(5).collect();
                rep.violations.push(format!(
                    "watchers {} and {} disagree on revisions {lo}..={hi}: e.g. {diff:?}",
                    a.id, b.id
                ));
            }
        }
    }
    rep
}
