//! Corruption checks on a 3-member cluster. n3 runs the `failpoints` build with
//! `FAILPOINTS=applyCorruptPut=1*return`, so it stores one value differently from n1 and n2
//! (a stand-in for a disk that flipped a bit). With `--experimental-corrupt-check-time`
//! the leader (n1 or n2: n3 starts after they elected one) finds the differing HashKV and
//! raises CORRUPT for n3 through Raft, after which the cluster refuses writes with etcd's
//! "etcdserver: corrupt cluster"; restarted with `--experimental-initial-corrupt-check`, n3
//! refuses to start. oxcd only (etcd 3.4 has the flags but no way to make a member diverge).

use std::time::Duration;

use crate::cluster_harness::*;
use crate::common::{failpoints_bin, oxcd_only};

#[test]
fn a_diverged_member_raises_corrupt_and_is_refused_at_start() {
    oxcd_only("corruption::a_diverged_member_raises_corrupt_and_is_refused_at_start");
    let Some(fp_bin) = failpoints_bin("corruption") else {
        return;
    };
    let _g = serial();
    let mut c = Cluster::prepare("corrupt", Opts::new(3));
    for m in c.members.iter_mut() {
        m.extra_args
            .push("--experimental-corrupt-check-time=1s".into());
    }
    c.spawn(0);
    c.spawn(1);
    c.wait_leader(&[0, 1], START_WAIT);
    c.try_spawn_with(
        2,
        &SpawnExtras::failpoints(fp_bin, "applyCorruptPut=1*return"),
    )
    .expect("spawn n3 with the fail point");
    c.wait_leader(&[0, 1, 2], START_WAIT);
    let n3_id = c.status(2).expect("n3 status").member_id;
    let eps = vec![c.members[0].client_url()];
    let out = etcdctl_at(&eps, &["put", "k", "v"], None);
    assert!(out.success(), "{out:#?}");

    let alarm = poll(Duration::from_secs(20), || {
        let out = etcdctl_at(&eps, &["alarm", "list"], None);
        out.stdout
            .contains("alarm:CORRUPT")
            .then(|| out.stdout.clone())
    })
    .expect("no CORRUPT alarm within 20 s of the divergence");
    assert!(
        alarm.contains(&format!("memberID:{n3_id} alarm:CORRUPT")),
        "the alarm names another member than n3 ({n3_id}): {alarm}"
    );
    assert_eq!(alarm.lines().count(), 1, "only n3 is corrupt: {alarm}");
    let out = etcdctl_at(&eps, &["put", "k2", "v2"], None);
    assert!(
        !out.success() && out.stderr.contains("etcdserver: corrupt cluster"),
        "a write passed the CORRUPT alarm: {out:#?}"
    );

    // n3 restarted with the initial check (the normal build): it must not come up.
    c.kill9(2);
    c.try_spawn_with(
        2,
        &SpawnExtras {
            args: vec!["--experimental-initial-corrupt-check".into()],
            ..Default::default()
        },
    )
    .expect("respawn n3");
    let st = c.members[2].wait_exit(Duration::from_secs(30));
    let log = c.members[2].log();
    let st = st.unwrap_or_else(|| panic!("n3 kept running despite the initial check:\n{log}"));
    assert!(!st.success(), "n3 exited with {st:?}");
    assert!(
        log.contains("found data inconsistency with peers"),
        "n3's log does not name the inconsistency:\n{log}"
    );
}
