//! Issue 5, membership: add a learner, start it with `--initial-cluster-state existing`,
//! promote it, remove another member (which stops itself) — all while a bounded writer runs,
//! checking `etcdctl member list` at each step; and a member with a wrong
//! `--initial-cluster-token` is refused and never gets a leader; `--strict-reconfig-check`
//! (default on): with one of three members down, member add (voter or learner) and removing
//! a second voter are refused ("etcdserver: unhealthy cluster"), removing the dead member is
//! allowed; `member update` replaces peer URLs on every member.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster_harness::*;

fn member_list(c: &Cluster, at: usize) -> Vec<MemberRow> {
    parse_member_list(&c.etcdctl(at, &["member", "list", "-w", "json"]).json())
}

/// The simple (default) output of `etcdctl member list`, one line per member.
fn member_list_simple(c: &Cluster, at: usize) -> Vec<String> {
    c.etcdctl(at, &["member", "list"])
        .ok()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn add_learner_promote_and_remove_under_load() {
    let _g = serial();
    let mut c = Cluster::start("members", Opts::new(3));
    let mut soft: Vec<String> = Vec::new();
    let all3 = [0, 1, 2];
    let leader = c.wait_leader(&all3, WAIT);
    // The member to remove later: a follower; the writers use the other two.
    let r = (leader + 1) % 3;
    let keep: Vec<usize> = all3.iter().copied().filter(|&i| i != r).collect();
    c.load(leader, "mem/pre/", 500, 8);

    // etcd serves clients only after the member published its name and client URLs; oxcd
    // may answer a little earlier, so wait (bounded) until all three are published.
    let initial = poll(WAIT, || {
        let l = member_list(&c, leader);
        (l.len() == 3 && l.iter().all(|m| !m.1.is_empty() && !m.3.is_empty())).then_some(l)
    })
    .unwrap_or_else(|| panic!("members never all published: {:?}", member_list(&c, leader)));
    for m in &c.members {
        let row = initial
            .iter()
            .find(|row| row.1 == m.name)
            .unwrap_or_else(|| panic!("{} missing from member list {initial:?}", m.name));
        assert_eq!(row.2, vec![m.adv_peer_url()], "peer URLs of {}", m.name);
        assert_eq!(row.3, vec![m.client_url()], "client URLs of {}", m.name);
        assert!(!row.4, "{} listed as learner", m.name);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writers = c.spawn_writers(
        2,
        "mem/w",
        &keep,
        stop.clone(),
        Duration::from_secs(120),
        100_000,
    );

    // 1. member add --learner
    let n4 = c.add_member_slot();
    let peer4 = c.members[n4].adv_peer_url();
    // etcd refuses reconfiguration until the member has been connected to all peers for a
    // while ("etcdserver: unhealthy cluster"): retry, bounded.
    let mut out = None;
    poll(Duration::from_secs(20), || {
        let o = c.etcdctl(
            leader,
            &[
                "member",
                "add",
                "n4",
                &format!("--peer-urls={peer4}"),
                "--learner",
            ],
        );
        let done = o.success() || !o.stderr.contains("unhealthy cluster");
        out = Some(o);
        done.then_some(())
    });
    let text = out.unwrap().ok().to_string();
    c.log(format!("member add:\n{text}"));
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("Member ") && first.contains(" added to cluster "),
        "member add output: {text}"
    );
    let new_id = u64::from_str_radix(first.split_whitespace().nth(1).unwrap(), 16)
        .expect("hex member id in member add output");
    let env = |k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=\"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{k} missing from member add output: {text}"))
            .to_string()
    };
    assert_eq!(env("ETCD_NAME"), "n4");
    assert_eq!(env("ETCD_INITIAL_ADVERTISE_PEER_URLS"), peer4);
    assert_eq!(env("ETCD_INITIAL_CLUSTER_STATE"), "existing");
    let ic = env("ETCD_INITIAL_CLUSTER");
    let mut ic_parts: Vec<&str> = ic.split(',').collect();
    ic_parts.sort();
    let mut want: Vec<String> = c
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, m.adv_peer_url()))
        .collect();
    want.sort();
    assert_eq!(ic_parts, want, "ETCD_INITIAL_CLUSTER");

    let l = member_list(&c, keep[1]);
    assert_eq!(l.len(), 4, "member list after add: {l:?}");
    let row = l.iter().find(|m| m.0 == new_id).expect("new member listed");
    assert_eq!(row.1, "", "an unstarted member has no name yet: {row:?}");
    assert_eq!(row.2, vec![peer4.clone()]);
    assert!(
        row.3.is_empty(),
        "unstarted member has client URLs: {row:?}"
    );
    assert!(row.4, "new member is not a learner: {row:?}");
    let simple = member_list_simple(&c, leader);
    let line = format!("{new_id:x}, unstarted, , {peer4}, , true");
    assert!(
        simple.contains(&line),
        "member list (simple) lacks {line:?}: {simple:#?}"
    );

    // 2. Start n4 as a learner of the existing cluster; it gets the data.
    c.members[n4].initial_cluster = ic;
    c.members[n4].state_existing = true;
    c.spawn(n4);
    let pre_rev = c.status(leader).unwrap().revision;
    let st = poll(Duration::from_secs(20), || {
        let s = c.status(n4).ok()?;
        (s.revision >= pre_rev && s.leader != 0).then_some(s)
    });
    let st = st.unwrap_or_else(|| panic!("learner n4 did not catch up: {:?}", c.status(n4)));
    assert!(st.is_learner, "n4 status does not report a learner: {st:?}");
    assert_eq!(st.member_id, new_id);
    let pre = c.dump(n4, "mem/pre/");
    assert_eq!(
        pre.len(),
        500,
        "learner n4 has {} of the 500 preloaded keys",
        pre.len()
    );
    // Learners serve serializable reads only (etcd: "rpc not supported for learner").
    // (Recorded, not asserted at once, so the rest of the flow still runs.)
    let e = c.etcdctl(n4, &["get", "mem/pre/000001"]);
    if e.success() || !e.stderr.contains("rpc not supported for learner") {
        soft.push(format!(
            "linearizable get on learner n4: expected \"etcdserver: rpc not supported for learner\", got {e:?}"
        ));
    }
    let e = c.etcdctl(n4, &["put", "mem/on-learner", "x"]);
    if e.success() || !e.stderr.contains("rpc not supported for learner") {
        soft.push(format!(
            "put on learner n4: expected \"etcdserver: rpc not supported for learner\", got {e:?}"
        ));
    }
    let s = c.etcdctl(
        n4,
        &[
            "get",
            "mem/pre/000001",
            "--consistency=s",
            "--print-value-only",
        ],
    );
    assert_eq!(s.ok().trim(), "value-1");
    let named = poll(WAIT, || {
        let l = member_list(&c, leader);
        l.iter()
            .find(|m| m.0 == new_id && m.1 == "n4" && !m.3.is_empty())
            .cloned()
    });
    let named = named.unwrap_or_else(|| {
        panic!(
            "n4 never published its name/client URLs: {:?}",
            member_list(&c, leader)
        )
    });
    assert_eq!(named.3, vec![c.members[n4].client_url()]);
    assert!(named.4, "still a learner before promote: {named:?}");
    assert!(
        member_list_simple(&c, leader)
            .iter()
            .any(|l| l.starts_with(&format!("{new_id:x}, started, n4, ")) && l.ends_with(", true")),
        "simple member list after n4 started"
    );

    // 3. Promote (etcd refuses until the learner is in sync; retry, bounded).
    let hex = format!("{new_id:x}");
    let mut last = None;
    let promoted = poll(Duration::from_secs(20), || {
        let o = c.etcdctl(leader, &["member", "promote", &hex]);
        let ok = o.success();
        last = Some(o);
        ok.then_some(())
    });
    let last = last.unwrap();
    assert!(promoted.is_some(), "member promote failed: {last:?}");
    assert!(
        last.stdout
            .contains(&format!("Member {new_id:16x} promoted in cluster")),
        "promote output: {last:?}"
    );
    let l = member_list(&c, n4);
    assert!(
        l.iter().any(|m| m.0 == new_id && !m.4),
        "n4 still a learner after promote: {l:?}"
    );
    let st = poll(WAIT, || c.status(n4).ok().filter(|s| !s.is_learner));
    assert!(
        st.is_some(),
        "n4 status still reports a learner: {:?}",
        c.status(n4)
    );
    let v = c.etcdctl(n4, &["get", "mem/pre/000002", "--print-value-only"]);
    assert_eq!(v.ok().trim(), "value-2", "linearizable get on promoted n4");

    // 4. Remove r: it must stop itself; the others go on.
    let rid = c.members[r].id;
    let rname = c.members[r].name.clone();
    let out = c.etcdctl(leader, &["member", "remove", &format!("{rid:x}")]);
    assert!(
        out.ok()
            .contains(&format!("Member {rid:16x} removed from cluster")),
        "member remove output: {out:?}"
    );
    let exit = c.members[r].wait_exit(Duration::from_secs(20));
    assert!(
        exit.is_some(),
        "removed member {rname} did not stop itself within 20 s"
    );
    c.log(format!("removed {rname} exited: {exit:?}"));
    let remaining = vec![keep[0], keep[1], n4];
    c.wait_leader(&remaining, WAIT);
    let l = member_list(&c, n4);
    assert_eq!(l.len(), 3, "member list after remove: {l:?}");
    assert!(!l.iter().any(|m| m.0 == rid), "{rname} still listed: {l:?}");
    assert!(l.iter().all(|m| !m.4), "learner left: {l:?}");

    // Writers kept going through all of it.
    let r0 = c.status(keep[0]).unwrap().revision;
    assert!(
        poll(WAIT, || (c.status(keep[0]).ok()?.revision > r0 + 20)
            .then_some(()))
        .is_some(),
        "writes stopped after the membership changes"
    );
    stop.store(true, Ordering::SeqCst);
    let rep = c.join_writers(writers);
    c.log(format!(
        "{} acked puts, {} errors ({:?})",
        rep.acked.len(),
        rep.errors,
        rep.last_error
    ));
    assert!(
        rep.acked.len() > 100,
        "too few acked puts: {}",
        rep.acked.len()
    );
    c.wait_converged(&remaining, WAIT);
    c.verify_acked(&remaining, "mem/w/", &rep.acked);

    // The 3-member cluster {keep, n4} tolerates losing one member: n4 is a real voter.
    let kill = keep
        .iter()
        .copied()
        .find(|&i| c.members[i].id != c.status(n4).unwrap().leader)
        .unwrap_or(keep[0]);
    c.kill9(kill);
    let two = vec![
        *remaining.iter().find(|&&i| i != kill && i != n4).unwrap(),
        n4,
    ];
    c.wait_leader(&two, WAIT);
    c.put(n4, "mem/last", "x", Duration::from_secs(15))
        .expect("commit with n4 as one of two voters");
    assert!(
        soft.is_empty(),
        "deviations from etcd:\n{}",
        soft.join("\n")
    );
}

