//! Issue 5, clients against a cluster: `etcdctl` and Python `etcd3` pointed at a follower
//! (put/get/txn/status), and Maintenance.MoveLeader (`etcdctl move-leader`) with its errors
//! ("etcdserver: not leader" from a follower, "etcdserver: bad leader transferee" for a
//! learner); leases through a follower (grant, keep-alive, time-to-live, `put --lease`,
//! revoke), which forwards renew and time-to-live to the leader.

use std::time::Duration;

use crate::cluster_harness::*;

const PY_SCRIPT: &str = r#"
import json, sys
import etcd3
host, port = sys.argv[1], int(sys.argv[2])
c = etcd3.client(host=host, port=port, timeout=15)
out = {}
c.put('py/k', 'v1')
v, meta = c.get('py/k')
out['get'] = v.decode()
ok, _ = c.transaction(
    compare=[c.transactions.value('py/k') == 'v1'],
    success=[c.transactions.put('py/k', 'v2'), c.transactions.put('py/t', 'from-txn')],
    failure=[c.transactions.put('py/k', 'failed')],
)
out['txn_succeeded'] = ok
out['after_txn'] = c.get('py/k')[0].decode()
ok2, _ = c.transaction(
    compare=[c.transactions.value('py/k') == 'nope'],
    success=[c.transactions.put('py/k', 'wrong')],
    failure=[c.transactions.put('py/f', 'failure-branch')],
)
out['txn2_succeeded'] = ok2
out['failure_branch'] = c.get('py/f')[0].decode()
st = c.status()
out['status_leader_id'] = st.leader.id if st.leader is not None else 0
out['status_raft_index'] = st.raft_index
out['status_version'] = st.version
out['members'] = sorted(m.name for m in c.members)
print(json.dumps(out))
"#;

