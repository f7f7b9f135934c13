//! Distributed locks and leader election through the Lock and Election services, with
//! etcdctl 3.4 (`lock NAME CMD`, `elect NAME PROPOSAL`, `elect -l NAME`) and the
//! `etcd-client` crate (`lock`/`unlock`, `campaign`/`proclaim`/`leader`/`observe`/`resign`),
//! against oxcd and against etcd with the same assertions. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{etcd_client, etcdctl_bin, TestServer};

/// A long-running etcdctl with its stdout lines on a channel; killed (by PID) on drop.
struct Bg {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Bg {
    fn spawn(s: &TestServer, args: &[&str]) -> Bg {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", s.endpoint()))
            .arg("--dial-timeout=3s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcdctl");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Bg { child, lines }
    }

    /// The next stdout line containing `want`, within `limit`.
    fn expect_line(&self, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(want) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line with {want:?} within {limit:?}; saw {seen:?}"),
            }
        }
    }

    /// No stdout line containing `unwanted` arrives during `d`.
    fn quiet_for(&self, unwanted: &str, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => assert!(!l.contains(unwanted), "unexpected {l:?}"),
                Err(_) => return,
            }
        }
    }
}

impl Bg {
    /// SIGTERM (etcdctl closes its session: the lease is revoked, the lock or leadership
    /// released) and a bounded wait for the exit.
    fn terminate(mut self) {
        oxcd_testkit::process::signal_pid(self.child.id(), oxcd_testkit::process::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcdctl did not exit on SIGTERM");
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn etcdctl_lock_is_exclusive_and_passes_on_release() {
    let s = TestServer::start();
    // The first holder keeps the lock (etcdctl prints the lock key, then waits).
    let a = Bg::spawn(&s, &["lock", "mylock"]);
    let key_a = a.expect_line("mylock/", Duration::from_secs(10));
    // A second client waits...
    let b = Bg::spawn(&s, &["lock", "mylock"]);
    b.quiet_for("mylock/", Duration::from_secs(2));
    // ...until the first lets go (SIGTERM: its session's lease is revoked).
    a.terminate();
    let key_b = b.expect_line("mylock/", Duration::from_secs(10));
    assert_ne!(key_a, key_b, "the second holder got the first one's key");

    // Command mode: `lock NAME CMD` runs CMD while holding the lock and exits with it.
    let out = s.etcdctl(&["lock", "cmdlock", "echo", "ran-under-lock"]);
    assert!(out.success(), "{out:#?}");
    assert!(out.stdout.contains("ran-under-lock"), "{out:#?}");
}

#[test]
fn etcdctl_elect_campaigns_observes_and_fails_over() {
    let s = TestServer::start();
    let observer = Bg::spawn(&s, &["elect", "-l", "myelection"]);
    let a = Bg::spawn(&s, &["elect", "myelection", "alpha"]);
    a.expect_line("alpha", Duration::from_secs(10));
    observer.expect_line("alpha", Duration::from_secs(10));
    let b = Bg::spawn(&s, &["elect", "myelection", "beta"]);
    b.quiet_for("beta", Duration::from_secs(2));
    a.terminate();
    b.expect_line("beta", Duration::from_secs(10));
    observer.expect_line("beta", Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_client_lock_and_election() {
    use etcd_client::LockOptions;

    let s = tokio::task::block_in_place(TestServer::start);
    let mut c = etcd_client(&s).await;
    let lease = c.lease_grant(30, None).await.unwrap().id();
    let held = c
        .lock("crate-lock", Some(LockOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let key = held.key().to_vec();
    assert!(key.starts_with(b"crate-lock/"), "{key:?}");

    // A second locker blocks until the first unlocks.
    let mut c2 = etcd_client(&s).await;
    let lease2 = c2.lease_grant(30, None).await.unwrap().id();
    let waiter = tokio::spawn(async move {
        c2.lock("crate-lock", Some(LockOptions::new().with_lease(lease2)))
            .await
            .map(|r| r.key().to_vec())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the second lock did not wait");
    c.unlock(key.clone()).await.unwrap();
    let key2 = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter got the lock in time")
        .unwrap()
        .unwrap();
    assert_ne!(key, key2);

    // Election: campaign, leader, proclaim, observe, resign.
    let el = c.lease_grant(30, None).await.unwrap().id();
    let r = c.campaign("crate-election", "one", el).await.unwrap();
    let leader_key = r.leader().expect("a leader key").clone();
    let l = c.leader("crate-election").await.unwrap();
    assert_eq!(l.kv().map(|kv| kv.value()), Some(&b"one"[..]));
    let mut obs = c.observe("crate-election").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), obs.message())
        .await
        .expect("observe in time")
        .unwrap()
        .expect("a leader");
    assert_eq!(first.kv().map(|kv| kv.value()), Some(&b"one"[..]));
    c.proclaim(
        "two",
        Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone())),
    )
    .await
    .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), obs.message())
        .await
        .expect("observe the proclamation in time")
        .unwrap()
        .expect("a leader");
    assert_eq!(next.kv().map(|kv| kv.value()), Some(&b"two"[..]));
    c.resign(Some(
        etcd_client::ResignOptions::new().with_leader(leader_key),
    ))
    .await
    .unwrap();
    let st = c.leader("crate-election").await.unwrap_err();
    assert!(st.to_string().contains("election: no leader"), "{st}");
}
