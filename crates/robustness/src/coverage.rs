//! What a scenario must have exercised before "no violations" means anything.
//!
//! Invariants: a scenario passes only if every check below holds; each shortfall is reported
//! as a violation naming what was missing, so a run that checked little fails instead of
//! passing quietly:
//! - each operation kind its profile relies on succeeded at least a minimum number of times
//!   (writes, linearizable reads, CAS, lease revokes, ...);
//! - at least [`MIN_FAULTS`] faults of the scenario's kind were injected and none failed to
//!   inject (a scenario without faults, [`FaultKind::None`], needs none); in the fail-point
//!   scenario at least one armed point fired;
//! - the exact-replay horizon reached the revision the members converged on;
//! - no per-key linearizability search was left inconclusive;
//! - every watcher that was started reported back and saw the final revision.

use std::collections::BTreeMap;

use crate::faults::{FaultKind, FaultLog};
use crate::traffic::Profile;
use crate::watcher::WatchRecord;

/// Faults a scenario with a fault kind must have injected.
pub const MIN_FAULTS: usize = 2;

/// Minimum successful operations per kind, by profile (kinds as `Request::kind` names them).
pub fn minimums(profile: Profile) -> &'static [(&'static str, usize)] {
    match profile {
        Profile::Etcd => &[
            ("put", 20),
            ("get", 20),
            ("delete", 3),
            ("txn-cas", 5),
            ("put-with-lease", 1),
            ("lease-revoke", 1),
            // Not "compact": client 0 compacts on ~1% of its steps, so a short run with a
            // leader kill can have none (seen in CI); the fail-point scenario forces them.
        ],
        Profile::Kubernetes => &[("txn-cas", 50), ("get", 50), ("list", 5)],
        Profile::ConfigService => &[("put", 50), ("get", 50)],
    }
}

/// What the checks saw, gathered by the scenario.
pub struct Seen<'a> {
    pub profile: Profile,
    pub fault: FaultKind,
    /// kind -> (ok, failed, unknown)
    pub by_kind: &'a BTreeMap<&'static str, (usize, usize, usize)>,
    pub faults: &'a FaultLog,
    /// The exact-replay horizon and the revision the members converged on (None: they did
    /// not converge, reported elsewhere).
    pub horizon: i64,
    pub converged: Option<i64>,
    /// Keys whose linearizability search ran out of budget.
    pub inconclusive: &'a [String],
    pub watchers_started: usize,
    pub watch_records: &'a [WatchRecord],
}

/// The shortfalls, each a violation text (empty: the run covered what it must).
pub fn check(s: &Seen) -> Vec<String> {
    let mut v = Vec::new();
    for &(kind, min) in minimums(s.profile) {
        let ok = s.by_kind.get(kind).map_or(0, |c| c.0);
        if ok < min {
            v.push(format!(
                "coverage: only {ok} successful {kind} operations (at least {min} needed)"
            ));
        }
    }
    if s.fault != FaultKind::None {
        if s.faults.injected.len() < MIN_FAULTS {
            v.push(format!(
                "coverage: only {} faults injected (at least {MIN_FAULTS} needed)",
                s.faults.injected.len()
            ));
        }
        for e in &s.faults.errors {
            v.push(format!("coverage: a fault failed to inject: {e}"));
        }
    }
    if s.fault == FaultKind::FailPoint && s.faults.points_fired.is_empty() {
        v.push("coverage: no armed fail point fired".into());
    }
    if let Some(c) = s.converged {
        if s.horizon < c {
            v.push(format!(
                "coverage: exact replay stopped at revision {} before the converged revision {c}",
                s.horizon
            ));
        }
    }
    if !s.inconclusive.is_empty() {
        v.push(format!(
            "coverage: linearizability search inconclusive for keys {:?}",
            s.inconclusive
        ));
    }
    if s.watch_records.len() < s.watchers_started {
        v.push(format!(
            "coverage: {} of {} watchers reported back",
            s.watch_records.len(),
            s.watchers_started
        ));
    }
    if let Some(c) = s.converged {
        for r in s.watch_records {
            let last = r.resps.iter().map(|x| x.header_rev).max().unwrap_or(0);
            if last < c {
                v.push(format!(
                    "coverage: watcher {} stopped at revision {last}, before the final revision {c}",
                    r.id
                ));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::WatchResp;

    fn record(id: usize, rev: i64) -> WatchRecord {
        WatchRecord {
            id,
            key: "k".into(),
            end: String::new(),
            prev_kv: false,
            segments: Vec::new(),
            resps: vec![WatchResp {
                at: 0,
                segment: 0,
                header_rev: rev,
                events: Vec::new(),
                created: false,
                canceled: false,
                compact_rev: 0,
                fragment: false,
            }],
            errors: Vec::new(),
        }
    }

    fn full_counts() -> BTreeMap<&'static str, (usize, usize, usize)> {
        minimums(Profile::Etcd)
            .iter()
            .map(|&(k, n)| (k, (n, 0, 0)))
            .collect()
    }

    #[test]
    fn a_covered_run_passes_and_each_shortfall_is_named() {
        let counts = full_counts();
        let faults = FaultLog {
            injected: vec!["kill -9 n1".into(), "kill -9 n2".into()],
            ..Default::default()
        };
        let recs = [record(0, 50), record(1, 50)];
        let good = Seen {
            profile: Profile::Etcd,
            fault: FaultKind::Kill,
            by_kind: &counts,
            faults: &faults,
            horizon: 50,
            converged: Some(50),
            inconclusive: &[],
            watchers_started: 2,
            watch_records: &recs,
        };
        assert_eq!(check(&good), Vec::<String>::new());

        let mut few = counts.clone();
        few.insert("txn-cas", (0, 3, 0));
        let one_fault = FaultLog {
            injected: vec!["kill -9 n1".into()],
            errors: vec!["SIGSTOP failed".into()],
            ..Default::default()
        };
        let incon = ["/rb/k/1".to_string()];
        let bad = Seen {
            by_kind: &few,
            faults: &one_fault,
            horizon: 40,
            inconclusive: &incon,
            watchers_started: 3,
            watch_records: &[record(0, 50), record(1, 45)],
            ..good
        };
        let v = check(&bad);
        for needle in [
            "successful txn-cas",
            "only 1 faults",
            "failed to inject",
            "stopped at revision 40",
            "inconclusive",
            "2 of 3 watchers",
            "watcher 1 stopped at revision 45",
        ] {
            assert!(v.iter().any(|x| x.contains(needle)), "{needle} in {v:#?}");
        }
        assert_eq!(v.len(), 7, "{v:#?}");
    }
}
