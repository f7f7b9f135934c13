//! Revision-order and state-replay check (etcd's own approach): every successful write
//! returns the revision it was applied at, so
//! 1. the acknowledged writes form a total order by revision (no two claim one revision),
//!    consistent with real time (a write that returned before another was invoked has the
//!    lower revision), and linearizable reads' header revisions are consistent with real
//!    time w.r.t. writes and other reads;
//! 2. replaying writes in revision order gives the exact state at every revision, and every
//!    successful read (linearizable, serializable, or at an explicit revision) must return
//!    exactly that state for its range (key, value, create/mod revision, version, lease),
//!    and every txn's `succeeded` flag and inner results must match it.
//!
//! Revisions no acknowledged write claims were taken by writes whose outcome is unknown (or
//! lease revokes). They are filled from the events of a full-range watch (verified against
//! the known writes wherever both exist), from a known revoke, or from a read that observed
//! an unknown put's value; a put event whose value no issued request wrote is a "phantom".
//! A gap that cannot be filled ends the exact replay (the *horizon*); later reads are left
//! to the per-key WGL check. The replay also yields the reference event log (with
//! `prev_kv`) used by the watch checker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::history::{Kv, Op, Outcome, Request, Response, TxnOp, TxnResult, NEVER};
use crate::watcher::Event;

/// Reference log of events up to the horizon, with correct `prev` (state at rev - 1).
#[derive(Debug, Default, Clone)]
pub struct RefLog {
    pub events: BTreeMap<i64, Vec<Event>>,
    pub horizon: i64,
}

#[derive(Debug, Default)]
pub struct ReplayReport {
    pub claims: usize,
    pub max_rev: i64,
    pub filled_from_watch: usize,
    pub reads_checked: usize,
    pub reads_beyond_horizon: usize,
    pub violations: Vec<String>,
    pub log: RefLog,
}

type State = BTreeMap<String, (Kv, Option<usize>)>;

fn in_range(k: &str, key: &str, end: &Option<String>) -> bool {
    match end {
        None => k == key,
        Some(e) => k >= key && k < e.as_str(),
    }
}

fn claims_rev(op: &Op) -> Option<i64> {
    match (&op.req, op.ok()?) {
        (Request::Put { .. }, Response::Put { rev }) => Some(*rev),
        (Request::Delete { .. }, Response::Delete { rev, deleted }) if *deleted > 0 => Some(*rev),
        (
            Request::Txn { then, els, .. },
            Response::Txn {
                rev,
                succeeded,
                results,
            },
        ) => {
            let br = if *succeeded { then } else { els };
            let wrote = br.iter().zip(results.iter().map(Some).chain(std::iter::repeat(None))).any(|(o, r)| {
                matches!(o, TxnOp::Put { .. }) || matches!((o, r), (TxnOp::Delete { .. }, Some(TxnResult::Delete(n))) if *n > 0)
            });
            wrote.then_some(*rev)
        }
        _ => None,
    }
}

fn put(
    st: &mut State,
    key: &str,
    value: &str,
    lease: i64,
    r: i64,
    by: Option<usize>,
    evs: &mut Vec<Event>,
) {
    let prev = st.get(key).map(|x| x.0.clone());
    let kv = Kv {
        key: key.into(),
        value: value.into(),
        create: prev.as_ref().map(|p| p.create).unwrap_or(r),
        modr: r,
        version: prev.as_ref().map(|p| p.version).unwrap_or(0) + 1,
        lease,
    };
    st.insert(key.into(), (kv.clone(), by));
    evs.push(Event {
        put: true,
        kv,
        prev,
    });
}

fn delete(st: &mut State, key: &str, end: &Option<String>, r: i64, evs: &mut Vec<Event>) -> i64 {
    let ks: Vec<String> = st
        .keys()
        .filter(|k| in_range(k, key, end))
        .cloned()
        .collect();
    for k in &ks {
        let prev = st.remove(k).map(|x| x.0);
        let kv = Kv {
            key: k.clone(),
            value: String::new(),
            create: 0,
            modr: r,
            version: 0,
            lease: 0,
        };
        evs.push(Event {
            put: false,
            kv,
            prev,
        });
    }
    ks.len() as i64
}

fn range(st: &State, key: &str, end: &Option<String>) -> Vec<Kv> {
    st.iter()
        .filter(|(k, _)| in_range(k, key, end))
        .map(|(_, v)| v.0.clone())
        .collect()
}