#[test]
fn etcdctl_and_python_against_a_follower() {
    let _g = serial();
    let mut c = Cluster::start("clients", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let f = (leader + 1) % 3;
    let leader_id = c.members[leader].id;
    let fname = c.members[f].name.clone();

    // etcdctl on the follower.
    assert_eq!(c.etcdctl(f, &["put", "ctl/a", "1"]).ok().trim(), "OK");
    assert_eq!(c.etcdctl(f, &["get", "ctl/a"]).ok(), "ctl/a\n1\n");
    let txn = "value(\"ctl/a\") = \"1\"\n\nput ctl/a 2\nput ctl/b from-txn\n\nput ctl/a failed\n\n";
    let out = c.etcdctl_stdin(f, &["txn"], txn);
    assert_eq!(out.ok(), "SUCCESS\n\nOK\n\nOK\n", "etcdctl txn on {fname}");
    // Visible through the leader and the third member (linearizable reads).
    for i in all {
        let got = c.etcdctl(i, &["get", "ctl/", "--prefix"]);
        assert_eq!(
            got.ok(),
            "ctl/a\n2\nctl/b\nfrom-txn\n",
            "get on {}",
            c.members[i].name
        );
    }
    let st = c.etcdctl(f, &["endpoint", "status", "-w", "json"]).json();
    let s = &st[0]["Status"];
    assert_eq!(
        s["leader"].as_u64(),
        Some(leader_id),
        "endpoint status of {fname}: {st}"
    );
    assert_eq!(s["header"]["member_id"].as_u64(), Some(c.members[f].id));
    assert!(s["raftIndex"].as_u64().unwrap_or(0) > 0, "raftIndex: {st}");
    let eps = c.endpoints(&all);
    let st3 = etcdctl_at(&eps, &["endpoint", "status", "-w", "json"], None).json();
    let leaders: Vec<u64> = st3
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Status"]["leader"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(leaders, vec![leader_id; 3], "endpoint status of all: {st3}");
    let h = c.etcdctl(f, &["endpoint", "health"]);
    assert!(
        h.stdout.contains("is healthy") || h.stderr.contains("is healthy"),
        "{h:?}"
    );
    let ml = parse_member_list(&c.etcdctl(f, &["member", "list", "-w", "json"]).json());
    let mut names: Vec<String> = ml.iter().map(|m| m.1.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["n1", "n2", "n3"]);
    // etcdctl with all three endpoints balances across members.
    for k in 0..6 {
        let o = etcdctl_at(&eps, &["put", &format!("ctl/multi{k}"), "x"], None);
        assert_eq!(o.ok().trim(), "OK");
    }

    // Python etcd3 on the follower.
    let py = python_bin();
    if !py.exists() {
        oxcd_testkit::skip_or_fail(
            "cluster_clients (python part)",
            &format!(
                "{} missing (run scripts/test.sh to create the venv)",
                py.display()
            ),
        );
        return;
    }
    let script = c.members[f].dir_path.join("follower_client.py");
    std::fs::write(&script, PY_SCRIPT).unwrap();
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(&script)
        .arg("127.0.0.1")
        .arg(c.members[f].client_port.to_string());
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    let v: serde_json::Value = serde_json::from_str(out.ok().trim())
        .unwrap_or_else(|e| panic!("python output is not JSON ({e}): {out:?}"));
    assert_eq!(v["get"], "v1", "{v}");
    assert_eq!(v["txn_succeeded"], true, "{v}");
    assert_eq!(v["after_txn"], "v2", "{v}");
    assert_eq!(v["txn2_succeeded"], false, "{v}");
    assert_eq!(v["failure_branch"], "failure-branch", "{v}");
    assert_eq!(v["status_leader_id"].as_u64(), Some(leader_id), "{v}");
    assert!(v["status_raft_index"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(v["members"], serde_json::json!(["n1", "n2", "n3"]), "{v}");
    assert_eq!(
        c.get(leader, "py/t", false, Duration::from_secs(10))
            .unwrap()
            .map(|x| x.0),
        Some("from-txn".to_string())
    );
}

#[test]
fn move_leader() {
    let _g = serial();
    let mut c = Cluster::start("moveleader", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let old = c.status(leader).unwrap();
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let tid = c.members[target].id;

    // Against a follower: the RPC answers "etcdserver: not leader". (etcdctl itself refuses
    // earlier when no given endpoint is the leader, so call the RPC directly.)
    let mut fc = c.client(other);
    let e =
        c.rt.block_on(fc.move_leader(tid))
            .expect_err("move-leader on a follower succeeded");
    assert!(
        e.to_string().contains("etcdserver: not leader"),
        "on a follower: {e}"
    );
    let o = c.etcdctl(other, &["move-leader", &format!("{tid:x}")]);
    assert!(
        !o.success() && o.stderr.contains("no leader endpoint given"),
        "etcdctl move-leader with only a follower endpoint: {o:?}"
    );

    // Against the leader: leadership moves to the target.
    let o = etcdctl_at(
        &[c.members[leader].endpoint()],
        &["move-leader", &format!("{tid:x}")],
        None,
    );
    let txt = o.ok();
    assert!(
        txt.contains(&format!(
            "Leadership transferred from {:x} to {tid:x}",
            old.member_id
        )),
        "move-leader output: {o:?}"
    );
    let nl = c.wait_leader(&all, WAIT);
    assert_eq!(nl, target, "leader after move-leader");
    let s = c.status(leader).unwrap();
    assert_eq!(s.leader, tid, "old leader's view: {s:?}");
    assert!(s.term > old.term, "term did not advance: {s:?} vs {old:?}");
    c.put(leader, "ml/a", "1", Duration::from_secs(10))
        .expect("put after move-leader");

    // To a learner (added, not started) or an unknown member: "bad leader transferee".
    let mut lc = c.client(target);
    let learner_id = c.rt.block_on(async {
        let mut r = None;
        for _ in 0..40 {
            match lc
                .member_add(
                    ["http://127.0.0.1:1".to_string()],
                    Some(etcd_client::MemberAddOptions::new().with_is_learner()),
                )
                .await
            {
                Ok(resp) => {
                    r = Some(resp.member().unwrap().id());
                    break;
                }
                // etcd refuses reconfiguration until peers were connected for a while.
                Err(e) if e.to_string().contains("unhealthy cluster") => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(e) => panic!("member add --learner: {e}"),
            }
        }
        r.expect("member add --learner kept failing with unhealthy cluster")
    });
    let o = c.etcdctl(target, &["move-leader", &format!("{learner_id:x}")]);
    assert!(
        !o.success() && o.stderr.contains("etcdserver: bad leader transferee"),
        "move-leader to a learner: {o:?}"
    );
    let e =
        c.rt.block_on(lc.move_leader(0x1234_5678))
            .expect_err("move-leader to an unknown member succeeded");
    assert!(
        e.to_string().contains("etcdserver: bad leader transferee"),
        "to an unknown member: {e}"
    );
    // Nothing changed.
    assert_eq!(c.wait_leader(&all, WAIT), target);
}

/// Linearizable reads issued concurrently on every member of a healthy cluster must all be
/// answered promptly (none may wait for the request timeout).
#[test]
fn concurrent_linearizable_reads_on_all_members_are_all_answered() {
    let _g = serial();
    let mut c = Cluster::start("lreads", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    c.put(leader, "lr/k", "v", Duration::from_secs(10))
        .expect("put");
    let urls: Vec<String> = all.iter().map(|&i| c.members[i].client_url()).collect();
    const PER_MEMBER: usize = 6;
    const READS: usize = 300;
    let results = c.rt.block_on(async move {
        let mut hs = Vec::new();
        for (m, url) in urls.iter().enumerate() {
            for w in 0..PER_MEMBER {
                let url = url.clone();
                hs.push(tokio::spawn(async move {
                    let mut cl = Cluster::connect(url).await.expect("connect");
                    let mut errors = Vec::new();
                    let mut max = Duration::ZERO;
                    for _ in 0..READS {
                        let t = std::time::Instant::now();
                        let r = tokio::time::timeout(Duration::from_secs(15), cl.get("lr/k", None))
                            .await;
                        max = max.max(t.elapsed());
                        match r {
                            Ok(Ok(g)) if g.kvs().len() == 1 => {}
                            Ok(Ok(g)) => errors.push(format!("wrong result {:?}", g.kvs())),
                            Ok(Err(e)) => errors.push(format!("{e} after {:?}", t.elapsed())),
                            Err(_) => errors.push("client timeout 15s".into()),
                        }
                    }
                    (m, w, errors, max)
                }));
            }
        }
        let mut out = Vec::new();
        for h in hs {
            out.push(h.await.expect("reader panicked"));
        }
        out
    });
    let mut bad = Vec::new();
    let mut worst = Duration::ZERO;
    for (m, w, errors, max) in &results {
        worst = worst.max(*max);
        if !errors.is_empty() || *max > Duration::from_secs(2) {
            bad.push(format!(
                "n{} reader {w}: {} errors (first: {:?}), slowest read {max:?}",
                m + 1,
                errors.len(),
                errors.first()
            ));
        }
    }
    c.log(format!(
        "{} linearizable reads, slowest {worst:?}",
        results.len() * READS
    ));
    assert!(
        bad.is_empty(),
        "linearizable reads failed or stalled on a healthy cluster (leader n{}):\n{}",
        leader + 1,
        bad.join("\n")
    );
}

/// `lease 694d7a3c9e2a4a0f granted with TTL(30s)` -> the hex id.
fn granted_id(out: &str, ttl: i64) -> String {
    let line = out.trim();
    let id = line
        .strip_prefix("lease ")
        .and_then(|r| r.strip_suffix(&format!(" granted with TTL({ttl}s)")))
        .unwrap_or_else(|| panic!("unexpected lease grant output: {out:?}"));
    assert!(u64::from_str_radix(id, 16).is_ok(), "lease id {id:?}");
    id.to_string()
}

/// `lease <id> granted with TTL(30s), remaining(29s)...` -> (granted, remaining).
fn ttl_of(out: &str) -> (i64, i64) {
    let num = |after: &str| -> i64 {
        let i = out
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} missing from {out:?}"));
        out[i + after.len()..]
            .split(|ch: char| !ch.is_ascii_digit() && ch != '-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {after:?} in {out:?}"))
    };
    (num("TTL("), num("remaining("))
}

#[test]
fn leases_through_a_follower() {
    let _g = serial();
    let mut c = Cluster::start("follower-leases", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let f = (leader + 1) % 3;
    let fname = c.members[f].name.clone();

    let id = granted_id(c.etcdctl(f, &["lease", "grant", "30"]).ok(), 30);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        c.etcdctl(f, &["lease", "keep-alive", "--once", &id])
            .ok()
            .trim(),
        format!("lease {id} keepalived with TTL(30)"),
        "keep-alive --once on {fname}"
    );
    assert_eq!(
        c.etcdctl(f, &["put", "--lease", &id, "fl/a", "1"])
            .ok()
            .trim(),
        "OK"
    );
    assert_eq!(
        c.etcdctl(f, &["put", &format!("--lease={id}"), "fl/b", "2"])
            .ok()
            .trim(),
        "OK"
    );
    // Time to live as the leader sees it (not a follower's local "forever").
    for i in [f, leader, (leader + 2) % 3] {
        let out = c.etcdctl(i, &["lease", "timetolive", "--keys", &id]);
        let text = out.ok().trim().to_string();
        assert!(
            text.starts_with(&format!("lease {id} granted with TTL(30s), remaining(")),
            "timetolive on {}: {text}",
            c.members[i].name
        );
        let (granted, remaining) = ttl_of(&text);
        assert_eq!(granted, 30, "{text}");
        assert!(
            (20..=30).contains(&remaining),
            "remaining TTL on {} should be about 30 after the keep-alive: {text}",
            c.members[i].name
        );
        // etcd lists a lease's keys from a map, in no set order.
        let keys = text
            .rsplit_once("attached keys([")
            .and_then(|(_, k)| k.strip_suffix("])"))
            .map(|k| {
                let mut v: Vec<&str> = k.split(' ').collect();
                v.sort_unstable();
                v
            });
        assert_eq!(
            keys,
            Some(vec!["fl/a", "fl/b"]),
            "attached keys on {}: {text}",
            c.members[i].name
        );
    }
    let j = c
        .etcdctl(f, &["-w", "json", "lease", "timetolive", &id])
        .json();
    let ttl = j["ttl"].as_i64().unwrap_or(-100);
    assert!(
        (20..=30).contains(&ttl),
        "timetolive -w json on {fname}: {j}"
    );
    assert_eq!(j["granted-ttl"].as_i64(), Some(30), "{j}");
    let listed = c.etcdctl(f, &["lease", "list"]);
    assert!(
        listed.ok().contains(&id),
        "lease list on {fname}: {listed:#?}"
    );
    for i in all {
        let got = c.etcdctl(i, &["get", "fl/", "--prefix"]);
        assert_eq!(
            got.ok(),
            "fl/a\n1\nfl/b\n2\n",
            "get on {}",
            c.members[i].name
        );
    }

    // Revoke through the follower: the keys are gone on every member.
    assert_eq!(
        c.etcdctl(f, &["lease", "revoke", &id]).ok().trim(),
        format!("lease {id} revoked")
    );
    c.wait_converged(&all, WAIT);
    for i in all {
        assert!(
            c.dump(i, "fl/").is_empty(),
            "keys of the revoked lease still on {}: {:?}",
            c.members[i].name,
            c.dump(i, "fl/")
        );
        assert_eq!(
            c.etcdctl(i, &["get", "fl/", "--prefix"]).ok(),
            "",
            "linearizable get on {}",
            c.members[i].name
        );
    }
    assert_eq!(
        c.etcdctl(f, &["lease", "timetolive", &id]).ok().trim(),
        format!("lease {id} already expired")
    );
    let err = c.etcdctl(f, &["lease", "keep-alive", "--once", &id]);
    assert!(
        !err.success() || err.stdout.contains("expired or revoked"),
        "keep-alive of a revoked lease on {fname}: {err:#?}"
    );
}
