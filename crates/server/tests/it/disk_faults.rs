//! Disk faults (issue 18), oxcd only:
//! - a data dir on a small tmpfs the test mounts fills up: growing writes are refused with
//!   etcd's "database space exceeded" and the NOSPACE alarm, reads keep working, and once
//!   the ballast is deleted the alarm clears by itself and writes pass again; every
//!   acknowledged write is there, also after a restart;
//! - an fdatasync error (the `walSyncError` fail point of the failpoints build,
//!   `OXCD_FAILPOINTS_BIN`) stops the process with a non-zero status without acknowledging
//!   the write in flight, and a restart without the fail point has every acknowledged write;
//! - a slow disk (`walBeforeSync=sleep(1500)`, longer than the election timeout) on the
//!   leader of a 3-member cluster: the others stop hearing from it while it sits in
//!   fdatasync and elect a leader among themselves, so writes keep flowing.
//!
//! The tmpfs test needs root (`mount`), as the tests get here and in CI: a failing mount
//! fails the test, it never skips. The mount is undone by a guard, after the server is
//! killed, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oxcd_testkit::TestServer;

use crate::common::{failpoints_bin, oxcd_only};

/// `--max-request-bytes` of the tmpfs test: the server's free-space reserve is
/// `oxcd_storage::quota::DISK_RESERVE_BYTES` (8 MiB) plus twice this.
const MAX_REQUEST_BYTES: u64 = 1 << 20;
const RESERVE: u64 = (8 << 20) + 2 * MAX_REQUEST_BYTES;
const VALUE_BYTES: usize = 256 << 10;

fn oxcd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oxcd"))
}

/// A server whose data dir is a tmpfs mount; on drop the server is killed, then unmounted.
struct OnTmpfs {
    server: TestServer,
    mount: PathBuf,
}