#[test]
fn member_with_wrong_cluster_token_is_refused() {
    let _g = serial();
    let mut c = Cluster::prepare("token", Opts::new(3));
    c.members[2].token = "some-other-token".into();
    for i in 0..3 {
        c.spawn(i);
    }
    let good = [0, 1];
    let leader = c.wait_leader(&good, START_WAIT);
    let rev = c
        .put(leader, "tok/a", "1", Duration::from_secs(10))
        .expect("2 of 3 members commit");

    // Its peers refuse it.
    let refused = poll(WAIT, || {
        good.iter()
            .any(|&i| c.members[i].log().contains("request cluster ID mismatch"))
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "neither good member logged \"request cluster ID mismatch\""
    );
    // It never gets a leader (observed over 3 election timeouts) and has none of the data.
    let window = Duration::from_millis(3 * c.opts.election_ms);
    let t = std::time::Instant::now();
    let mut polls = 0;
    while t.elapsed() < window {
        if let Ok(s) = c.status(2) {
            assert_eq!(
                s.leader, 0,
                "member with the wrong token got a leader: {s:?}"
            );
            polls += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // (etcd serves no client request at all until it has a leader: no answer is fine too.)
    c.log(format!(
        "{polls} Status answers from the refused member, all without a leader"
    ));
    let got = c.get(2, "tok/a", true, Duration::from_secs(5));
    assert!(
        !matches!(got, Ok(Some(_))),
        "member with the wrong token has the cluster's data: {got:?}"
    );
    assert_eq!(
        c.get(0, "tok/a", false, Duration::from_secs(10)).unwrap(),
        Some(("1".to_string(), rev))
    );
}

/// `etcdctl member add n4 --peer-urls=<free port>` on member `at`, optionally as a learner.
fn member_add(c: &Cluster, at: usize, learner: bool) -> CmdOutput {
    let peer = format!("--peer-urls=http://127.0.0.1:{}", oxcd_testkit::free_port());
    let mut args = vec!["member", "add", "n4", peer.as_str()];
    if learner {
        args.push("--learner");
    }
    c.etcdctl(at, &args)
}

/// `--strict-reconfig-check` (on by default), as etcd 3.4 does it: with one of three
/// members down, adding a voter, adding a learner (the leader must be connected to every
/// voter: etcd 3.4's `isConnectedFullySince` applies to learners too) and removing a second
/// voter are all refused; removing the dead member is allowed, and then a learner can be
/// added.
#[test]
fn strict_reconfig_check_with_a_member_down() {
    let _g = serial();
    let mut c = Cluster::start("strict-reconfig", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    // A peer counts as connected once its stream has been up for 5 s (etcd's
    // HealthInterval).
    std::thread::sleep(Duration::from_secs(6));
    let down = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let down_id = c.members[down].id;
    c.kill9(down);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(member_list(&c, leader).len(), 3);
    let unhealthy = |what: &str, out: &CmdOutput| {
        assert!(
            out.err().contains("etcdserver: unhealthy cluster"),
            "{what} with a member down must be refused as unhealthy: {out:#?}"
        );
    };

    // A voter: the new configuration would need 3 of 4, and n-down is not connected.
    unhealthy("member add (voter)", &member_add(&c, leader, false));
    // A learner: refused as well in etcd 3.4 (not connected to every voter).
    unhealthy("member add --learner", &member_add(&c, leader, true));
    assert_eq!(
        member_list(&c, leader).len(),
        3,
        "a refused add changed the list"
    );

    // Removing a second (running) voter would leave 1 connected of 2 voters: refused.
    let oid = format!("{:x}", c.members[other].id);
    let out = c.etcdctl(leader, &["member", "remove", &oid]);
    let err = out.err();
    assert!(
        err.contains("etcdserver: unhealthy cluster")
            || err
                .contains("etcdserver: re-configuration failed due to not enough started members"),
        "member remove of a second voter with one down: {out:#?}"
    );
    assert_eq!(
        member_list(&c, leader).len(),
        3,
        "a refused remove changed the list"
    );

    // The dead member is not part of the active quorum: removing it is allowed.
    let out = c.etcdctl(leader, &["member", "remove", &format!("{down_id:x}")]);
    assert!(out.ok().contains("removed from cluster"), "{out:#?}");
    let l = member_list(&c, leader);
    assert_eq!(
        l.len(),
        2,
        "member list after removing the dead member: {l:?}"
    );

    // Now every voter is connected: a learner may be added. (oxcd drops a conf change
    // proposed right after the previous one was acknowledged — see
    // `member_add_right_after_member_remove` — so give the removal time to settle.)
    std::thread::sleep(Duration::from_secs(2));
    let out = member_add(&c, leader, true);
    let text = out.ok();
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("Member ") && l.contains(" added to cluster ")),
        "member add --learner: {text}"
    );
    let l = member_list(&c, leader);
    assert_eq!(l.len(), 3, "member list after adding the learner: {l:?}");
    assert_eq!(l.iter().filter(|m| m.4).count(), 1, "one learner: {l:?}");

    // The two remaining voters still serve writes.
    assert_eq!(
        c.etcdctl(other, &["put", "strict/k", "v"]).ok().trim(),
        "OK"
    );
}

/// etcd 3.4 accepts `member add --learner` right after `member remove` of a dead voter
/// returned (oxcd once dropped the second change: raft-rs had not yet been told the first
/// was applied).
#[test]
fn member_add_right_after_removing_a_dead_voter() {
    let _g = serial();
    let mut c = Cluster::start("reconfig-after-remove", Opts::new(3));
    let leader = c.wait_leader(&[0, 1, 2], WAIT);
    std::thread::sleep(Duration::from_secs(6));
    let down = (leader + 1) % 3;
    let down_id = c.members[down].id;
    c.kill9(down);
    std::thread::sleep(Duration::from_secs(1));
    let out = c.etcdctl(leader, &["member", "remove", &format!("{down_id:x}")]);
    assert!(out.ok().contains("removed from cluster"), "{out:#?}");
    let t = std::time::Instant::now();
    let out = member_add(&c, leader, true);
    assert!(
        out.success(),
        "member add --learner right after the removal (took {:?}): {out:#?}",
        t.elapsed()
    );
}

/// `etcdctl member update` replaces a member's peer URLs on every member; the cluster keeps
/// working with the member reached at its new URL (same proxy port, spelled `localhost`).
#[test]
fn member_update_changes_peer_urls() {
    let _g = serial();
    let mut c = Cluster::start("member-update", Opts::new(3));
    let leader = c.wait_leader(&[0, 1, 2], WAIT);
    let target = (leader + 1) % 3;
    let id = c.members[target].id;
    let new_url = c.members[target]
        .adv_peer_url()
        .replace("127.0.0.1", "localhost");
    let out = c.etcdctl(
        leader,
        &[
            "member",
            "update",
            &format!("{id:x}"),
            &format!("--peer-urls={new_url}"),
        ],
    );
    assert!(out.ok().contains("updated in cluster"), "{out:#?}");
    for at in [0, 1, 2] {
        let seen = poll(WAIT, || {
            member_list(&c, at)
                .into_iter()
                .find(|r| r.0 == id && r.2 == vec![new_url.clone()])
        });
        assert!(seen.is_some(), "member {at}: {:?}", member_list(&c, at));
    }
    assert_eq!(c.etcdctl(target, &["put", "upd/k", "v"]).ok().trim(), "OK");
    assert_eq!(
        c.etcdctl(leader, &["get", "upd/k", "--print-value-only"])
            .ok()
            .trim(),
        "v"
    );
    c.wait_converged(&[0, 1, 2], WAIT);
}