/// Evaluates `op` (a write or txn) at revision `r` on `st`; returns its events and the
/// response it should have had (rev = r if it wrote, else `r - 1`).
fn eval(st: &mut State, op: &Op, r: i64) -> (Vec<Event>, Option<Response>) {
    let mut evs = Vec::new();
    let by = Some(op.id);
    let resp = match &op.req {
        Request::Put { key, value, lease } => {
            put(st, key, value, *lease, r, by, &mut evs);
            Some(Response::Put { rev: r })
        }
        Request::Delete { key, end } => {
            let n = delete(st, key, end, r, &mut evs);
            Some(Response::Delete {
                rev: if n > 0 { r } else { r - 1 },
                deleted: n,
            })
        }
        Request::Txn { cmps, then, els } => {
            let ok = cmps.iter().all(|c| match c {
                crate::history::Cmp::ModRev { key, rev } => {
                    st.get(key).map(|x| x.0.modr).unwrap_or(0) == *rev
                }
                crate::history::Cmp::Value { key, value } => {
                    st.get(key).map(|x| &x.0.value) == Some(value)
                }
            });
            let mut results = Vec::new();
            for o in if ok { then } else { els } {
                results.push(match o {
                    TxnOp::Get { key } => TxnResult::Get(range(st, key, &None)),
                    TxnOp::Put { key, value, lease } => {
                        put(st, key, value, *lease, r, by, &mut evs);
                        TxnResult::Put
                    }
                    TxnOp::Delete { key } => TxnResult::Delete(delete(st, key, &None, r, &mut evs)),
                });
            }
            let rev = if evs.is_empty() { r - 1 } else { r };
            Some(Response::Txn {
                rev,
                succeeded: ok,
                results,
            })
        }
        Request::LeaseRevoke { id } => {
            let ks: Vec<String> = st
                .iter()
                .filter(|(_, v)| v.0.lease == *id)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ks {
                delete(st, &k, &None, r, &mut evs);
            }
            Some(Response::LeaseRevoke {
                rev: if evs.is_empty() { r - 1 } else { r },
            })
        }
        _ => None,
    };
    (evs, resp)
}

fn same_events(a: &[Event], b: &[Event]) -> bool {
    let norm = |e: &Event| {
        (
            e.put,
            e.kv.key.clone(),
            if e.put { Some(e.kv.clone()) } else { None },
            e.kv.modr,
        )
    };
    let mut x: Vec<_> = a.iter().map(norm).collect();
    let mut y: Vec<_> = b.iter().map(norm).collect();
    x.sort_by(|p, q| p.1.cmp(&q.1));
    y.sort_by(|p, q| p.1.cmp(&q.1));
    x == y
}

/// Context for a violation: the op and the writes that produced the state of its keys.
fn context(ops: &[Op], st: &State, keys: &[String]) -> String {
    let mut s = String::new();
    for k in keys {
        if let Some((kv, by)) = st.get(k) {
            match by {
                Some(i) => {
                    s += &format!("\n      last write of {k} (rev {}): {}", kv.modr, ops[*i])
                }
                None => {
                    s += &format!(
                        "\n      last write of {k} (rev {}): known only from watch",
                        kv.modr
                    )
                }
            }
        } else {
            s += &format!("\n      {k}: absent");
        }
    }
    s
}

