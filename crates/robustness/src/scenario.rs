//! Runs one scenario end to end: start a cluster, run traffic and watchers while injecting
//! faults, recover, take final reads from every member, then run every checker and build a
//! [`Report`].
//!
//! Invariants: the run is bounded (traffic until the deadline, then bounded recovery and
//! final waits); the cluster is torn down (processes killed by PID) when `run` returns, and
//! its directory (member logs) is kept when a violation was found; the seed is printed so a
//! run can be reproduced with `OXCD_ROBUSTNESS_SEED`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::client::{Gens, RecClient};
use crate::cluster;
use crate::faults::{self, FaultKind, FaultLog};
use crate::history::{Kv, Outcome, Recorder, Request, Response};
use crate::traffic::{self, Profile, TrafficCfg, PREFIX, PREFIX_END};
use crate::watcher::{self, Event, WatchRecord, WatchSpec};
use crate::{coverage, register, replay, serializable, watchcheck};

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub members: usize,
    pub profile: Profile,
    pub fault: FaultKind,
    pub duration: Duration,
    pub clients: usize,
    pub watchers: usize,
    pub seed: u64,
    pub max_ops_per_client: usize,
    /// A deliberately broken member 0 (`FAILPOINTS` spec for the failpoints build), to prove
    /// the checkers catch a server that misbehaves; `None` for real scenarios.
    pub mutant: Option<String>,
}

