//! Issue 5, network partitions: peer traffic goes through the harness's fault-injecting
//! proxy (advertised peer URLs are proxy ports, `--listen-peer-urls` the real ones). An
//! isolated minority cannot commit and serves no stale linearizable read while the majority
//! keeps committing; after the partition heals it catches up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster_harness::*;

fn proxied(name: &str) -> Cluster {
    let mut o = Opts::new(3);
    o.proxy = true;
    Cluster::start(name, o)
}

/// The write/linearizable-read checks on an isolated member `x` holding `k = v_old` while
/// the majority wrote `k = v_new`.
fn assert_isolated_member_is_safe(c: &Cluster, x: usize, key: &str, v_old: &str) {
    let name = c.members[x].name.clone();
    // A write to the isolated member must not be acknowledged.
    match c.put(x, "part/on-isolated", "nope", Duration::from_secs(25)) {
        Ok(rev) => panic!("{name} acknowledged a write (rev {rev}) while isolated"),
        Err(e) => {
            c.log(format!("write on isolated {name} failed: {e}"));
            assert!(
                is_no_quorum_error(&e),
                "unexpected error for a write on isolated {name}: {e}"
            );
        }
    }
    // A linearizable read must fail rather than return the stale value.
    match c.get(x, key, false, Duration::from_secs(25)) {
        Ok(v) => panic!("{name} served a linearizable read while isolated: {v:?}"),
        Err(e) => {
            c.log(format!("linearizable read on isolated {name} failed: {e}"));
            assert!(
                is_no_quorum_error(&e),
                "unexpected error for a read on isolated {name}: {e}"
            );
        }
    }
    // A serializable read is served locally (stale is allowed there).
    let s = c
        .get(x, key, true, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("serializable read on isolated {name}: {e}"));
    assert_eq!(
        s.map(|v| v.0),
        Some(v_old.to_string()),
        "serializable read on {name}"
    );
}

#[test]
fn isolated_follower_cannot_commit_and_serves_no_stale_read() {
    let _g = serial();
    let mut c = proxied("part-follower");
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let x = (leader + 1) % 3;
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != x).collect();
    c.put(leader, "part/k", "old", Duration::from_secs(10))
        .expect("put old");
    c.wait_converged(&all, WAIT);

    c.log(format!("isolating follower {}", c.members[x].name));
    c.proxy.as_ref().unwrap().isolate(x);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = c.spawn_writers(
        3,
        "part/w",
        &majority,
        stop.clone(),
        Duration::from_secs(90),
        50_000,
    );
    let new_rev = c
        .put(leader, "part/k", "new", Duration::from_secs(10))
        .expect("the majority commits while a follower is isolated");

    // The isolated member loses its leader (it hears no heartbeats).
    let st = poll(WAIT, || {
        let s = c.status(x).ok()?;
        (s.leader == 0).then_some(s)
    });
    if st.is_none() {
        let now = c.status(x);
        panic!(
            "isolated {} still reports a leader: {now:?}",
            c.members[x].name
        );
    }
    assert_isolated_member_is_safe(&c, x, "part/k", "old");

    // The majority kept committing all along and still has a leader.
    let ml = c.wait_leader(&majority, WAIT);
    let r1 = c.status(ml).unwrap().revision;
    assert!(
        poll(WAIT, || (c.status(ml).ok()?.revision > r1 + 20)
            .then_some(()))
        .is_some(),
        "majority stopped committing during the partition"
    );

    c.proxy.as_ref().unwrap().heal();
    c.log("healed");
    stop.store(true, Ordering::SeqCst);
    let rep = c.join_writers(writers);
    c.log(format!(
        "{} acked puts, {} errors",
        rep.acked.len(),
        rep.errors
    ));
    assert!(
        rep.acked.len() > 50,
        "too few acked puts during the partition: {}",
        rep.acked.len()
    );
    c.wait_leader(&all, WAIT);
    c.wait_converged(&all, WAIT);
    c.verify_acked(&all, "part/w/", &rep.acked);
    let got = c
        .get(x, "part/k", false, Duration::from_secs(10))
        .expect("linearizable get after heal");
    assert_eq!(
        got,
        Some(("new".to_string(), new_rev)),
        "healed member's value"
    );
    let none = c
        .get(0, "part/on-isolated", false, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        none, None,
        "the write refused during the partition was applied later"
    );
}

#[test]
fn isolated_leader_steps_down_and_serves_no_stale_read() {
    let _g = serial();
    let mut c = proxied("part-leader");
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let old = c.status(leader).unwrap();
    c.put(leader, "part/k", "old", Duration::from_secs(10))
        .expect("put old");
    c.wait_converged(&all, WAIT);

    c.log(format!("isolating leader {}", c.members[leader].name));
    c.proxy.as_ref().unwrap().isolate(leader);
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let nl = c
        .try_wait_leader(&majority, WAIT, old.member_id)
        .unwrap_or_else(|e| panic!("the majority elected no new leader: {e}"));
    let new_rev = c
        .put(nl, "part/k", "new", Duration::from_secs(10))
        .expect("put on the new leader");

    // The isolated old leader must step down (check quorum), not keep claiming leadership.
    let st = poll(WAIT, || {
        let s = c.status(leader).ok()?;
        (s.leader != s.member_id).then_some(s)
    });
    assert!(
        st.is_some(),
        "isolated old leader still reports itself leader: {:?}",
        c.status(leader)
    );
    assert_isolated_member_is_safe(&c, leader, "part/k", "old");

    c.proxy.as_ref().unwrap().heal();
    c.log("healed");
    let l2 = c.wait_leader(&all, WAIT);
    let s = c.status(l2).unwrap();
    assert!(s.term > old.term, "term did not advance: {s:?} vs {old:?}");
    c.wait_converged(&all, WAIT);
    let got = c
        .get(leader, "part/k", false, Duration::from_secs(10))
        .expect("linearizable get on the old leader after heal");
    assert_eq!(got, Some(("new".to_string(), new_rev)));
    let none = c
        .get(nl, "part/on-isolated", false, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        none, None,
        "the write refused during the partition was applied later"
    );
}
