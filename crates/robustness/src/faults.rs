//! Fault injectors. [`inject_until`] repeatedly picks a target, injects one fault, holds
//! it, recovers, and waits (bounded) for the cluster to have a leader again.
//!
//! Invariants: after every iteration and when it returns, every fault it injected has been
//! recovered (members running and resumed, proxy healed, link faults cleared); it runs
//! until `deadline` and at most 1000 iterations; members that exit on their own are
//! restarted and reported as crashes (a crash at an armed fail point is expected and is
//! not one of them).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use crate::client::Gens;
use crate::cluster::Cluster;
use crate::proxy::LinkFault;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    None,
    /// kill -9 a random member (leader included) and restart it.
    Kill,
    /// kill -9 the leader and restart it.
    KillLeader,
    /// SIGSTOP a random member, SIGCONT later.
    Pause,
    /// Isolate the leader (or a random member) on the peer network.
    Partition,
    /// Delay, jitter and loss on the peer links of one member or all.
    DelayLoss,
    /// Remove a member, wipe it, re-add it.
    RemoveReadd,
    /// Respawn a member from the failpoints build armed to panic at one fail point (WAL
    /// save, backend commit, compaction; cycling), let it crash, restart it normally
    /// (see [`crate::failpoints`]). Not part of [`FaultKind::Mixed`].
    FailPoint,
    /// A random mix of all of the above.
    Mixed,
}

/// What the injector did.
#[derive(Debug, Default)]
pub struct FaultLog {
    pub injected: Vec<String>,
    pub crashes: Vec<String>,
    pub errors: Vec<String>,
    /// Injections the cluster rightly refused (a member remove while peers had not been
    /// connected for the health interval): neither injected nor a failure.
    pub refused: Vec<String>,
    /// Fail points that were armed and fired (the fail-point fault).
    pub points_fired: Vec<String>,
    /// Misbehaviour seen while injecting (e.g. a fail point that panicked without the
    /// process exiting).
    pub violations: Vec<String>,
}

/// etcd's `HealthInterval` plus a margin: how long peers must have been connected before a
/// voter may be removed.
const RECONFIG_SETTLE: Duration = Duration::from_millis(5500);

fn sleep_until(deadline: Instant, d: Duration) {
    let now = Instant::now();
    if now < deadline {
        std::thread::sleep(d.min(deadline - now));
    }
}

fn check_crashes(c: &mut Cluster, log: &mut FaultLog) {
    for i in c.reap_exited() {
        let tail = c.log_tail(i, 3000);
        log.crashes.push(format!(
            "member {} exited on its own; log tail:\n{tail}",
            c.members[i].name
        ));
        if let Err(e) = c.try_spawn(i) {
            log.errors.push(format!("restart after crash: {e}"));
        }
    }
}

