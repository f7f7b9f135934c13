//! A Wing–Gong–Lowe linearizability checker (the algorithm of porcupine / Knossos' "wgl"),
//! generic over a [`Model`], plus a history shrinker that finds a small failing history.
//!
//! Invariants:
//! - A history is linearizable iff some total order of its operations respects real time
//!   (an operation that returned before another was invoked comes first) and every operation
//!   is accepted by the model in that order. Operations whose outcome is unknown must have
//!   `ret == NEVER` and a model step that accepts any outcome: linearizing one "at the end"
//!   is the same as it never having happened.
//! - Nondeterministic models are handled by searching over *sets* of model states (the
//!   power-set construction), so the DFS itself is deterministic.
//! - The search is bounded by a step budget; running out gives [`Verdict::Inconclusive`],
//!   never a false pass or a false violation.
//! - Memoisation: a (linearized-set, state-set) pair is explored at most once.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + Ord + Debug;
    type Op: Clone + Debug;
    fn init(&self) -> Self::State;
    /// The states reachable by applying `op` (with its recorded output) in state `s`;
    /// empty if `op`'s output is impossible in `s`.
    fn step(&self, s: &Self::State, op: &Self::Op) -> Vec<Self::State>;
}

/// One operation: invoke and return time (`u64::MAX` when unknown) and the model op.
#[derive(Clone, Debug)]
pub struct Entry<O> {
    pub inv: u64,
    pub ret: u64,
    pub op: O,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Not linearizable; `longest` is the largest number of operations linearized in any
    /// attempt.
    Violation {
        longest: usize,
    },
    Inconclusive,
}

#[derive(Clone, Copy)]
struct Ev {
    op: usize,
    call: bool,
}

/// Checks one history with at most `budget` search steps.
pub fn check<M: Model>(m: &M, hist: &[Entry<M::Op>], budget: u64) -> Verdict {
    let n = hist.len();
    if n == 0 {
        return Verdict::Ok;
    }
    // Events sorted by time; at equal times calls come first (treated as concurrent).
    let mut evs: Vec<(u64, u8, Ev)> = Vec::with_capacity(2 * n);
    for (i, e) in hist.iter().enumerate() {
        evs.push((e.inv, 0, Ev { op: i, call: true }));
        evs.push((e.ret, 1, Ev { op: i, call: false }));
    }
    evs.sort_by_key(|(t, k, e)| (*t, *k, e.op));
    // Doubly linked list over event slots 1..=2n, slot 0 is the head.
    let len = evs.len() + 1;
    let mut next: Vec<usize> = (1..=len).collect();
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
    next[len - 1] = usize::MAX;
    let ev = |slot: usize| evs[slot - 1].2;
    let mut ret_slot = vec![0usize; n];
    let mut call_slot = vec![0usize; n];
    for (s, (_, _, e)) in evs.iter().enumerate() {
        if e.call {
            call_slot[e.op] = s + 1;
        } else {
            ret_slot[e.op] = s + 1;
        }
    }
    let words = n.div_ceil(64);
    let mut lin = vec![0u64; words];
    let mut state: Vec<M::State> = vec![m.init()];
    let mut cache: HashSet<(Vec<u64>, Vec<M::State>)> = HashSet::new();
    let mut stack: Vec<(usize, Vec<M::State>)> = Vec::new();
    let mut longest = 0usize;
    let mut steps = 0u64;
    let mut entry = next[0];

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
        let (p, nx) = (prev[s], next[s]);
        next[p] = nx;
        if nx != usize::MAX {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
        let (p, nx) = (prev[s], next[s]);
        next[p] = s;
        if nx != usize::MAX {
            prev[nx] = s;
        }
    };

    while next[0] != usize::MAX {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        if entry == usize::MAX {
            // Cannot happen: a return event always stops the scan first.
            return Verdict::Inconclusive;
        }
        let e = ev(entry);
        if e.call {
            let mut ns: Vec<M::State> = Vec::new();
            for s in &state {
                ns.extend(m.step(s, &hist[e.op].op));
            }
            ns.sort();
            ns.dedup();
            let mut advanced = false;
            if !ns.is_empty() {
                lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((lin.clone(), ns.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, ns)));
                    longest = longest.max(stack.len());
                    unlink(&mut next, &mut prev, call_slot[e.op]);
                    unlink(&mut next, &mut prev, ret_slot[e.op]);
                    entry = next[0];
                    advanced = true;
                } else {
                    lin[e.op / 64] &= !(1 << (e.op % 64));
                }
            }
            if !advanced {
                entry = next[entry];
            }
        } else {
            // A return before its call was linearized: backtrack.
            let Some((slot, st)) = stack.pop() else {
                return Verdict::Violation { longest };
            };
            let op = ev(slot).op;
            lin[op / 64] &= !(1 << (op % 64));
            state = st;
            relink(&mut next, &mut prev, ret_slot[op]);
            relink(&mut next, &mut prev, call_slot[op]);
            entry = next[slot];
        }
    }
    Verdict::Ok
}

