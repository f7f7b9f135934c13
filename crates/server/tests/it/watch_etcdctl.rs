//! `etcdctl watch` (incl. `--prefix --rev --prev-kv`) against the real binary (oxcd, or
//! etcd with `OXCD_TEST_SERVER=etcd`). `etcdctl watch` never exits on its own, so each run
//! is bounded: it is killed after a few seconds and its output checked.

use std::process::Command;
use std::time::Duration;

use crate::common::{etcdctl_bin, run_with_timeout, CmdOutput, TestServer};

/// Runs `etcdctl watch ARGS` for `secs` seconds, then kills it and returns its output.
fn watch_for(s: &TestServer, args: &[&str], secs: u64) -> CmdOutput {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", s.endpoint()))
        .arg("--dial-timeout=3s")
        .arg("watch")
        .args(args);
    run_with_timeout(cmd, None, Duration::from_secs(secs))
}

fn revision(s: &TestServer) -> i64 {
    let out = s.etcdctl(&["get", "rev-probe", "-w", "json"]);
    out.json()["header"]["revision"].as_i64().expect("revision")
}

#[test]
fn etcdctl_watch_prefix_live() {
    let s = TestServer::start();
    s.etcdctl(&["put", "/cfg/old", "0"]).ok();
    let next = (revision(&s) + 1).to_string();
    let rev_arg = format!("--rev={next}");
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch_for(&s, &["--prefix", "/cfg/", &rev_arg], 6));
        std::thread::sleep(Duration::from_millis(500));
        s.etcdctl(&["put", "/cfg/rate", "200"]).ok();
        s.etcdctl(&["put", "/other", "x"]).ok();
        s.etcdctl(&["del", "/cfg/old"]).ok();
        let out = watcher.join().expect("watcher thread");
        assert_eq!(
            out.stdout, "PUT\n/cfg/rate\n200\nDELETE\n/cfg/old\n\n",
            "{out:#?}"
        );
    });
}

#[test]
fn etcdctl_watch_history_with_prev_kv() {
    let s = TestServer::start();
    s.etcdctl(&["put", "k", "v1"]).ok(); // 2
    s.etcdctl(&["put", "k", "v2"]).ok(); // 3
    s.etcdctl(&["put", "kk", "x"]).ok(); // 4
    s.etcdctl(&["del", "k"]).ok(); // 5
    let out = watch_for(&s, &["--rev=2", "--prev-kv", "k"], 3);
    assert_eq!(
        out.stdout, "PUT\nk\nv1\nPUT\nk\nv1\nk\nv2\nDELETE\nk\nv2\nk\n\n",
        "{out:#?}"
    );
    let out = watch_for(&s, &["--rev=3", "--prefix", "k", "-w", "json"], 3);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let revs: Vec<i64> = lines
        .iter()
        .flat_map(|l| l["Events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["kv"]["mod_revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revs, vec![3, 4, 5], "{out:#?}");
}

#[test]
fn etcdctl_watch_compacted_revision_is_canceled() {
    let s = TestServer::start();
    for i in 0..5 {
        s.etcdctl(&["put", "c", &i.to_string()]).ok();
    }
    s.etcdctl(&["compact", "5"]).ok();
    let out = watch_for(&s, &["--rev=2", "c"], 5);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("required revision has been compacted"),
        "{out:#?}"
    );
}
