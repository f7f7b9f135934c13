//! Per-key WGL check: the KV history is projected onto each key (partitioning keeps the
//! search small) and each projection is checked against a register model with
//! [`crate::wgl`]. This is the check that copes with writes whose outcome is unknown.
//!
//! Projection (sound: a linearizable KV history has linearizable projections):
//! - a successful linearizable get/list becomes, for each key ever used in its range, a read
//!   of that key's value (or absence);
//! - put / delete / multi-op txn / CAS become conditional writes; a txn's compares are
//!   evaluated in the model when they all concern this key, otherwise the recorded
//!   `succeeded` decides the branch (both branches when unknown);
//! - a lease revoke deletes the key if its current value was put with that lease.
//!
//! Serializable reads, reads at an old revision and failed operations are not projected.
//! The register state is the current value (values are unique); `mod_revision` comparisons
//! use the revision each value was written at (learned from responses and reads), and are
//! nondeterministic when that revision is unknown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::history::{Cmp, Op, Outcome, Request, Response, TxnOp, TxnResult};
use crate::wgl::{self, Entry, Model, Verdict};

/// What happens to one key within one branch.
#[derive(Clone, Debug)]
pub enum Eff {
    Put(String),
    Delete,
    /// A read inside the op; `Some(observed)` when the result is known.
    Read(Option<Option<String>>),
    /// Lease revoke: deletes the value if it was put with this lease.
    Revoke(i64),
}

#[derive(Clone, Debug)]
pub struct KOp {
    pub op_id: usize,
    /// Compares, if all of the op's compares concern this key.
    pub guard: Option<Vec<Cmp>>,
    /// Recorded branch (`None`: outcome unknown).
    pub succeeded: Option<bool>,
    pub then: Vec<Eff>,
    pub els: Vec<Eff>,
}

/// The register model of one key.
pub struct KeyModel<'a> {
    pub rev_of: &'a HashMap<String, i64>,
    pub lease_of: &'a HashMap<String, i64>,
}

impl KeyModel<'_> {
    /// Possible results of `cmps` in state `s` (both when undecidable).
    fn guard(&self, s: &Option<String>, cmps: &[Cmp]) -> Vec<bool> {
        let mut unknown = false;
        for c in cmps {
            let r = match c {
                Cmp::Value { value, .. } => Some(s.as_deref() == Some(value.as_str())),
                Cmp::ModRev { rev, .. } => match s {
                    None => Some(*rev == 0),
                    Some(_) if *rev == 0 => Some(false),
                    Some(v) => self.rev_of.get(v).map(|r| r == rev),
                },
            };
            match r {
                Some(false) => return vec![false],
                None => unknown = true,
                Some(true) => {}
            }
        }
        if unknown {
            vec![true, false]
        } else {
            vec![true]
        }
    }
}

fn apply(
    s: &Option<String>,
    effs: &[Eff],
    lease_of: &HashMap<String, i64>,
) -> Option<Option<String>> {
    let mut s = s.clone();
    for e in effs {
        match e {
            Eff::Put(v) => s = Some(v.clone()),
            Eff::Delete => s = None,
            Eff::Read(Some(obs)) if *obs != s => return None,
            Eff::Read(_) => {}
            Eff::Revoke(l) => {
                if s.as_ref().is_some_and(|v| lease_of.get(v) == Some(l)) {
                    s = None;
                }
            }
        }
    }
    Some(s)
}

impl Model for KeyModel<'_> {
    type State = Option<String>;
    type Op = KOp;
    fn init(&self) -> Option<String> {
        None
    }
    fn step(&self, s: &Option<String>, op: &KOp) -> Vec<Option<String>> {
        let branches: Vec<bool> = match (&op.guard, op.succeeded) {
            (Some(g), Some(ok)) => {
                if self.guard(s, g).contains(&ok) {
                    vec![ok]
                } else {
                    vec![]
                }
            }
            (Some(g), None) => self.guard(s, g),
            (None, Some(ok)) => vec![ok],
            (None, None) => vec![true, false],
        };
        branches
            .into_iter()
            .filter_map(|b| apply(s, if b { &op.then } else { &op.els }, self.lease_of))
            .collect()
    }
}

