//! Maintenance with etcdctl 3.4: `snapshot save`, `defrag`, `endpoint hashkv`, the quota and
//! the NOSPACE alarm (`alarm list/disarm`), revision-mode auto-compaction, and a 3-member
//! cluster's `endpoint hashkv --cluster` / `defrag --cluster`. The single-member tests run
//! against oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`) with the same assertions, except
//! where noted (oxcd leaves NOSPACE by itself once compaction freed space).

use std::time::{Duration, Instant};

use crate::common::{server_kind, ServerKind, TestServer};
use serde_json::Value;

fn json(s: &TestServer, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-w", "json"]);
    serde_json::from_str(s.etcdctl(&a).ok()).expect("etcdctl json")
}

#[test]
fn snapshot_save() {
    let s = TestServer::start();
    for i in 0..50 {
        s.etcdctl(&["put", &format!("k{i}"), &"v".repeat(1000)])
            .ok();
    }
    let file = s.temp_dir().join("backup.db");
    let out = s.etcdctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.success(), "{out:#?}");
    assert!(
        out.stdout.contains("Snapshot saved at") || out.stderr.contains("Snapshot saved at"),
        "{out:#?}"
    );
    let len = std::fs::metadata(&file).expect("snapshot file").len();
    assert!(len > 50_000, "snapshot of 50 KB of values is {len} bytes");
}

#[test]
fn defrag_and_hashkv() {
    let s = TestServer::start();
    for i in 0..50 {
        s.etcdctl(&["put", &format!("k{i}"), &"v".repeat(1000)])
            .ok();
    }

    // HashKV is stable for the same revision and follows compaction.
    let h1 = json(&s, &["endpoint", "hashkv"]);
    let h2 = json(&s, &["endpoint", "hashkv"]);
    assert_eq!(
        h1[0]["HashKV"]["hash"], h2[0]["HashKV"]["hash"],
        "{h1} {h2}"
    );
    assert!(h1[0]["HashKV"]["hash"].as_u64().unwrap_or(0) != 0, "{h1}");
    let rev = h1[0]["HashKV"]["header"]["revision"].as_i64().unwrap();
    s.etcdctl(&["compact", &(rev - 10).to_string(), "--physical"])
        .ok();
    let h3 = json(&s, &["endpoint", "hashkv"]);
    assert_eq!(
        h3[0]["HashKV"]["compact_revision"].as_i64(),
        Some(rev - 10),
        "{h3}"
    );

    let out = s.etcdctl(&["defrag"]);
    assert!(
        out.success() && out.stdout.contains("Finished defragmenting etcd member"),
        "{out:#?}"
    );
    // Every key still there after the defragmentation, and writes go on.
    let got = s
        .etcdctl(&["get", "k", "--prefix", "--keys-only"])
        .ok()
        .to_string();
    assert_eq!(got.lines().filter(|l| !l.is_empty()).count(), 50);
    s.etcdctl(&["put", "after", "defrag"]).ok();
    let st = json(&s, &["endpoint", "status"]);
    let db = st[0]["Status"]["dbSize"].as_i64().unwrap_or(0);
    assert!(db > 0, "{st}");
    if server_kind() == ServerKind::Oxcd {
        let in_use = st[0]["Status"]["dbSizeInUse"].as_i64().unwrap_or(0);
        assert!(in_use > 0 && in_use <= db, "{st}");
    }
}

