//! Disaster recovery with `--force-new-cluster` (etcd's way out of a lost quorum): a
//! 3-member cluster holds data, all three are killed (-9), and ONE member is restarted with
//! its same flags plus `--force-new-cluster`. It must become leader alone, keep every key
//! with the same revisions, accept writes, and list only itself as a member; restarted
//! again without the flag, it stays a one-member cluster with all its data.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster_harness::*;

fn member_list(c: &Cluster, at: usize) -> Vec<MemberRow> {
    parse_member_list(&c.etcdctl(at, &["member", "list", "-w", "json"]).json())
}

/// Waits until member `r` is, alone, a leader and answers a linearizable read.
fn wait_alone_leader(c: &mut Cluster, r: usize) -> St {
    let l = c.wait_leader(&[r], WAIT);
    assert_eq!(l, r, "the recovered member must lead itself");
    poll(WAIT, || {
        c.get(r, "frc/probe", false, Duration::from_secs(3)).ok()
    })
    .unwrap_or_else(|| panic!("linearizable read on the recovered member never succeeded"));
    c.status(r).expect("status of the recovered member")
}

/// `key -> (value, mod revision)` must be identical.
fn assert_same_data(
    what: &str,
    before: &BTreeMap<String, (String, i64)>,
    after: &BTreeMap<String, (String, i64)>,
) {
    if before == after {
        return;
    }
    let missing: Vec<_> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .take(5)
        .collect();
    let differ: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|v2| v2 != *v))
        .take(5)
        .collect();
    let extra: Vec<_> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .take(5)
        .collect();
    panic!(
        "{what}: {} keys before, {} after; missing {missing:?}, differing {differ:?}, extra {extra:?}",
        before.len(),
        after.len()
    );
}

#[test]
fn force_new_cluster_recovers_one_member_with_all_data() {
    let _g = serial();
    let mut c = Cluster::start("force-new", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    c.load(leader, "frc/k", 300, 4);
    // Overwrites and a delete, so mod revisions differ from create revisions.
    for v in ["a", "b", "c"] {
        c.put(leader, "frc/over", v, WAIT).expect("put frc/over");
    }
    c.put(leader, "frc/gone", "x", WAIT).expect("put frc/gone");
    assert_eq!(
        c.etcdctl(leader, &["del", "frc/gone"]).ok().trim(),
        "1",
        "del frc/gone"
    );
    let rev = c.wait_converged(&all, WAIT);
    let before = c.dump(leader, "frc/");
    assert_eq!(before.len(), 301, "keys before the disaster");
    let ids: Vec<u64> = c.members.iter().map(|m| m.id).collect();

    // The disaster: every member dies at once.
    for i in all {
        c.kill9(i);
    }
    // Recover a member that was not the leader (its log may end a little earlier).
    let r = (leader + 1) % 3;
    let rname = c.members[r].name.clone();
    let force = SpawnExtras {
        args: vec!["--force-new-cluster".into()],
        ..Default::default()
    };
    c.try_spawn_with(r, &force)
        .unwrap_or_else(|e| panic!("{e}"));
    let st = wait_alone_leader(&mut c, r);
    c.log(format!("recovered {rname}: {st:?}"));
    assert_eq!(st.member_id, ids[r], "member id must be kept");
    assert_eq!(st.leader, ids[r]);
    assert!(!st.is_learner);
    assert_eq!(st.revision, rev, "revision after --force-new-cluster");
    assert_same_data(
        "data after --force-new-cluster",
        &before,
        &c.dump(r, "frc/"),
    );

    // Only itself in the member list.
    let l = poll(WAIT, || {
        let l = member_list(&c, r);
        (l.len() == 1).then_some(l)
    })
    .unwrap_or_else(|| panic!("member list never shrank to 1: {:?}", member_list(&c, r)));
    assert_eq!(l[0].0, ids[r], "member list: {l:?}");
    assert_eq!(l[0].1, rname, "member list: {l:?}");
    assert_eq!(
        l[0].2,
        vec![c.members[r].adv_peer_url()],
        "peer URLs: {l:?}"
    );
    assert!(!l[0].4, "listed as learner: {l:?}");

    // Writes are accepted and go on from the old revision.
    let w = c
        .put(r, "frc/after", "1", WAIT)
        .expect("put after --force-new-cluster");
    assert_eq!(w, rev + 1, "revision of the first write after recovery");
    assert_eq!(c.etcdctl(r, &["put", "frc/after2", "2"]).ok().trim(), "OK");
    assert_eq!(c.etcdctl(r, &["get", "frc/over"]).ok(), "frc/over\nc\n");
    assert_eq!(c.etcdctl(r, &["get", "frc/gone"]).ok(), "");

    // A normal restart (no flag) keeps the one-member cluster and its data.
    let mut after = c.dump(r, "frc/");
    assert_eq!(after.len(), 303);
    c.kill9(r);
    c.try_spawn(r).unwrap_or_else(|e| panic!("{e}"));
    let st2 = wait_alone_leader(&mut c, r);
    assert_eq!(st2.revision, rev + 2, "revision after a normal restart");
    assert_same_data("data after a normal restart", &after, &c.dump(r, "frc/"));
    assert_eq!(member_list(&c, r).len(), 1, "member list after restart");
    let w2 = c.put(r, "frc/last", "3", WAIT).expect("put after restart");
    assert_eq!(w2, rev + 3);
    after.insert("frc/last".into(), ("3".into(), w2));
    assert_same_data("final data", &after, &c.dump(r, "frc/"));
}