/// Runs the revision-order checks and the replay. `log_events` are the events of a
/// full-range watch, by revision (may be empty).
pub fn check(ops: &[Op], log_events: &BTreeMap<i64, Vec<Event>>) -> ReplayReport {
    let mut rep = ReplayReport::default();
    // 1. Claims.
    let mut claims: BTreeMap<i64, usize> = BTreeMap::new();
    for op in ops {
        if let Some(r) = claims_rev(op) {
            if let Some(other) = claims.insert(r, op.id) {
                rep.violations.push(format!(
                    "two acknowledged writes at revision {r}:\n    {}\n    {op}",
                    ops[other]
                ));
            }
        }
    }
    rep.claims = claims.len();
    realtime_checks(ops, &claims, &mut rep);

    // 2. Replay.
    let mut value_op: HashMap<&str, usize> = HashMap::new();
    for op in ops.iter().filter(|o| !matches!(o.out, Outcome::Fail(_))) {
        match &op.req {
            Request::Put { value, .. } => {
                value_op.insert(value.as_str(), op.id);
            }
            Request::Txn { then, els, .. } => {
                for o in then.iter().chain(els) {
                    if let TxnOp::Put { value, .. } = o {
                        value_op.insert(value.as_str(), op.id);
                    }
                }
            }
            _ => {}
        }
    }
    let claimed: BTreeSet<usize> = claims.values().copied().collect();
    // Unknown puts observed by reads at a revision.
    let mut observed_unknown: BTreeMap<i64, usize> = BTreeMap::new();
    let mut reads: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut revokes: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut max_rev = claims.keys().next_back().copied().unwrap_or(1);
    for op in ops {
        match (&op.req, op.ok()) {
            (Request::Get { revision, .. }, Some(Response::Get { rev, kvs, .. })) => {
                let at = if *revision > 0 { *revision } else { *rev };
                reads.entry(at).or_default().push(op.id);
                max_rev = max_rev.max(at);
                for kv in kvs {
                    if let Some(&w) = value_op.get(kv.value.as_str()) {
                        if !claimed.contains(&w) {
                            observed_unknown.insert(kv.modr, w);
                        }
                    }
                }
            }
            (Request::Txn { .. } | Request::Delete { .. }, Some(r)) if claims_rev(op).is_none() => {
                reads.entry(r.rev()).or_default().push(op.id);
            }
            (Request::LeaseRevoke { .. }, Some(r)) => {
                revokes.entry(r.rev()).or_default().push(op.id)
            }
            _ => {}
        }
    }
    if let Some((&r, _)) = log_events.iter().next_back() {
        max_rev = max_rev.max(r);
    }
    rep.max_rev = max_rev;
    let mut st: State = BTreeMap::new();
    let mut horizon = 1;
    check_reads(ops, &st, reads.get(&1), &mut rep);
    for r in 2..=max_rev {
        let logged = log_events.get(&r);
        let evs = if let Some(&w) = claims.get(&r) {
            let (evs, resp) = eval(&mut st, &ops[w], r);
            if resp.as_ref() != ops[w].ok() {
                rep.violations.push(format!(
                    "write result differs from the model at revision {r}:\n    {}\n    expected {resp:?}{}",
                    ops[w],
                    context(ops, &st, &evs.iter().map(|e| e.kv.key.clone()).collect::<Vec<_>>())
                ));
            }
            if let Some(l) = logged {
                if !same_events(l, &evs) {
                    rep.violations.push(format!(
                        "watch events at revision {r} differ from the acknowledged write:\n    {}\n    watch: {l:?}\n    expected: {evs:?}",
                        ops[w]
                    ));
                }
            }
            evs
        } else if let Some(l) = logged {
            rep.filled_from_watch += 1;
            let mut evs = Vec::new();
            for e in l {
                if e.put {
                    if !value_op.contains_key(e.kv.value.as_str()) {
                        rep.violations.push(format!(
                            "phantom write at revision {r}: no request wrote {:?}",
                            e.kv
                        ));
                    }
                    let by = value_op.get(e.kv.value.as_str()).copied();
                    put(&mut st, &e.kv.key, &e.kv.value, e.kv.lease, r, by, &mut evs);
                } else {
                    delete(&mut st, &e.kv.key, &None, r, &mut evs);
                }
            }
            if !same_events(l, &evs) {
                rep.violations.push(format!("watch events at revision {r} are inconsistent with the replayed state: {l:?} vs {evs:?}"));
            }
            evs
        } else if let Some(&w) = observed_unknown.get(&r) {
            eval(&mut st, &ops[w], r).0
        } else {
            let mut evs = Vec::new();
            for &v in revokes.get(&r).into_iter().flatten() {
                if evs.is_empty() {
                    evs = eval(&mut st, &ops[v], r).0;
                }
            }
            if evs.is_empty() {
                break;
            }
            evs
        };
        if evs.is_empty() {
            rep.violations.push(format!("revision {r} changed nothing"));
        }
        rep.log.events.insert(r, evs);
        horizon = r;
        check_reads(ops, &st, reads.get(&r), &mut rep);
        for &v in revokes.get(&r).into_iter().flatten() {
            if let Request::LeaseRevoke { id } = &ops[v].req {
                if let Some((k, _)) = st.iter().find(|(_, x)| x.0.lease == *id) {
                    rep.violations.push(format!(
                        "key {k} still attached to lease {id} after its revoke:\n    {}",
                        ops[v]
                    ));
                }
            }
        }
    }
    rep.log.horizon = horizon;
    rep.reads_beyond_horizon = reads.range(horizon + 1..).map(|(_, v)| v.len()).sum();
    rep
}

