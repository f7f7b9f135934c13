//! check perf|datascale: the argument and occupied-prefix errors are compared with
//! etcdctl's; the runs themselves (60 s / 10 000 keys in etcdctl's smallest loads) are
//! shortened with oxcdctl's hidden `--duration` / `--keys` and their lines checked against
//! etcdctl's formats (`check.go`).
//!
//! Invariants: each run is bounded by `run_for`; the check's prefix is empty afterwards.

use std::time::Duration;

use oxcd_testkit::{etcdctl_bin, serial, ServerKind};

use super::{oxcdctl, run, run_for, start, Golden, Mask};

/// Lines of an output with every run of digits (and a minus before it: memory can shrink)
/// replaced by `N`.
fn shape(s: &str) -> Vec<String> {
    let mut out = String::new();
    let mut prev = false;
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if d && !prev {
            if out.ends_with('-') {
                out.pop();
            }
            out.push('N');
        } else if !d {
            out.push(c);
        }
        prev = d;
    }
    out.lines().map(str::to_string).collect()
}

fn check_suite(kind: ServerKind) {
    let _g = serial();
    let Some(cl) = start("golden-check", kind, 1) else {
        return;
    };
    let ep = cl.members[0].endpoint();
    let mut g = Golden::new(&ep);
    g.check(&["check", "perf", "--load=bogus"], Mask::Exact);
    g.check(&["check", "datascale", "--load=huge"], Mask::Exact);
    for (sub, p) in [
        ("perf", "/etcdctl-check-perf/"),
        ("datascale", "/etcdctl-check-datascale/"),
    ] {
        let k = format!("{p}x");
        assert_eq!(run(&etcdctl_bin(), &ep, &["put", &k, "v"], None).code, 0);
        g.check(&["check", sub], Mask::Exact);
        assert_eq!(run(&etcdctl_bin(), &ep, &["del", &k], None).code, 0);
    }
    g.finish();

    // perf, 3 s of the s load (150 puts/s by 50 clients).
    let r = run_for(
        &oxcdctl(),
        &ep,
        &[
            "check",
            "perf",
            "--load=s",
            "--duration=3",
            "--auto-compact",
        ],
        None,
        Duration::from_secs(30),
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}{}", r.stdout, r.stderr);
    let m = shape(&r.stdout);
    assert!(
        m[2] == "PASS: Throughput is N writes/s" || m[2] == "FAIL: Throughput too low: N writes/s",
        "{}",
        r.stdout
    );
    assert!(
        m[3] == "PASS: Slowest request took N.Ns" || m[3] == "Slowest request took too long: N.Ns",
        "{}",
        r.stdout
    );
    assert!(
        m[4] == "PASS: Stddev is N.Ns" || m[4] == "Stddev too high: N.Ns",
        "{}",
        r.stdout
    );
    // etcdctl deletes and compacts before it prints the verdicts.
    assert_eq!(m[0], "Compacting with revision N");
    assert_eq!(m[1], "Compacted with revision N");
    assert!(m[5] == "PASS" || m[5] == "FAIL", "{}", r.stdout);
    assert_eq!(r.code, if m[5] == "PASS" { 0 } else { 1 }, "{}", r.stderr);
    assert!(
        r.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        r.stderr
    );
    let left = run(
        &etcdctl_bin(),
        &ep,
        &["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"],
        None,
    );
    assert_eq!((left.code, left.stdout.as_str()), (0, ""), "keys left");

    // datascale: oxcdctl with 1000 keys; its lines have etcdctl's shapes.
    let r = run_for(
        &oxcdctl(),
        &ep,
        &["check", "datascale", "--keys=1000"],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        shape(&r.stdout),
        [
            "Start data scale check for work load [N key-value pairs, N bytes per key-value, N concurrent clients].",
            "PASS: Approximate system memory used : N.N MB.",
        ],
        "{}",
        r.stdout
    );
    assert!(r.stdout.starts_with("Start data scale check for work load [1000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."));
    let left = run(
        &etcdctl_bin(),
        &ep,
        &[
            "get",
            "/etcdctl-check-datascale/",
            "--prefix",
            "--keys-only",
        ],
        None,
    );
    assert_eq!((left.code, left.stdout.as_str()), (0, ""), "keys left");
}

#[test]
fn check_against_etcd() {
    check_suite(ServerKind::Etcd);
}

#[test]
fn check_against_oxcd() {
    check_suite(ServerKind::Oxcd);
}