impl OnTmpfs {
    fn start(size: &str, args: &[&str]) -> OnTmpfs {
        let server = TestServer::new_stopped(oxcd(), args);
        let mount = server.data_dir.clone();
        std::fs::create_dir_all(&mount).expect("create the data dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} failed (the disk-fault tests need root): {}",
            mount.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = OnTmpfs { server, mount };
        s.server.spawn_and_wait();
        s
    }
}

impl Drop for OnTmpfs {
    fn drop(&mut self) {
        self.server.kill9();
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Bytes available on the filesystem holding `dir` (`df`).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .expect("run df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("df output: {out:?}"))
}

fn value(i: usize) -> String {
    format!("{i:06}-").repeat(VALUE_BYTES / 7)
}

fn poll_alarms(s: &TestServer, want_nospace: bool, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let out = s.etcdctl(&["alarm", "list"]);
        if out.success() && out.stdout.contains("alarm:NOSPACE") == want_nospace {
            return out.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "NOSPACE {} within {within:?}: {out:#?}",
            if want_nospace {
                "not raised"
            } else {
                "not cleared"
            }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every acknowledged key is there with its value.
fn assert_acked(s: &TestServer, acked: &[usize], when: &str) {
    let out = s.etcdctl(&["get", "k/", "--prefix", "--keys-only"]);
    let keys: std::collections::BTreeSet<String> = out
        .ok()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    for &i in acked {
        assert!(
            keys.contains(&format!("k/{i:06}")),
            "{when}: acknowledged k/{i:06} is missing"
        );
    }
    for &i in [acked.first(), acked.last()].into_iter().flatten() {
        let v = s.etcdctl(&["get", &format!("k/{i:06}"), "--print-value-only"]);
        assert_eq!(v.ok().trim_end(), value(i), "{when}: value of k/{i:06}");
    }
}

fn put(s: &TestServer, i: usize) -> oxcd_testkit::CmdOutput {
    s.etcdctl_stdin(&["put", &format!("k/{i:06}")], Some(&value(i)))
}

#[test]
fn a_full_disk_raises_nospace_and_writes_resume_once_space_is_freed() {
    oxcd_only("disk_faults::a_full_disk_raises_nospace_and_writes_resume_once_space_is_freed");
    let max = MAX_REQUEST_BYTES.to_string();
    let mut t = OnTmpfs::start("128m", &["--max-request-bytes", &max]);
    let mut acked = Vec::new();
    for i in 0..4 {
        let out = put(&t.server, i);
        assert!(out.success(), "put with room: {out:#?}");
        acked.push(i);
    }
    // Leave 4 MiB above the reserve, then write 256 KiB values until one is refused.
    let ballast = t.mount.join("ballast");
    let room = free_bytes(&t.mount);
    assert!(
        room > RESERVE + (8 << 20),
        "tmpfs too small: {room} bytes free"
    );
    let fill = room - RESERVE - (4 << 20);
    let out = Command::new("fallocate")
        .args(["-l", &fill.to_string()])
        .arg(&ballast)
        .output()
        .expect("run fallocate");
    assert!(out.status.success(), "fallocate ballast: {out:?}");
    let mut refused = None;
    for i in 4..200 {
        let out = put(&t.server, i);
        if out.success() {
            acked.push(i);
        } else {
            refused = Some(out);
            break;
        }
    }
    let refused = refused.expect("no write was refused on a full disk");
    eprintln!(
        "{} writes acknowledged, then refused with {} bytes free",
        acked.len(),
        free_bytes(&t.mount)
    );
    assert!(
        refused
            .stderr
            .contains("etcdserver: mvcc: database space exceeded"),
        "refused with another error: {refused:#?}"
    );
    assert!(t.server.is_running(), "the server stopped on a full disk");
    poll_alarms(&t.server, true, Duration::from_secs(10));
    // Reads and deletes still work; growing writes stay refused.
    assert_eq!(
        t.server
            .etcdctl(&["get", "k/000000", "--print-value-only"])
            .ok()
            .trim_end(),
        value(0)
    );
    let out = t.server.etcdctl(&["put", "small", "x"]);
    assert!(
        out.stderr.contains("database space exceeded"),
        "a put passed NOSPACE: {out:#?}"
    );

    std::fs::remove_file(&ballast).expect("delete the ballast");
    poll_alarms(&t.server, false, Duration::from_secs(10));
    let out = put(&t.server, 1000);
    assert!(out.success(), "put after space was freed: {out:#?}");
    acked.push(1000);
    assert_acked(&t.server, &acked, "after freeing space");
    t.server.restart();
    assert_acked(&t.server, &acked, "after a restart");
}

#[test]
fn an_fdatasync_error_stops_the_member_and_a_restart_recovers_every_acknowledged_write() {
    oxcd_only("disk_faults::an_fdatasync_error_stops_the_member_and_a_restart_recovers_every_acknowledged_write");
    let Some(fp_bin) = failpoints_bin("disk_faults") else {
        return;
    };
    let mut s = TestServer::new_stopped_exact(&fp_bin, &[]);
    // The first syncs (start-up, a few writes) pass; then every fdatasync fails.
    s.env
        .push(("FAILPOINTS".into(), "walSyncError=30*off->return".into()));
    s.spawn_and_wait();
    let mut acked = Vec::new();
    let mut failed = None;
    for i in 0..100 {
        let out = put(&s, i);
        if out.success() {
            acked.push(i);
        } else {
            failed = Some(out);
            break;
        }
    }
    let failed = failed.expect("no write failed with the fail point armed");
    eprintln!(
        "{} writes acknowledged before fdatasync failed",
        acked.len()
    );
    assert!(!acked.is_empty(), "no write passed before the fail point");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the server kept running after fdatasync failed: {failed:#?}"));
    assert!(!status.success(), "exit status {status:?}");
    let log = s.log();
    assert!(
        log.contains("fdatasync failed (fail point walSyncError)"),
        "no clear log line: {log}"
    );
    s.env.clear();
    s.spawn_and_wait();
    assert_acked(&s, &acked, "after the restart");
}

#[test]
fn a_slow_disk_on_the_leader_moves_leadership_instead_of_stalling_the_cluster() {
    use crate::cluster_harness::{etcdctl_at, serial, Cluster, Opts, SpawnExtras, START_WAIT};
    oxcd_only(
        "disk_faults::a_slow_disk_on_the_leader_moves_leadership_instead_of_stalling_the_cluster",
    );
    let Some(fp_bin) = failpoints_bin("disk_faults") else {
        return;
    };
    let _g = serial();
    let mut c = Cluster::prepare("slowdisk", Opts::new(3));
    c.spawn(0);
    c.spawn(1);
    c.wait_leader(&[0, 1], START_WAIT);
    // n3's every WAL fdatasync takes 1.5 s: longer than the 1 s election timeout.
    c.try_spawn_with(
        2,
        &SpawnExtras::failpoints(fp_bin, "walBeforeSync=sleep(1500)"),
    )
    .expect("spawn n3 with the slow disk");
    c.wait_leader(&[0, 1, 2], START_WAIT);
    let slow = c.status(2).expect("n3 status").member_id;
    // Make the slow member the leader (bounded retries: it catches up slowly).
    let mut moved = None;
    for _ in 0..5 {
        let leader = c.wait_leader(&[0, 1, 2], START_WAIT);
        if leader == 2 {
            moved = Some("n3 is the leader".to_string());
            break;
        }
        let o = etcdctl_at(
            &[c.members[leader].endpoint()],
            &["move-leader", &format!("{slow:x}")],
            None,
        );
        if o.success() {
            moved = Some(o.stdout);
            break;
        }
        eprintln!("move-leader: {}", o.stderr.trim());
        std::thread::sleep(Duration::from_secs(1));
    }
    let moved = moved.expect("leadership never moved to the slow member");
    eprintln!("{}", moved.trim());

    // Writes through n1 reach the slow leader, which stalls in fdatasync; the others stop
    // hearing from it and elect a leader among themselves, and writes flow again.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut streak = 0;
    let mut i = 0;
    while streak < 10 {
        assert!(
            Instant::now() < deadline,
            "the cluster stalled behind the slow leader: {streak} recent writes in 30 s"
        );
        i += 1;
        let t = Instant::now();
        let ok = c
            .put(0, &format!("slow/{i}"), "v", Duration::from_secs(5))
            .is_ok();
        let leader = c.status(0).map(|s| s.leader).unwrap_or(0);
        if ok && leader != slow && t.elapsed() < Duration::from_secs(1) {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    let leader = c.status(0).expect("n1 status").leader;
    assert_ne!(leader, slow, "the slow member is still the leader");
    eprintln!(
        "leadership left the slow member; writes flowed again after {:?}",
        started.elapsed()
    );
}