/// Shrinks a non-linearizable history: repeatedly drops chunks and then single operations
/// while the result stays non-linearizable, never dropping an operation for which
/// `keep(i, kept)` is true (e.g. the write whose value a kept read observed). Bounded by
/// `max_checks` checks and `time`. Returns indexes into `hist` of a failing sub-history.
pub fn shrink<M: Model>(
    m: &M,
    hist: &[Entry<M::Op>],
    budget: u64,
    keep: impl Fn(usize, &[bool]) -> bool,
    max_checks: usize,
    time: Duration,
) -> Vec<usize> {
    let t0 = Instant::now();
    let mut kept = vec![true; hist.len()];
    let mut checks = 0;
    let fails = |kept: &[bool]| {
        let sub: Vec<Entry<M::Op>> = hist
            .iter()
            .zip(kept)
            .filter(|(_, k)| **k)
            .map(|(e, _)| e.clone())
            .collect();
        matches!(check(m, &sub, budget), Verdict::Violation { .. })
    };
    let mut chunk = (hist.len() / 2).max(1);
    loop {
        let mut i = 0;
        while i < hist.len() {
            if checks >= max_checks || t0.elapsed() > time {
                return (0..hist.len()).filter(|&i| kept[i]).collect();
            }
            let range: Vec<usize> = (i..(i + chunk).min(hist.len()))
                .filter(|&j| kept[j])
                .collect();
            i += chunk;
            if range.is_empty() {
                continue;
            }
            let mut trial = kept.clone();
            for &j in &range {
                trial[j] = false;
            }
            if range.iter().any(|&j| keep(j, &trial)) {
                continue;
            }
            checks += 1;
            if fails(&trial) {
                kept = trial;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    (0..hist.len()).filter(|&i| kept[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single integer register: Write(v) or Read(v), None output = unknown write.
    struct Reg;
    #[derive(Clone, Debug)]
    enum R {
        W(i32),
        Rd(i32),
        WUnknown(i32),
        /// Nondeterministic: increments by 1 or 2.
        Inc12,
    }
    impl Model for Reg {
        type State = i32;
        type Op = R;
        fn init(&self) -> i32 {
            0
        }
        fn step(&self, s: &i32, op: &R) -> Vec<i32> {
            match op {
                R::W(v) | R::WUnknown(v) => vec![*v],
                R::Rd(v) => {
                    if v == s {
                        vec![*s]
                    } else {
                        vec![]
                    }
                }
                R::Inc12 => vec![s + 1, s + 2],
            }
        }
    }
    fn e(inv: u64, ret: u64, op: R) -> Entry<R> {
        Entry { inv, ret, op }
    }

    #[test]
    fn sequential_ok_and_stale_read_bad() {
        let h = vec![
            e(1, 2, R::W(1)),
            e(3, 4, R::Rd(1)),
            e(5, 6, R::W(2)),
            e(7, 8, R::Rd(2)),
        ];
        assert_eq!(check(&Reg, &h, 10_000), Verdict::Ok);
        let bad = vec![e(1, 2, R::W(1)), e(3, 4, R::W(2)), e(5, 6, R::Rd(1))];
        assert!(matches!(
            check(&Reg, &bad, 10_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn concurrent_reads_may_see_either() {
        // W(1) concurrent with two reads: Rd(0) then Rd(1) is fine, Rd(1) then Rd(0) is not.
        let ok = vec![e(1, 10, R::W(1)), e(2, 3, R::Rd(0)), e(4, 5, R::Rd(1))];
        assert_eq!(check(&Reg, &ok, 10_000), Verdict::Ok);
        let bad = vec![e(1, 10, R::W(1)), e(2, 3, R::Rd(1)), e(4, 5, R::Rd(0))];
        assert!(matches!(
            check(&Reg, &bad, 10_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn unknown_writes_may_or_may_not_happen() {
        let took = vec![
            e(1, u64::MAX, R::WUnknown(7)),
            e(5, 6, R::Rd(7)),
            e(7, 8, R::Rd(7)),
        ];
        assert_eq!(check(&Reg, &took, 10_000), Verdict::Ok);
        let not = vec![e(1, u64::MAX, R::WUnknown(7)), e(5, 6, R::Rd(0))];
        assert_eq!(check(&Reg, &not, 10_000), Verdict::Ok);
        // ...but not both: once seen, it cannot be undone.
        let flip = vec![
            e(1, u64::MAX, R::WUnknown(7)),
            e(5, 6, R::Rd(7)),
            e(7, 8, R::Rd(0)),
        ];
        assert!(matches!(
            check(&Reg, &flip, 10_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn nondeterministic_steps() {
        let ok = vec![e(1, 2, R::Inc12), e(3, 4, R::Rd(2))];
        assert_eq!(check(&Reg, &ok, 10_000), Verdict::Ok);
        let bad = vec![e(1, 2, R::Inc12), e(3, 4, R::Rd(3))];
        assert!(matches!(
            check(&Reg, &bad, 10_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn budget_gives_inconclusive() {
        let h: Vec<_> = (0..40)
            .map(|i| e(1, 100, R::W(i)))
            .chain([e(101, 102, R::Rd(-1))])
            .collect();
        assert_eq!(check(&Reg, &h, 50), Verdict::Inconclusive);
    }

    #[test]
    fn shrink_finds_the_core() {
        let mut h = vec![];
        for i in 0..20 {
            h.push(e(10 * i + 1, 10 * i + 2, R::W(i as i32)));
            h.push(e(10 * i + 3, 10 * i + 4, R::Rd(i as i32)));
        }
        h.push(e(1000, 1001, R::Rd(3))); // stale read
        let keep = |i: usize, kept: &[bool]| {
            // Keep writes whose value a kept read observes.
            matches!(h[i].op, R::W(v) if h.iter().zip(kept).any(|(x, k)| *k && matches!(x.op, R::Rd(r) if r == v)))
        };
        let core = shrink(&Reg, &h, 100_000, keep, 500, Duration::from_secs(5));
        assert!(core.len() <= 3, "{core:?}");
        let sub: Vec<_> = core.iter().map(|&i| h[i].clone()).collect();
        assert!(matches!(
            check(&Reg, &sub, 10_000),
            Verdict::Violation { .. }
        ));
    }
}