/// `OXCD_ROBUSTNESS_SOAK=<seconds>`: run every scenario that long instead of its CI length.
pub fn soak_duration() -> Option<Duration> {
    std::env::var("OXCD_ROBUSTNESS_SOAK")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

impl Scenario {
    pub fn new(
        name: &str,
        members: usize,
        profile: Profile,
        fault: FaultKind,
        secs: u64,
    ) -> Scenario {
        let seed = oxcd_testkit::rng::seed_from_env("OXCD_ROBUSTNESS_SEED");
        let (clients, watchers) = match profile {
            Profile::Etcd => (5, 2),
            Profile::Kubernetes => (4, 3),
            Profile::ConfigService => (4, 6),
        };
        let soak = soak_duration();
        Scenario {
            name: name.into(),
            members,
            profile,
            fault,
            duration: soak.unwrap_or(Duration::from_secs(secs)),
            clients,
            watchers,
            seed,
            max_ops_per_client: if soak.is_some() { 2_000_000 } else { 20_000 },
            mutant: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub seed: u64,
    pub ops: usize,
    /// kind -> (ok, failed, unknown)
    pub by_kind: BTreeMap<&'static str, (usize, usize, usize)>,
    pub faults: FaultLog,
    pub replay: String,
    pub register: String,
    pub watch: String,
    pub serializable_reads: usize,
    pub watch_errors: Vec<String>,
    pub violations: Vec<String>,
    pub dir: Option<PathBuf>,
    pub elapsed: Duration,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "=== robustness scenario {} (seed {}, {:.1}s) ===",
            self.name,
            self.seed,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(s, "operations: {} recorded", self.ops);
        for (k, (ok, f, u)) in &self.by_kind {
            let _ = writeln!(s, "  {k:<18} ok {ok:>6}  failed {f:>5}  unknown {u:>5}");
        }
        let _ = writeln!(s, "faults injected: {}", self.faults.injected.len());
        for f in &self.faults.injected {
            let _ = writeln!(s, "  {f}");
        }
        for e in &self.faults.errors {
            let _ = writeln!(s, "  fault error: {e}");
        }
        for e in &self.faults.refused {
            let _ = writeln!(s, "  refused by the cluster: {e}");
        }
        let _ = writeln!(s, "replay: {}", self.replay);
        let _ = writeln!(s, "per-key WGL: {}", self.register);
        let _ = writeln!(s, "watch: {}", self.watch);
        for e in self.watch_errors.iter().take(8) {
            let _ = writeln!(s, "  watch stream break: {e}");
        }
        let _ = writeln!(s, "serializable reads checked: {}", self.serializable_reads);
        if self.violations.is_empty() {
            let _ = writeln!(s, "violations: none");
        } else {
            let _ = writeln!(
                s,
                "VIOLATIONS: {} (reproduce with OXCD_ROBUSTNESS_SEED={}; logs in {:?})",
                self.violations.len(),
                self.seed,
                self.dir
            );
            for v in self.violations.iter().take(30) {
                let _ = writeln!(s, "  - {v}");
            }
        }
        s
    }
}

fn watch_specs(s: &Scenario) -> Vec<WatchSpec> {
    let p = s.profile.key_prefix();
    let pe = traffic::prefix_end(p);
    // Watcher 0 watches everything from revision 1: its events complete the write log.
    let mut v = vec![WatchSpec {
        id: 0,
        key: PREFIX.into(),
        end: PREFIX_END.into(),
        start_rev: 1,
        prev_kv: true,
        first_member: 0,
    }];
    for i in 1..=s.watchers {
        let (key, end, start_rev) = match s.profile {
            Profile::Etcd if i % 2 == 0 => (format!("{p}1"), String::new(), 1),
            Profile::Etcd => (p.to_string(), pe.clone(), 1),
            // list + watch from the list's revision + 1
            Profile::Kubernetes | Profile::ConfigService => (p.to_string(), pe.clone(), 0),
        };
        v.push(WatchSpec {
            id: i,
            key,
            end,
            start_rev,
            prev_kv: i % 3 != 2,
            first_member: i,
        });
    }
    v
}

/// Whether `req` only puts (no deletes, no revokes) and none of its values were seen.
fn unobserved_put_only(req: &Request, seen: &std::collections::HashSet<&str>) -> bool {
    use crate::history::TxnOp;
    match req {
        Request::Put { value, .. } => !seen.contains(value.as_str()),
        Request::Txn { then, els, .. } => then.iter().chain(els).all(|o| match o {
            TxnOp::Put { value, .. } => !seen.contains(value.as_str()),
            TxnOp::Get { .. } => true,
            TxnOp::Delete { .. } => false,
        }),
        _ => false,
    }
}

/// Runs the scenario and checks the history.
pub fn run(s: &Scenario) -> Result<Report, String> {
    let t0 = Instant::now();
    eprintln!(
        "[rb] scenario {}: {} member(s), {:?}, faults {:?}, {:?}, seed {}",
        s.name, s.members, s.profile, s.fault, s.duration, s.seed
    );
    let mut c = cluster::start(&s.name, s.members)?;
    if let Some(spec) = &s.mutant {
        c.kill9(0);
        let extras = oxcd_testkit::SpawnExtras::failpoints(crate::failpoints::bin()?, spec);
        c.try_spawn_with(0, &extras)?;
        c.wait_live_leader(Duration::from_secs(20))?;
        c.log(format!(
            "mutant: {} runs with FAILPOINTS={spec}",
            c.members[0].name
        ));
    }
    let rec = Recorder::new();
    let gens: Gens = Arc::new((0..s.members).map(|_| AtomicU32::new(0)).collect());
    let urls = c.client_urls();
    let trt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + s.duration;
    let final_rev = Arc::new(AtomicI64::new(0));
    let mut watchers = Vec::new();
    for spec in watch_specs(s) {
        let fut = watcher::run_watcher(
            spec,
            urls.clone(),
            rec.clone(),
            deadline,
            final_rev.clone(),
            Duration::from_secs(30),
        );
        watchers.push(trt.spawn(fut));
    }
    let mut clients = Vec::new();
    for id in 0..s.clients {
        let m = id % s.members;
        let cl = {
            let _rt = trt.enter();
            RecClient::new(id, m, &urls[m], rec.clone(), gens.clone())?
        };
        let cfg = TrafficCfg {
            profile: s.profile,
            seed: s.seed,
            deadline,
            max_ops: s.max_ops_per_client,
            pause: Duration::from_millis(8),
        };
        clients.push(trt.spawn(traffic::run_client(cl, cfg)));
    }
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut flog = faults::inject_until(&mut c, s.fault, &mut rng, deadline, &gens);
    trt.block_on(async {
        for h in clients {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
    });
    // Recovery and final reads.
    faults::recover_all(&mut c, &mut flog);
    let mut violations = Vec::new();
    if let Err(e) = c.wait_live_leader(Duration::from_secs(30)) {
        violations.push(format!("cluster did not recover after the faults: {e}"));
    }
    let conv = c.wait_running_converged(Duration::from_secs(30));
    if let Err(e) = &conv {
        violations.push(format!("members did not converge after the faults: {e}"));
    }
    let mut dumps: Vec<(usize, BTreeMap<String, Kv>)> = Vec::new();
    for (m, url) in urls.iter().enumerate() {
        let mut cl = {
            let _rt = trt.enter();
            RecClient::new(1000 + m, m, url, rec.clone(), gens.clone())?
        };
        let (lin, ser) = trt.block_on(async {
            let get = |serializable| Request::Get {
                key: PREFIX.into(),
                end: Some(PREFIX_END.into()),
                serializable,
                revision: 0,
            };
            (cl.run(get(false)).await, cl.run(get(true)).await)
        });
        if let Outcome::Fail(e) = &lin {
            violations.push(format!("final linearizable read on member {m} failed: {e}"));
        }
        match ser {
            Outcome::Ok(Response::Get { kvs, .. }) => {
                dumps.push((m, kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect()))
            }
            o => violations.push(format!(
                "final serializable read on member {m} failed: {o:?}"
            )),
        }
    }
    final_rev.store(*conv.as_ref().unwrap_or(&1), Ordering::SeqCst);
    let records: Vec<WatchRecord> = trt.block_on(async {
        let mut out = Vec::new();
        for h in watchers {
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(45), h).await {
                out.push(r);
            }
        }
        out
    });
    trt.shutdown_timeout(Duration::from_secs(2));
    let ops = rec.ops();
    eprintln!("[rb] {}: traffic done, {} ops; checking", s.name, ops.len());

    // Checks.
    let mut log_events: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    if let Some(w0) = records.iter().find(|r| r.id == 0) {
        for r in &w0.resps {
            for e in &r.events {
                let l = log_events.entry(e.kv.modr).or_default();
                if !l.iter().any(|x| x.kv.key == e.kv.key) {
                    l.push(e.clone());
                }
            }
        }
    }
    let rp = replay::check(&ops, &log_events);
    violations.extend(rp.violations.iter().cloned());
    // With every revision up to the final one accounted for, an unknown put whose value
    // appears nowhere in the log never happened: drop it (etcd's "patched history").
    let final_r = *conv.as_ref().unwrap_or(&i64::MAX);
    let wgl_ops: Vec<_> = if rp.log.horizon >= rp.max_rev && rp.log.horizon >= final_r {
        let seen: std::collections::HashSet<&str> = rp
            .log
            .events
            .values()
            .flatten()
            .filter(|e| e.put)
            .map(|e| e.kv.value.as_str())
            .collect();
        ops.iter()
            .filter(|o| {
                !(matches!(o.out, Outcome::Unknown(_)) && unobserved_put_only(&o.req, &seen))
            })
            .cloned()
            .collect()
    } else {
        ops.clone()
    };
    let mut rg = register::check(&wgl_ops, 2_000_000);
    if !rg.inconclusive.is_empty() {
        // An inconclusive search checked nothing: grow the budget once rather than pass.
        eprintln!(
            "[rb] {}: {} keys inconclusive, searching again with 10x the budget",
            s.name,
            rg.inconclusive.len()
        );
        rg = register::check(&wgl_ops, 20_000_000);
    }
    for (k, core) in &rg.violations {
        let mut v = format!(
            "per-key history of {k} is not linearizable; minimal failing history ({} ops):",
            core.len()
        );
        for &i in core {
            let _ = write!(v, "\n    {}", ops[i]);
        }
        violations.push(v);
    }
    let max_compact = ops
        .iter()
        .filter(|o| !matches!(o.out, crate::history::Outcome::Fail(_)))
        .filter_map(|o| match o.req {
            crate::history::Request::Compact { revision } => Some(revision),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let wr = watchcheck::check(&records, &rp.log, max_compact);
    violations.extend(wr.violations.iter().cloned());
    let (nser, sv) = serializable::check(&ops);
    violations.extend(sv);
    for (m, d) in &dumps {
        replay::lost_writes(&ops, *m, d, &mut violations);
    }
    violations.extend(flog.violations.iter().cloned());
    for cr in &flog.crashes {
        violations.push(format!("server crash: {cr}"));
    }
    let mut by_kind: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
    for op in &ops {
        let e = by_kind.entry(op.req.kind()).or_default();
        match op.out {
            Outcome::Ok(_) => e.0 += 1,
            Outcome::Fail(_) => e.1 += 1,
            Outcome::Unknown(_) => e.2 += 1,
        }
    }
    violations.extend(coverage::check(&coverage::Seen {
        profile: s.profile,
        fault: s.fault,
        by_kind: &by_kind,
        faults: &flog,
        horizon: rp.log.horizon,
        converged: conv.as_ref().ok().copied(),
        inconclusive: &rg.inconclusive,
        watchers_started: watch_specs(s).len(),
        watch_records: &records,
    }));
    let dir = (!violations.is_empty()).then(|| c.keep());
    if let Some(d) = &dir {
        // Full history and watch records for offline analysis.
        let h: String = ops.iter().map(|o| format!("{o}\n")).collect();
        let _ = std::fs::write(d.join("history.txt"), h);
        let w: String = records.iter().map(|r| format!("{r:#?}\n")).collect();
        let _ = std::fs::write(d.join("watches.txt"), w);
    }
    let rep = Report {
        name: s.name.clone(),
        seed: s.seed,
        ops: ops.len(),
        by_kind,
        faults: flog,
        replay: format!(
            "{} acknowledged writes, max revision {}, exact replay up to revision {} ({} revisions filled from the watch log), {} reads checked exactly, {} reads beyond the horizon",
            rp.claims, rp.max_rev, rp.log.horizon, rp.filled_from_watch, rp.reads_checked, rp.reads_beyond_horizon
        ),
        register: format!("{} keys, {} projected ops, {} inconclusive {:?}", rg.keys, rg.entries, rg.inconclusive.len(), rg.inconclusive),
        watch: format!(
            "{} watchers, {} responses, {} events, {} progress notifications, {} resumes, {} revisions compared to the log",
            wr.watchers, wr.responses, wr.events, wr.progress_notifications, wr.resumes, wr.revisions_compared
        ),
        serializable_reads: nser,
        watch_errors: records.iter().flat_map(|r| r.errors.iter().map(move |e| format!("watcher {}: {e}", r.id))).collect(),
        violations,
        dir,
        elapsed: t0.elapsed(),
    };
    eprintln!("{}", rep.summary());
    Ok(rep)
}