fn in_range(k: &str, key: &str, end: &Option<String>) -> bool {
    match end {
        None => k == key,
        Some(e) => k >= key && k < e.as_str(),
    }
}

/// Projects the history onto keys. Returns key -> entries, plus value -> revision and
/// value -> lease maps.
#[allow(clippy::type_complexity)]
pub fn project(
    ops: &[Op],
) -> (
    BTreeMap<String, Vec<Entry<KOp>>>,
    HashMap<String, i64>,
    HashMap<String, i64>,
) {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut rev_of = HashMap::new();
    let mut lease_of = HashMap::new();
    let mut leased: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for op in ops {
        let put = |k: &str,
                   v: &str,
                   l: i64,
                   keys: &mut BTreeSet<String>,
                   lease_of: &mut HashMap<String, i64>,
                   leased: &mut HashMap<i64, BTreeSet<String>>| {
            keys.insert(k.to_string());
            if l != 0 {
                lease_of.insert(v.to_string(), l);
                leased.entry(l).or_default().insert(k.to_string());
            }
        };
        match &op.req {
            Request::Put { key, value, lease } => {
                put(key, value, *lease, &mut keys, &mut lease_of, &mut leased);
                if let Some(Response::Put { rev }) = op.ok() {
                    rev_of.insert(value.clone(), *rev);
                }
            }
            Request::Txn { then, els, .. } => {
                for (branch, t) in [(true, then), (false, els)] {
                    for o in t {
                        match o {
                            TxnOp::Put { key, value, lease } => {
                                put(key, value, *lease, &mut keys, &mut lease_of, &mut leased);
                                if let Some(Response::Txn { rev, succeeded, .. }) = op.ok() {
                                    if *succeeded == branch {
                                        rev_of.insert(value.clone(), *rev);
                                    }
                                }
                            }
                            TxnOp::Get { key } | TxnOp::Delete { key } => {
                                keys.insert(key.clone());
                            }
                        }
                    }
                }
            }
            Request::Get { .. } => {
                if let Some(Response::Get { kvs, .. }) = op.ok() {
                    for kv in kvs {
                        keys.insert(kv.key.clone());
                        rev_of.entry(kv.value.clone()).or_insert(kv.modr);
                    }
                }
            }
            _ => {}
        }
    }
    let mut parts: BTreeMap<String, Vec<Entry<KOp>>> = BTreeMap::new();
    for op in ops {
        let (inv, ret) = (op.inv, op.ret);
        if matches!(op.out, Outcome::Fail(_)) {
            continue;
        }
        let mut push = |k: &str, kop: KOp| {
            parts
                .entry(k.to_string())
                .or_default()
                .push(Entry { inv, ret, op: kop });
        };
        let simple = |effs: Vec<Eff>| KOp {
            op_id: op.id,
            guard: None,
            succeeded: Some(true),
            then: effs,
            els: vec![],
        };
        match (&op.req, op.ok()) {
            (
                Request::Get {
                    key,
                    end,
                    serializable: false,
                    revision: 0,
                },
                Some(Response::Get { kvs, .. }),
            ) => {
                for k in keys.iter().filter(|k| in_range(k, key, end)) {
                    let obs = kvs
                        .iter()
                        .find(|kv| &kv.key == k)
                        .map(|kv| kv.value.clone());
                    push(k, simple(vec![Eff::Read(Some(obs))]));
                }
            }
            (Request::Put { key, value, .. }, _) => {
                push(key, simple(vec![Eff::Put(value.clone())]))
            }
            (Request::Delete { key, end }, _) => {
                for k in keys.iter().filter(|k| in_range(k, key, end)) {
                    push(k, simple(vec![Eff::Delete]));
                }
            }
            (Request::LeaseRevoke { id }, _) => {
                for k in leased.get(id).into_iter().flatten() {
                    push(k, simple(vec![Eff::Revoke(*id)]));
                }
            }
            (Request::Txn { cmps, then, els }, resp) => {
                let (succeeded, results) = match resp {
                    Some(Response::Txn {
                        succeeded, results, ..
                    }) => (Some(*succeeded), Some(results)),
                    _ => (None, None),
                };
                let mut touched: BTreeSet<&str> = cmps.iter().map(|c| c.key()).collect();
                for o in then.iter().chain(els) {
                    touched.insert(match o {
                        TxnOp::Get { key } | TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
                    });
                }
                for k in touched {
                    let effs = |ops: &Vec<TxnOp>, executed: bool| -> Vec<Eff> {
                        ops.iter()
                            .enumerate()
                            .filter_map(|(i, o)| match o {
                                TxnOp::Put { key, value, .. } if key == k => {
                                    Some(Eff::Put(value.clone()))
                                }
                                TxnOp::Delete { key } if key == k => Some(Eff::Delete),
                                TxnOp::Get { key } if key == k => {
                                    let obs = match (executed, results.map(|r| r.get(i))) {
                                        (true, Some(Some(TxnResult::Get(kvs)))) => {
                                            Some(kvs.first().map(|kv| kv.value.clone()))
                                        }
                                        _ => None,
                                    };
                                    Some(Eff::Read(obs))
                                }
                                _ => None,
                            })
                            .collect()
                    };
                    let local = cmps.iter().all(|c| c.key() == k);
                    push(
                        k,
                        KOp {
                            op_id: op.id,
                            guard: local.then(|| cmps.clone()),
                            succeeded,
                            then: effs(then, succeeded == Some(true)),
                            els: effs(els, succeeded == Some(false)),
                        },
                    );
                }
            }
            _ => {}
        }
    }
    (parts, rev_of, lease_of)
}

