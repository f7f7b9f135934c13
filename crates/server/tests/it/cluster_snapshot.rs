//! Issue 5, catch-up by snapshot: with `--snapshot-count 1000 --snapshot-catchup-entries 100`
//! a member that was down during 50,000 writes (puts, overwrites, deletes, a lease, a
//! compaction) is caught up with a snapshot when it restarts, and ends with exactly the same
//! revision and data as the others.

use std::time::Duration;

use crate::cluster_harness::*;
use crate::common::{failpoints_bin, oxcd_only};
use etcd_client::{GetOptions, PutOptions};

/// The issue names 50k writes; with `--snapshot-count 1000` the log is compacted many
/// times over while the member is down.
const WRITES: usize = 50_000;

#[test]
fn restarted_member_catches_up_by_snapshot() {
    let _g = serial();
    let mut o = Opts::new(3);
    o.snapshot_count = Some(1000);
    o.catchup_entries = Some(100);
    let mut c = Cluster::start("snap", o);
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let f = (leader + 1) % 3;
    c.put(leader, "snap/early", "before-stop", Duration::from_secs(10))
        .expect("early put");
    c.put(
        leader,
        "snap/doomed",
        "will be deleted",
        Duration::from_secs(10),
    )
    .expect("doomed put");
    c.wait_converged(&all, WAIT);
    let fname = c.members[f].name.clone();
    // (kill -9: graceful stop is covered by cluster_failover's SIGTERM test.)
    c.kill9(f);

    let others: Vec<usize> = all.iter().copied().filter(|&i| i != f).collect();
    let t = std::time::Instant::now();
    let last = c.load(leader, "snap/k", WRITES, 16);
    c.log(format!(
        "{WRITES} puts in {:?}, last revision {last}",
        t.elapsed()
    ));

    // Overwrites, a delete, a lease with a key, and a compaction while it is down.
    let mut cl = c.client(leader);
    let (lease_id, compact_rev) = c.rt.block_on(async {
        for i in 0..10 {
            cl.put(format!("snap/k{i:06}"), format!("overwritten-{i}"), None)
                .await
                .expect("overwrite");
        }
        cl.delete("snap/doomed", None).await.expect("delete");
        let lease = cl.lease_grant(600, None).await.expect("lease grant").id();
        cl.put(
            "snap/leased",
            "with lease",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("put with lease");
        let r = cl.put("snap/marker", "m", None).await.expect("marker");
        let compact_rev = r.header().unwrap().revision() - 5;
        cl.compact(compact_rev, None).await.expect("compact");
        (lease, compact_rev)
    });
    c.wait_converged(&others, WAIT);

    c.log(format!("restarting {fname}"));
    c.spawn(f);
    c.wait_leader(&all, WAIT);
    let rev = c.wait_converged(&all, Duration::from_secs(30));
    c.log(format!("all converged at revision {rev}"));

    let d0 = c.dump(leader, "snap/");
    let df = c.dump(f, "snap/");
    assert_eq!(d0.len(), WRITES + 3, "leader key count");
    if df != d0 {
        let missing: Vec<_> = d0.keys().filter(|k| !df.contains_key(*k)).take(5).collect();
        let extra: Vec<_> = df.keys().filter(|k| !d0.contains_key(*k)).take(5).collect();
        let differ: Vec<_> = d0
            .iter()
            .filter(|(k, v)| df.get(*k).is_some_and(|v2| v2 != *v))
            .take(5)
            .collect();
        panic!(
            "{fname} differs after catch-up: {} vs {} keys; missing {missing:?}; extra {extra:?}; differing {differ:?}",
            df.len(),
            d0.len()
        );
    }
    assert_eq!(df["snap/k000003"].0, "overwritten-3");
    assert!(
        !df.contains_key("snap/doomed"),
        "deleted key came back on {fname}"
    );

    // Lease attachment and the compaction travelled too.
    let url = c.members[f].client_url();
    c.rt.block_on(async {
        let mut fc = Cluster::connect(url).await.unwrap();
        let r = fc
            .get("snap/leased", Some(GetOptions::new().with_serializable()))
            .await
            .expect("get leased key");
        assert_eq!(
            r.kvs()[0].lease(),
            lease_id,
            "lease of snap/leased on {fname}"
        );
        let e = fc
            .get(
                "snap/early",
                Some(
                    GetOptions::new()
                        .with_serializable()
                        .with_revision(compact_rev - 1),
                ),
            )
            .await
            .expect_err("read below the compacted revision succeeded on the restarted member");
        assert!(
            e.to_string().contains("compacted"),
            "unexpected error for a compacted revision on {fname}: {e}"
        );
    });

    if c.kind == Kind::Oxcd {
        assert!(
            c.members[f].log().contains("received snapshot"),
            "{fname} caught up without receiving a snapshot (log has no \"received snapshot\")"
        );
    }

    // It keeps up afterwards and serves linearizable reads.
    let r = c
        .put(f, "snap/after", "x", Duration::from_secs(10))
        .expect("put via the restarted member");
    let got = c
        .get(f, "snap/after", false, Duration::from_secs(10))
        .unwrap();
    assert_eq!(got, Some(("x".to_string(), r)));
    c.wait_converged(&all, WAIT);
}

/// A member that crashes after its Raft log recorded a leader's snapshot but before its
/// backend held the rows (`applyBeforeOpenSnapshot` panics in the apply loop) comes back with
/// the snapshot's data, not with a log that skips the entries its backend never saw. Before
/// the pending-snapshot file it restarted at its old consistent index with a log starting
/// after the snapshot, and gave revisions to writes that other members had given to others
/// (the fail-point robustness scenario found it).
#[test]
fn crash_between_the_logs_snapshot_and_the_backend_install_loses_nothing() {
    oxcd_only(
        "cluster_snapshot::crash_between_the_logs_snapshot_and_the_backend_install_loses_nothing",
    );
    let Some(fp_bin) = failpoints_bin("cluster_snapshot") else {
        return;
    };
    let _g = serial();
    let mut o = Opts::new(3);
    o.snapshot_count = Some(100);
    o.catchup_entries = Some(10);
    let mut c = Cluster::start("snap-crash", o);
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let f = (leader + 1) % 3;
    c.load(leader, "sc/a", 200, 8);
    c.wait_converged(&all, WAIT);
    c.kill9(f);
    // Far past the leader's compacted log: the member can only catch up by snapshot.
    c.load(leader, "sc/b", 1000, 8);
    c.try_spawn_with(
        f,
        &SpawnExtras::failpoints(fp_bin, "applyBeforeOpenSnapshot=panic"),
    )
    .expect("spawn the member with the fail point");
    let st = c.members[f].wait_exit(Duration::from_secs(20));
    assert!(
        st.is_some()
            && c.members[f]
                .log()
                .contains("failpoint applyBeforeOpenSnapshot panic"),
        "the member did not crash at applyBeforeOpenSnapshot: {st:?}\n{}",
        c.members[f].tail(4000)
    );
    c.spawn(f);
    c.wait_leader(&all, WAIT);
    let last = c
        .put(leader, "sc/after", "x", Duration::from_secs(10))
        .expect("put after the restart");
    let rev = c.wait_converged(&all, Duration::from_secs(30));
    assert!(
        rev >= last,
        "converged at {rev}, below the last write {last}"
    );
    let d0 = c.dump(leader, "sc/");
    let df = c.dump(f, "sc/");
    assert_eq!(d0.len(), 1201, "leader key count");
    assert_eq!(
        df.len(),
        d0.len(),
        "keys on the restarted member vs the leader"
    );
    assert!(
        df == d0,
        "the restarted member's data differs from the leader's"
    );
    assert!(
        c.members[f]
            .log()
            .contains("installed a raft snapshot received before the restart"),
        "the restart did not install the pending snapshot"
    );
}