#[test]
fn quota_raises_nospace_and_reads_deletes_compaction_still_work() {
    let s = TestServer::start_with(&["--quota-backend-bytes", "1000000"]);
    let big = "x".repeat(100_000);
    let mut refused = None;
    for i in 0..100 {
        let out = s.etcdctl(&["put", &format!("big{i}"), &big]);
        if !out.success() {
            refused = Some((i, out));
            break;
        }
    }
    let (n, out) = refused.expect("a 1 MB quota refuses 10 MB of puts");
    assert!(n > 0, "the first put fits");
    assert!(
        out.stderr
            .contains("etcdserver: mvcc: database space exceeded"),
        "{out:#?}"
    );
    // The NOSPACE alarm is raised through Raft (bounded wait: it is proposed async).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = s.etcdctl(&["alarm", "list"]).ok().to_string();
        if l.contains("alarm:NOSPACE") {
            break;
        }
        assert!(Instant::now() < deadline, "no NOSPACE alarm: {l:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Writes are refused, reads and deletes work.
    let out = s.etcdctl(&["put", "small", "x"]);
    assert!(
        out.stderr
            .contains("etcdserver: mvcc: database space exceeded"),
        "{out:#?}"
    );
    assert!(s
        .etcdctl(&["get", "big0", "--keys-only"])
        .ok()
        .contains("big0"));
    s.etcdctl(&["del", "big", "--prefix"]).ok();
    let st = json(&s, &["endpoint", "status"]);
    let rev = st[0]["Status"]["header"]["revision"].as_i64().unwrap();
    s.etcdctl(&["compact", &rev.to_string(), "--physical"]).ok();

    if server_kind() == ServerKind::Oxcd {
        // oxcd leaves NOSPACE by itself once the compaction freed space: no defrag, no
        // disarm (bounded wait: the leader checks every 500 ms).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = s.etcdctl(&["alarm", "list"]).ok().to_string();
            if l.trim().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "NOSPACE not left: {l:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        // etcd's recovery: compact, defrag, disarm.
        s.etcdctl(&["defrag"]).ok();
        s.etcdctl(&["alarm", "disarm"]).ok();
        assert_eq!(s.etcdctl(&["alarm", "list"]).ok().trim(), "");
    }
    s.etcdctl(&["put", "small", "x"]).ok();
    // And the quota still holds after the recovery.
    let refused_again = (0..30).any(|i| !s.etcdctl(&["put", &format!("again{i}"), &big]).success());
    assert!(
        refused_again,
        "3 MB of puts pass a 1 MB quota after the recovery"
    );
}

#[test]
fn alarm_disarm_clears_an_alarm_raised_by_a_write() {
    // Raise NOSPACE, then disarm it explicitly while still over quota: etcd's
    // TestCtlV3AlarmDisarm shape (the alarm goes, the next big write raises it again).
    let s = TestServer::start_with(&["--quota-backend-bytes", "600000"]);
    let big = "y".repeat(100_000);
    let mut refused = false;
    for i in 0..60 {
        if !s.etcdctl(&["put", &format!("b{i}"), &big]).success() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the quota never refused a put");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.etcdctl(&["alarm", "list"]).ok().contains("NOSPACE") {
        assert!(Instant::now() < deadline, "no NOSPACE alarm");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.etcdctl(&["alarm", "disarm"]);
    assert!(out.ok().contains("alarm:NOSPACE"), "{out:#?}");
    assert!(!s.etcdctl(&["alarm", "list"]).ok().contains("NOSPACE"));
}

#[test]
fn revision_auto_compaction_keeps_the_retention() {
    if server_kind() != ServerKind::Oxcd {
        return; // etcd checks every 5 minutes; oxcd's interval is shortened for the test.
    }
    std::env::set_var("OXCD_AUTO_COMPACTION_CHECK_INTERVAL_MS", "200");
    let s = TestServer::start_with(&[
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "5",
    ]);
    for i in 0..30 {
        s.etcdctl(&["put", "k", &i.to_string()]).ok();
    }
    let st = json(&s, &["endpoint", "status"]);
    let rev = st[0]["Status"]["header"]["revision"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = json(&s, &["endpoint", "hashkv"]);
        if h[0]["HashKV"]["compact_revision"].as_i64() == Some(rev - 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not auto-compacted to {}: {h}",
            rev - 5
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.etcdctl(&["get", "k", "--rev", &(rev - 6).to_string()]);
    assert!(
        out.stderr.contains("required revision has been compacted"),
        "{out:#?}"
    );
    s.etcdctl(&["get", "k", "--rev", &(rev - 5).to_string()])
        .ok();
}

mod cluster {
    use crate::cluster_harness::*;

    #[test]
    fn hashkv_equal_on_every_member_and_defrag_cluster() {
        let _g = serial();
        let c = Cluster::start("maint", Opts::new(3));
        let all: Vec<usize> = (0..3).collect();
        for i in 0..40 {
            c.etcdctl(0, &["put", &format!("h{i}"), &i.to_string()])
                .ok();
        }
        c.etcdctl(0, &["compact", "20"]).ok();
        let eps = c.endpoints(&all);
        // The members apply asynchronously: retry until all report the same revision.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let h = etcdctl_at(
                &eps,
                &["endpoint", "hashkv", "--cluster", "-w", "json"],
                None,
            )
            .json();
            let rows = h.as_array().expect("array");
            assert_eq!(rows.len(), 3, "{h}");
            let revs: Vec<_> = rows
                .iter()
                .map(|r| r["HashKV"]["header"]["revision"].clone())
                .collect();
            let hashes: Vec<_> = rows.iter().map(|r| r["HashKV"]["hash"].clone()).collect();
            let compacted: Vec<_> = rows
                .iter()
                .map(|r| r["HashKV"]["compact_revision"].clone())
                .collect();
            if revs.iter().all(|r| *r == revs[0]) {
                assert!(hashes.iter().all(|x| *x == hashes[0]), "{h}");
                assert!(compacted.iter().all(|x| x.as_i64() == Some(20)), "{h}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{h}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = etcdctl_at(&eps, &["defrag", "--cluster"], None);
        assert_eq!(
            out.ok()
                .matches("Finished defragmenting etcd member")
                .count(),
            3,
            "{out:#?}"
        );
        c.etcdctl(1, &["put", "after", "defrag"]).ok();
        assert_eq!(
            c.etcdctl(2, &["get", "h39", "--print-value-only"]).ok(),
            "39\n"
        );
    }
}