/// Injects faults of `kind` until `deadline`.
pub fn inject_until(
    c: &mut Cluster,
    kind: FaultKind,
    rng: &mut StdRng,
    deadline: Instant,
    gens: &Gens,
) -> FaultLog {
    let mut log = FaultLog::default();
    if kind == FaultKind::None {
        while Instant::now() < deadline {
            sleep_until(deadline, Duration::from_millis(500));
            check_crashes(c, &mut log);
        }
        return log;
    }
    let n = c.members.len();
    // etcd's strict reconfig check (oxcd's too) refuses to remove a voter until the others
    // have been connected for its health interval (5 s): wait that long after the start and
    // after each membership change instead of counting the refusal as a failed injection.
    let mut members_stable_at = Instant::now() + RECONFIG_SETTLE;
    for round in 0..1000 {
        sleep_until(deadline, Duration::from_millis(rng.gen_range(500..1500)));
        if Instant::now() + Duration::from_secs(2) >= deadline {
            break;
        }
        check_crashes(c, &mut log);
        let k = match kind {
            FaultKind::Mixed => {
                let all = [
                    FaultKind::Kill,
                    FaultKind::KillLeader,
                    FaultKind::Pause,
                    FaultKind::Partition,
                    FaultKind::DelayLoss,
                    FaultKind::RemoveReadd,
                ];
                all[rng.gen_range(0..all.len())]
            }
            k => k,
        };
        let leader = c.leader();
        let target = match k {
            FaultKind::KillLeader => leader.unwrap_or(0),
            FaultKind::Partition if rng.gen_bool(0.6) => leader.unwrap_or(0),
            _ => rng.gen_range(0..n),
        };
        let is_leader = leader == Some(target);
        let name = c.members[target].name.clone();
        let hold = Duration::from_millis(rng.gen_range(800..2500));
        let desc = match k {
            FaultKind::Kill | FaultKind::KillLeader => {
                c.kill9(target);
                sleep_until(deadline + Duration::from_secs(5), hold);
                if let Err(e) = c.try_spawn(target) {
                    log.errors.push(e);
                }
                format!(
                    "kill -9 {name}{} for {hold:?}, restarted",
                    if is_leader { " (leader)" } else { "" }
                )
            }
            FaultKind::Pause => {
                c.pause(target);
                sleep_until(deadline + Duration::from_secs(5), hold);
                c.resume(target);
                format!(
                    "SIGSTOP {name}{} for {hold:?}, SIGCONT",
                    if is_leader { " (leader)" } else { "" }
                )
            }
            FaultKind::Partition if n > 1 => {
                let p = c.proxy.as_ref().expect("partition needs the proxy");
                let pair = rng.gen_bool(0.3);
                let other = (target + 1 + rng.gen_range(0..n - 1)) % n;
                if pair {
                    p.cut(target, other);
                } else {
                    p.isolate(target);
                }
                sleep_until(deadline + Duration::from_secs(5), hold);
                p.heal();
                if pair {
                    format!("cut link {name} <-> {} for {hold:?}", c.members[other].name)
                } else {
                    format!(
                        "isolate {name}{} for {hold:?}",
                        if is_leader { " (leader)" } else { "" }
                    )
                }
            }
            FaultKind::DelayLoss if n > 1 => {
                let p = c.proxy.as_ref().expect("delay needs the proxy");
                let f = LinkFault {
                    delay_ms: rng.gen_range(5..60),
                    jitter_ms: rng.gen_range(0..40),
                    loss: [0.0, 0.05, 0.2][rng.gen_range(0..3)],
                };
                let who = if rng.gen_bool(0.5) {
                    Some(target)
                } else {
                    None
                };
                p.set_link_fault(who, Some(f));
                sleep_until(deadline + Duration::from_secs(5), hold * 2);
                p.set_link_fault(None, None);
                format!(
                    "link fault {f:?} on {} for {:?}",
                    who.map(|_| name.as_str()).unwrap_or("all links"),
                    hold * 2
                )
            }
            FaultKind::FailPoint => match crate::failpoints::inject(c, target, round, rng) {
                Ok(o) => {
                    log.violations.extend(o.violation);
                    log.points_fired.extend(o.fired.map(String::from));
                    o.desc
                }
                Err(e) => {
                    log.errors.push(format!("fail point on {name}: {e}"));
                    if !c.members[target].is_running() {
                        let _ = c.try_spawn(target);
                    }
                    continue;
                }
            },
            FaultKind::RemoveReadd if n > 2 && Instant::now() < members_stable_at => continue,
            FaultKind::RemoveReadd if n > 2 => match c.remove_and_readd(target) {
                Ok(()) => {
                    gens[target].store(c.members[target].data_gen, Ordering::SeqCst);
                    format!(
                        "remove + wipe + re-add {name}{}",
                        if is_leader { " (leader)" } else { "" }
                    )
                }
                Err(e) if e.contains("unhealthy cluster") => {
                    log.refused.push(format!("remove/re-add {name}: {e}"));
                    members_stable_at = Instant::now() + RECONFIG_SETTLE;
                    continue;
                }
                Err(e) => {
                    log.errors.push(format!("remove/re-add {name}: {e}"));
                    if !c.members[target].is_running() {
                        let _ = c.try_spawn(target);
                    }
                    continue;
                }
            },
            _ => continue,
        };
        c.log(&desc);
        log.injected.push(desc);
        // Every fault breaks peer connections; a remove must wait for them to settle again.
        members_stable_at = Instant::now() + RECONFIG_SETTLE;
        if let Err(e) = c.wait_live_leader(Duration::from_secs(20)) {
            log.errors.push(format!("after fault: {e}"));
        }
    }
    recover_all(c, &mut log);
    log
}

/// Lifts every fault: heal, clear link faults, resume, restart stopped members.
pub fn recover_all(c: &mut Cluster, log: &mut FaultLog) {
    if let Some(p) = &c.proxy {
        p.heal();
        p.set_link_fault(None, None);
    }
    check_crashes(c, log);
    for i in 0..c.members.len() {
        if c.members[i].is_paused() {
            c.resume(i);
        }
        if !c.members[i].is_running() {
            if let Err(e) = c.try_spawn(i) {
                log.errors.push(e);
            }
        }
    }
}