fn check_reads(ops: &[Op], st: &State, ids: Option<&Vec<usize>>, rep: &mut ReplayReport) {
    for &i in ids.into_iter().flatten() {
        let op = &ops[i];
        rep.reads_checked += 1;
        match (&op.req, op.ok()) {
            (Request::Get { key, end, .. }, Some(Response::Get { kvs, count, .. })) => {
                let exp = range(st, key, end);
                if &exp != kvs || *count != exp.len() as i64 {
                    let keys: BTreeSet<String> =
                        exp.iter().chain(kvs).map(|k| k.key.clone()).collect();
                    rep.violations.push(format!(
                        "read does not match the state at its revision:\n    {op}\n    expected {exp:?}{}",
                        context(ops, st, &keys.into_iter().collect::<Vec<_>>())
                    ));
                }
            }
            (_, Some(resp)) => {
                let mut s2 = st.clone();
                let (_, exp) = eval(&mut s2, op, resp.rev() + 1);
                if exp.as_ref() != Some(resp) {
                    rep.violations.push(format!(
                        "non-writing txn/delete does not match the state at its revision:\n    {op}\n    expected {exp:?}"
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Real-time consistency of revisions for writes and linearizable reads.
fn realtime_checks(ops: &[Op], claims: &BTreeMap<i64, usize>, rep: &mut ReplayReport) {
    // Writes in revision order: no write may return before a lower-revision write began.
    let mut max_inv: Option<usize> = None;
    for (&r, &w) in claims {
        if let Some(m) = max_inv {
            if ops[w].ret < ops[m].inv {
                rep.violations.push(format!(
                    "revision order contradicts real time: the write at revision {r} returned before a write with a lower revision was invoked:\n    {}\n    {}",
                    ops[w], ops[m]
                ));
            }
        }
        if max_inv.is_none_or(|m| ops[w].inv > ops[m].inv) {
            max_inv = Some(w);
        }
    }
    // Linearizable reads (and non-writing txns): header revision vs writes and other reads.
    let lin: Vec<&Op> = ops
        .iter()
        .filter(|o| {
            o.ok().is_some()
                && claims_rev(o).is_none()
                && matches!(
                    &o.req,
                    Request::Get {
                        serializable: false,
                        revision: 0,
                        ..
                    } | Request::Txn { .. }
                )
        })
        .collect();
    let mut by_ret: Vec<(u64, i64, usize)> =
        claims.iter().map(|(&r, &w)| (ops[w].ret, r, w)).collect();
    by_ret.extend(
        lin.iter()
            .map(|o| (o.ret, o.ok().map(|x| x.rev()).unwrap_or(0), o.id)),
    );
    by_ret.sort();
    let mut prefix: Vec<(i64, usize)> = Vec::with_capacity(by_ret.len());
    for (_, r, id) in &by_ret {
        let best = match prefix.last() {
            Some(&(br, bid)) if br >= *r => (br, bid),
            _ => (*r, *id),
        };
        prefix.push(best);
    }
    // For claims sorted by revision: max invoke time among revisions <= R.
    let claim_list: Vec<(i64, u64, usize)> =
        claims.iter().map(|(&r, &w)| (r, ops[w].inv, w)).collect();
    let mut inv_prefix: Vec<(u64, usize)> = Vec::new();
    for &(_, inv, w) in &claim_list {
        let best = match inv_prefix.last() {
            Some(&(bi, bw)) if bi >= inv => (bi, bw),
            _ => (inv, w),
        };
        inv_prefix.push(best);
    }
    for o in lin {
        let rr = o.ok().map(|x| x.rev()).unwrap_or(0);
        let n = by_ret.partition_point(|(t, _, _)| *t < o.inv);
        if n > 0 {
            let (br, bid) = prefix[n - 1];
            if br > rr {
                rep.violations.push(format!(
                    "stale read: header revision {rr} but an operation that finished before it began saw revision {br}:\n    {o}\n    {}",
                    ops[bid]
                ));
            }
        }
        let m = claim_list.partition_point(|(r, _, _)| *r <= rr);
        if m > 0 {
            let (bi, bw) = inv_prefix[m - 1];
            if bi > o.ret && o.ret != NEVER {
                rep.violations.push(format!(
                    "read from the future: header revision {rr} includes a write invoked after the read returned:\n    {o}\n    {}",
                    ops[bw]
                ));
            }
        }
    }
}

/// No acknowledged write lost: in each member's final serializable dump (key -> kv), every
/// acknowledged put must still be there or have been superseded by a later revision, or
/// the key deleted by a later known delete or by an operation of unknown outcome, or (when
/// any lease was revoked) the key attached to a lease by this put or a later one.
pub fn lost_writes(ops: &[Op], member: usize, dump: &BTreeMap<String, Kv>, out: &mut Vec<String>) {
    let mut last_delete: HashMap<String, i64> = HashMap::new();
    let mut maybe_deleted: BTreeSet<String> = BTreeSet::new();
    // Revision each lease was revoked at (i64::MAX: a revoke of unknown outcome, which may
    // have happened at any point after it was sent).
    let mut revoked: HashMap<i64, i64> = HashMap::new();
    // Per key, the leased puts: (revision, lease), i64::MAX for one of unknown outcome.
    let mut leased_puts: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut leased = |key: &String, rev: i64, lease: i64| {
        leased_puts
            .entry(key.clone())
            .or_default()
            .push((rev, lease));
    };
    for op in ops {
        let unknown = matches!(op.out, Outcome::Unknown(_));
        match (&op.req, op.ok()) {
            (Request::Delete { key, .. }, Some(Response::Delete { rev, .. })) => {
                let e = last_delete.entry(key.clone()).or_default();
                *e = (*e).max(*rev);
            }
            (Request::Delete { key, .. }, None) if unknown => {
                maybe_deleted.insert(key.clone());
            }
            (Request::Txn { then, els, .. }, resp) => {
                for o in then.iter().chain(els) {
                    if let TxnOp::Delete { key } = o {
                        match resp {
                            Some(r) => {
                                let e = last_delete.entry(key.clone()).or_default();
                                *e = (*e).max(r.rev());
                            }
                            None if unknown => {
                                maybe_deleted.insert(key.clone());
                            }
                            None => {}
                        }
                    }
                }
            }
            (Request::LeaseRevoke { id }, Some(r)) => {
                revoked.insert(*id, r.rev());
            }
            (Request::LeaseRevoke { id }, None) if unknown => {
                revoked.insert(*id, i64::MAX);
            }
            _ => {}
        }
        let put_rev = match op.ok() {
            Some(r) => Some(r.rev()),
            None if unknown => Some(i64::MAX),
            None => None,
        };
        if let Some(rev) = put_rev {
            match &op.req {
                Request::Put { key, lease, .. } if *lease != 0 => leased(key, rev, *lease),
                Request::Txn { then, els, .. } => {
                    for o in then.iter().chain(els) {
                        if let TxnOp::Put { key, lease, .. } = o {
                            if *lease != 0 {
                                leased(key, rev, *lease);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for op in ops {
        let Some(r) = claims_rev(op) else { continue };
        let puts: Vec<(&String, &String)> = match &op.req {
            Request::Put { key, value, .. } => vec![(key, value)],
            Request::Txn { then, els, .. } => {
                let ok = matches!(
                    op.ok(),
                    Some(Response::Txn {
                        succeeded: true,
                        ..
                    })
                );
                (if ok { then } else { els })
                    .iter()
                    .filter_map(|o| {
                        if let TxnOp::Put { key, value, .. } = o {
                            Some((key, value))
                        } else {
                            None
                        }
                    })
                    .collect()
            }
            _ => vec![],
        };
        for (k, v) in puts {
            let ok = match dump.get(k) {
                Some(kv) => kv.modr > r || (kv.modr == r && &kv.value == v),
                None => {
                    last_delete.get(k).is_some_and(|d| *d > r)
                        || maybe_deleted.contains(k)
                        || revoked_after(&leased_puts, &revoked, k, r)
                }
            };
            if !ok {
                out.push(format!(
                    "acknowledged write lost on member {member}: {op}\n    final value: {:?}",
                    dump.get(k)
                ));
            }
        }
    }
}

/// Whether a lease revoke explains `key` missing after a write at revision `r`: a put at or
/// after `r` attached the key to a lease that was revoked after that put (a put or revoke of
/// unknown outcome may have landed at any revision). Only the revoke of the key's own lease
/// explains it, not any revoke at all.
fn revoked_after(
    leased_puts: &HashMap<String, Vec<(i64, i64)>>,
    revoked: &HashMap<i64, i64>,
    key: &str,
    r: i64,
) -> bool {
    leased_puts.get(key).is_some_and(|puts| {
        puts.iter().any(|&(put_rev, lease)| {
            put_rev >= r
                && revoked
                    .get(&lease)
                    .is_some_and(|&rv| rv == i64::MAX || put_rev == i64::MAX || rv > put_rev)
        })
    })
}
