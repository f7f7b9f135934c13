//! Leases through the real `etcdctl` (3.4): `lease grant/keep-alive/timetolive --keys/
//! revoke/list` and `put --lease`, with etcdctl's own output formats, and a
//! service-registration run (keep-alive process killed, key gone after the TTL). Runs
//! against oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`); every wait is bounded.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{etcdctl_bin, run_with_timeout, TestServer};

/// `lease 694d7a3c9e2a4a0f granted with TTL(30s)` -> the hex id.
fn granted_id(out: &str, ttl: i64) -> String {
    let line = out.trim();
    let rest = line
        .strip_prefix("lease ")
        .unwrap_or_else(|| panic!("unexpected grant output {line:?}"));
    let (id, tail) = rest.split_once(' ').expect("id");
    assert_eq!(tail, format!("granted with TTL({ttl}s)"), "{line:?}");
    assert_eq!(id.len(), 16, "{line:?}");
    id.to_string()
}

fn get_value(s: &TestServer, key: &str) -> String {
    s.etcdctl(&["get", "--print-value-only", key])
        .ok()
        .trim()
        .to_string()
}

#[test]
fn etcdctl_lease_commands() {
    let s = TestServer::start();
    let id = granted_id(s.etcdctl(&["lease", "grant", "30"]).ok(), 30);
    assert_eq!(
        s.etcdctl(&["put", "--lease", &id, "svc/a", "1"])
            .ok()
            .trim(),
        "OK"
    );
    s.etcdctl(&["put", &format!("--lease={id}"), "svc/b", "2"])
        .ok();
    let out = s.etcdctl(&["lease", "timetolive", "--keys", &id]);
    let out = out.ok().trim().to_string();
    let prefix = format!("lease {id} granted with TTL(30s), remaining(");
    assert!(out.starts_with(&prefix), "{out:?}");
    // etcd lists the keys in map order: accept either.
    assert!(
        out.ends_with("attached keys([svc/a svc/b])")
            || out.ends_with("attached keys([svc/b svc/a])"),
        "{out:?}"
    );
    let out = s.etcdctl(&["lease", "timetolive", &id]);
    assert!(
        !out.ok().contains("attached keys"),
        "no keys unless asked: {out:?}"
    );
    // JSON: numbers as etcdctl prints them.
    let j = s
        .etcdctl(&["-w", "json", "lease", "timetolive", "--keys", &id])
        .json();
    assert_eq!(j["granted-ttl"], 30);
    assert!(j["ttl"].as_i64().unwrap() <= 30 && j["ttl"].as_i64().unwrap() >= 28);
    assert_eq!(j["keys"].as_array().unwrap().len(), 2);
    let j = s
        .etcdctl(&["-w", "json", "lease", "timetolive", "999"])
        .json();
    assert_eq!(
        (j["ttl"].as_i64(), j["granted-ttl"].as_i64()),
        (Some(-1), Some(0))
    );
    assert_eq!(
        s.etcdctl(&["lease", "timetolive", "999"]).ok().trim(),
        "lease 0000000000000999 already expired"
    );
    // list
    let other = granted_id(s.etcdctl(&["lease", "grant", "100"]).ok(), 100);
    let out = s.etcdctl(&["lease", "list"]);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "found 2 leases", "{lines:?}");
    assert!(lines.contains(&id.as_str()) && lines.contains(&other.as_str()));
    // keep-alive --once
    assert_eq!(
        s.etcdctl(&["lease", "keep-alive", "--once", &id])
            .ok()
            .trim(),
        format!("lease {id} keepalived with TTL(30)")
    );
    // put to a missing lease
    let err = s.etcdctl(&["put", "--lease=1234", "k", "v"]);
    assert!(
        err.err()
            .contains("Error: etcdserver: requested lease not found"),
        "{err:?}"
    );
    // revoke deletes the keys; a second revoke fails.
    assert_eq!(
        s.etcdctl(&["lease", "revoke", &id]).ok().trim(),
        format!("lease {id} revoked")
    );
    assert_eq!(get_value(&s, "svc/a"), "");
    assert_eq!(get_value(&s, "svc/b"), "");
    let err = s.etcdctl(&["lease", "revoke", &id]);
    assert!(
        err.err()
            .contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{err:?}"
    );
    // grant rules
    assert_eq!(
        granted_id(s.etcdctl(&["lease", "grant", "1"]).ok(), 2).len(),
        16
    );
    let err = s.etcdctl(&["lease", "grant", "9000000001"]);
    assert!(
        err.err()
            .contains("Error: failed to grant lease (etcdserver: too large lease TTL)"),
        "{err:?}"
    );
}

/// Service registration: a key under a 2 s lease stays while `etcdctl lease keep-alive`
/// runs, and disappears within the TTL (plus the expiry check period) once it is killed.
#[test]
fn service_registration_with_etcdctl_keep_alive() {
    let s = TestServer::start();
    let id = granted_id(s.etcdctl(&["lease", "grant", "2"]).ok(), 2);
    s.etcdctl(&["put", "--lease", &id, "services/web/1", "10.0.0.1:80"])
        .ok();
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", s.endpoint()))
        .args(["lease", "keep-alive", &id]);
    // Runs 4 s (twice the TTL), then is killed: the client is gone.
    let out = run_with_timeout(cmd, None, Duration::from_secs(4));
    let renewals = out
        .stdout
        .lines()
        .filter(|l| *l == format!("lease {id} keepalived with TTL(2)"))
        .count();
    assert!(renewals >= 3, "{out:?}");
    assert_eq!(get_value(&s, "services/web/1"), "10.0.0.1:80");
    let killed = Instant::now();
    let limit = Duration::from_secs(8);
    while get_value(&s, "services/web/1") == "10.0.0.1:80" {
        assert!(killed.elapsed() < limit, "key still there after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone_after = killed.elapsed();
    assert!(
        gone_after >= Duration::from_millis(500),
        "expired too early: {gone_after:?}"
    );
    assert_eq!(
        s.etcdctl(&["lease", "timetolive", &id]).ok().trim(),
        format!("lease {id} already expired")
    );
}
