//! Issue 5, failover: kill -9 of the leader under write load (no acknowledged write lost,
//! a new leader within ~2 election timeouts, writes resume), a paused (SIGSTOP) leader is
//! replaced and steps down when resumed, and a 5-member cluster survives losing 2 members
//! (but not 3).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster_harness::*;

#[test]
fn leader_kill9_under_write_load_loses_no_acked_write() {
    let _g = serial();
    let mut c = Cluster::start("kill9", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let old_id = c.members[leader].id;
    let et = Duration::from_millis(c.opts.election_ms);
    c.log(format!("leader is {}", c.members[leader].name));

    let stop = Arc::new(AtomicBool::new(false));
    let writers = c.spawn_writers(
        6,
        "kill9",
        &all,
        stop.clone(),
        Duration::from_secs(60),
        50_000,
    );

    // Let load build up: wait until the leader has applied a few hundred writes.
    let rev0 = c.status(leader).expect("leader status").revision;
    let loaded = poll(WAIT, || {
        let r = c.status(leader).ok()?.revision;
        (r > rev0 + 300).then_some(r)
    });
    assert!(loaded.is_some(), "writers made no progress before the kill");

    c.kill9(leader);
    let t0 = Instant::now();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = c
        .try_wait_leader(&survivors, WAIT, old_id)
        .unwrap_or_else(|e| panic!("no new leader after kill -9 of the leader: {e}"));
    let elected_after = t0.elapsed();
    c.log(format!(
        "new leader {} after {:?} (election timeout {:?})",
        c.members[new_leader].name, elected_after, et
    ));
    assert!(
        elected_after <= 2 * et + Duration::from_secs(2),
        "new leader took {elected_after:?}, more than ~2 election timeouts ({et:?} each)"
    );

    // Writes resume: the revision keeps growing on the new leader.
    let after = c.status(new_leader).expect("new leader status").revision;
    let resumed = poll(WAIT, || {
        let r = c.status(new_leader).ok()?.revision;
        (r > after + 200).then_some(r)
    });
    assert!(
        resumed.is_some(),
        "writes did not resume after failover (revision stuck near {after})"
    );
    stop.store(true, Ordering::SeqCst);
    let rep = c.join_writers(writers);
    c.log(format!(
        "{} acked puts, {} errors (last: {:?})",
        rep.acked.len(),
        rep.errors,
        rep.last_error
    ));
    assert!(
        rep.acked.len() > 500,
        "too few acked puts: {}",
        rep.acked.len()
    );
    let post = rep.acked.iter().filter(|a| a.2 > after).count();
    assert!(post > 0, "no write was acknowledged after the failover");

    c.wait_converged(&survivors, WAIT);
    c.verify_acked(&survivors, "kill9/", &rep.acked);

    // The killed member comes back and catches up to the same data.
    c.spawn(leader);
    c.wait_leader(&all, WAIT);
    c.wait_converged(&all, WAIT);
    c.verify_acked(&all, "kill9/", &rep.acked);
}

#[test]
fn paused_leader_is_replaced_and_steps_down_on_resume() {
    let _g = serial();
    let mut c = Cluster::start("sigstop", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let old = c.status(leader).expect("leader status");
    c.put(leader, "sigstop/before", "1", Duration::from_secs(10))
        .expect("put before pause");

    c.pause(leader);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let t0 = Instant::now();
    let nl = c
        .try_wait_leader(&others, WAIT, old.member_id)
        .unwrap_or_else(|e| panic!("paused leader was not replaced: {e}"));
    c.log(format!(
        "new leader {} after {:?}",
        c.members[nl].name,
        t0.elapsed()
    ));
    let rev = c
        .put(nl, "sigstop/during", "2", Duration::from_secs(10))
        .expect("put on the new leader while the old one is paused");

    c.resume(leader);
    let new_id = c.members[nl].id;
    let st = poll(WAIT, || {
        let s = c.status(leader).ok()?;
        (s.leader == new_id && s.term > old.term).then_some(s)
    });
    let st = st.unwrap_or_else(|| {
        panic!(
            "resumed old leader did not step down to follow {:x} with a higher term than {}: {:?}",
            new_id,
            old.term,
            c.status(leader)
        )
    });
    assert_ne!(
        st.leader, st.member_id,
        "old leader still claims leadership: {st:?}"
    );
    // It serves the write made while it was paused (linearizable read: not stale).
    let got = c
        .get(leader, "sigstop/during", false, Duration::from_secs(10))
        .expect("linearizable get on the resumed member");
    assert_eq!(
        got,
        Some(("2".to_string(), rev)),
        "stale read on the resumed old leader"
    );
    // And accepts writes (forwarded to the new leader).
    c.put(leader, "sigstop/after", "3", Duration::from_secs(10))
        .expect("put through the resumed member");
    c.wait_converged(&all, WAIT);
}

#[test]
fn five_members_survive_losing_two_but_not_three() {
    let _g = serial();
    let mut c = Cluster::start("five", Opts::new(5));
    let all = [0, 1, 2, 3, 4];
    let leader = c.wait_leader(&all, WAIT);
    let old_id = c.members[leader].id;
    c.put(leader, "five/a", "1", Duration::from_secs(10))
        .expect("first put");

    // Lose the leader and one follower.
    let follower = (leader + 1) % 5;
    c.kill9(leader);
    c.kill9(follower);
    let rest: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| i != leader && i != follower)
        .collect();
    let nl = c
        .try_wait_leader(&rest, WAIT, old_id)
        .unwrap_or_else(|e| panic!("3 of 5 members elected no leader: {e}"));
    let rev = c
        .put(rest[0], "five/b", "2", Duration::from_secs(10))
        .expect("put with 3 of 5 members");
    for &i in &rest {
        let got = c
            .get(i, "five/b", false, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("linearizable get on {}: {e}", c.members[i].name));
        assert_eq!(
            got,
            Some(("2".to_string(), rev)),
            "on {}",
            c.members[i].name
        );
    }

    // Losing a third member leaves no quorum: a write must not be acknowledged.
    let third = *rest.iter().find(|&&i| i != nl).unwrap();
    c.kill9(third);
    let two: Vec<usize> = rest.iter().copied().filter(|&i| i != third).collect();
    let r = c.put(two[0], "five/c", "3", Duration::from_secs(20));
    let e = r.expect_err("a write was acknowledged by 2 of 5 members");
    assert!(
        is_no_quorum_error(&e),
        "unexpected error without quorum: {e}"
    );
    c.log(format!("write without quorum failed as expected: {e}"));

    // Everyone comes back and converges.
    for i in [leader, follower, third] {
        c.spawn(i);
    }
    c.wait_leader(&all, WAIT);
    c.put(leader, "five/d", "4", Duration::from_secs(10))
        .expect("put after all members are back");
    c.wait_converged(&all, WAIT);
    let d0 = c.dump(0, "five/");
    for i in 1..5 {
        assert_eq!(
            c.dump(i, "five/"),
            d0,
            "{} differs from n1",
            c.members[i].name
        );
    }
    assert!(d0.contains_key("five/a") && d0.contains_key("five/b") && d0.contains_key("five/d"));
}

#[test]
fn sigterm_stops_follower_and_leader_promptly() {
    let _g = serial();
    let mut c = Cluster::start("sigterm", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let old_id = c.members[leader].id;
    c.put(leader, "term/a", "1", Duration::from_secs(10))
        .expect("put");
    let ok = |st: &std::process::ExitStatus| {
        use std::os::unix::process::ExitStatusExt;
        // oxcd exits 0; etcd re-raises SIGTERM after its graceful stop.
        st.success() || st.signal() == Some(SIGTERM)
    };

    // A follower of a healthy cluster stops promptly on SIGTERM.
    let f = (leader + 1) % 3;
    let t = Instant::now();
    let st = c.stop(f);
    c.log(format!(
        "follower {} stopped after {:?}: {st:?}",
        c.members[f].name,
        t.elapsed()
    ));
    let st = st.unwrap_or_else(|| {
        panic!(
            "follower {} did not exit within 15 s of SIGTERM (peer connections from the other members still open)",
            c.members[f].name
        )
    });
    assert!(ok(&st), "follower exit status {st:?}");
    c.spawn(f);
    c.wait_leader(&all, WAIT);

    // The leader too; the others go on with a new leader.
    let t = Instant::now();
    let st = c.stop(leader);
    c.log(format!(
        "leader {} stopped after {:?}: {st:?}",
        c.members[leader].name,
        t.elapsed()
    ));
    let st = st.unwrap_or_else(|| {
        panic!(
            "leader {} did not exit within 15 s of SIGTERM",
            c.members[leader].name
        )
    });
    assert!(ok(&st), "leader exit status {st:?}");
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let nl = c
        .try_wait_leader(&rest, WAIT, old_id)
        .unwrap_or_else(|e| panic!("no new leader after the leader stopped: {e}"));
    let took = t.elapsed();
    c.log(format!(
        "new leader {} {took:?} after SIGTERM",
        c.members[nl].name
    ));
    // etcd's EtcdServer.Stop hands leadership over before stopping, so there is no
    // election-timeout gap (etcd 3.4 here: ~150 ms).
    let et = Duration::from_millis(c.opts.election_ms);
    assert!(
        took < et,
        "no leader for {took:?} after the leader's graceful stop: it did not transfer leadership (etcd does)"
    );
    c.put(nl, "term/b", "2", Duration::from_secs(10))
        .expect("put after the leader stopped");
    c.spawn(leader);
    c.wait_leader(&all, WAIT);
    c.wait_converged(&all, WAIT);
    let got = c
        .get(leader, "term/b", false, Duration::from_secs(10))
        .unwrap();
    assert_eq!(got.map(|v| v.0), Some("2".to_string()));
}