/// Result of the per-key check.
#[derive(Debug, Default)]
pub struct RegisterReport {
    pub keys: usize,
    pub entries: usize,
    pub inconclusive: Vec<String>,
    /// (key, minimal failing history as op ids)
    pub violations: Vec<(String, Vec<usize>)>,
}

/// Checks every key's projection.
pub fn check(ops: &[Op], budget: u64) -> RegisterReport {
    let (parts, rev_of, lease_of) = project(ops);
    let m = KeyModel {
        rev_of: &rev_of,
        lease_of: &lease_of,
    };
    let mut rep = RegisterReport {
        keys: parts.len(),
        ..Default::default()
    };
    for (k, hist) in parts {
        rep.entries += hist.len();
        match wgl::check(&m, &hist, budget) {
            Verdict::Ok => {}
            Verdict::Inconclusive => rep.inconclusive.push(k),
            Verdict::Violation { .. } => {
                // Never drop a write whose value a kept read observed.
                let writes_of = |e: &KOp| -> Vec<String> {
                    e.then
                        .iter()
                        .chain(&e.els)
                        .filter_map(|x| {
                            if let Eff::Put(v) = x {
                                Some(v.clone())
                            } else {
                                None
                            }
                        })
                        .collect()
                };
                let keep =
                    |i: usize, kept: &[bool]| {
                        let ws = writes_of(&hist[i].op);
                        !ws.is_empty()
                            && hist.iter().zip(kept).any(|(x, kp)| {
                                *kp && x.op.then.iter().chain(&x.op.els).any(
                                    |e| matches!(e, Eff::Read(Some(Some(v))) if ws.contains(v)),
                                )
                            })
                    };
                let core = wgl::shrink(&m, &hist, budget, keep, 400, Duration::from_secs(20));
                rep.violations
                    .push((k, core.iter().map(|&i| hist[i].op.op_id).collect()));
            }
        }
    }
    rep
}
