//! The bounded CI set of robustness scenarios (a few minutes in total). Each scenario runs
//! random traffic against a real `oxcd` cluster while injecting faults and fails with the
//! report (including minimal failing histories and the seed) if any checker finds a
//! violation. Set `OXCD_ROBUSTNESS_SOAK=<seconds>` to run each scenario that long, and
//! `OXCD_ROBUSTNESS_SEED=<n>` to replay a seed. Scenarios run one at a time (2-core box).
//! The fail-point scenario needs the `failpoints` build of oxcd in `OXCD_FAILPOINTS_BIN`; it
//! fails without it unless `OXCD_SKIP_FAILPOINTS=1`. `OXCD_TEST_SERVER=etcd` runs the
//! scenarios against Debian's etcd (all but the fail-point one, which is oxcd's).

use std::sync::Mutex;

use oxcd_robustness::failpoints;
use oxcd_robustness::faults::FaultKind;
use oxcd_robustness::scenario::{self, Report, Scenario};
use oxcd_robustness::traffic::Profile;

static SERIAL: Mutex<()> = Mutex::new(());

fn run(name: &str, members: usize, profile: Profile, fault: FaultKind, secs: u64) -> Report {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Scenario::new(name, members, profile, fault, secs);
    let rep = scenario::run(&s).unwrap_or_else(|e| panic!("scenario {name} could not run: {e}"));
    assert!(rep.ops > 100, "too little traffic:\n{}", rep.summary());
    assert!(rep.ok(), "robustness violations:\n{}", rep.summary());
    rep
}

#[test]
fn single_member_kill_restart() {
    run("1m-kill", 1, Profile::Etcd, FaultKind::Kill, 10);
}

#[test]
fn three_members_mixed_faults() {
    run("3m-mixed", 3, Profile::Etcd, FaultKind::Mixed, 25);
}

#[test]
fn three_members_kill_leader() {
    run(
        "3m-kill-leader",
        3,
        Profile::Etcd,
        FaultKind::KillLeader,
        12,
    );
}

#[test]
fn kubernetes_partitions() {
    run(
        "3m-k8s-partition",
        3,
        Profile::Kubernetes,
        FaultKind::Partition,
        15,
    );
}

#[test]
fn config_service_pause_and_delay() {
    run(
        "3m-config-pause",
        3,
        Profile::ConfigService,
        FaultKind::Pause,
        10,
    );
    run(
        "3m-config-delay",
        3,
        Profile::ConfigService,
        FaultKind::DelayLoss,
        10,
    );
}

#[test]
fn member_remove_and_readd() {
    run(
        "3m-remove-readd",
        3,
        Profile::Etcd,
        FaultKind::RemoveReadd,
        24,
    );
}

/// A mutant server must fail the run: member 0 stores some puts with a byte appended
/// (`applyCorruptPut`), so its reads and its final state disagree with what was written.
#[test]
fn a_member_that_corrupts_puts_is_caught() {
    assert_eq!(
        oxcd_robustness::cluster::ServerKind::from_env(),
        oxcd_robustness::cluster::ServerKind::Oxcd,
        "the mutant scenario arms oxcd's fail points: it cannot run on etcd"
    );
    if let Err(e) = failpoints::bin() {
        panic!("the mutant scenario needs the failpoints build: {e}");
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = Scenario::new("3m-mutant", 3, Profile::Etcd, FaultKind::None, 8);
    s.mutant = Some("applyCorruptPut=10%return".into());
    let rep = scenario::run(&s).expect("the mutant scenario runs");
    let found: Vec<&String> = rep
        .violations
        .iter()
        .filter(|v| !v.starts_with("coverage:"))
        .collect();
    assert!(
        !found.is_empty(),
        "the checkers found nothing wrong with a member that corrupts puts:\n{}",
        rep.summary()
    );
    // Expected violations: the kept cluster dir is of no use here.
    if let Some(d) = &rep.dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn three_members_fail_points() {
    assert_eq!(
        oxcd_robustness::cluster::ServerKind::from_env(),
        oxcd_robustness::cluster::ServerKind::Oxcd,
        "the fail-point scenario arms oxcd's fail points: it cannot run on etcd"
    );
    if let Err(e) = failpoints::bin() {
        if failpoints::skip_requested() {
            eprintln!(
                "SKIPPING the fail-point scenario ({} = 1): {e}",
                failpoints::SKIP_ENV
            );
            return;
        }
        panic!("the fail-point scenario cannot run: {e}");
    }
    // Long enough to cycle through every point once (3 s a round, 6 s for compaction's).
    let rep = run("3m-failpoints", 3, Profile::Etcd, FaultKind::FailPoint, 60);
    let missing: Vec<_> = failpoints::POINTS
        .iter()
        .filter(|p| !rep.faults.points_fired.iter().any(|f| f == *p))
        .collect();
    assert!(
        missing.is_empty(),
        "fail points armed but never fired: {missing:?}\n{}",
        rep.summary()
    );
}
