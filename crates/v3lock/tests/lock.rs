//! Lock service behaviour, asserted identically against our LockService (over a Routes
//! forwarding to etcd 3.4) and against etcd 3.4's own Lock service.

mod common;

use std::time::{Duration, Instant};

use common::{client, eventually, serve_ours, status, Etcd};
use etcd_client::{GetOptions, LockOptions};
use tonic::Code;

/// Number of keys under `pfx` (read straight from etcd).
async fn keys_under(etcd: &Etcd, pfx: &str) -> usize {
    let mut c = client(&etcd.url).await;
    let r = c
        .get(pfx, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    r.kvs().len()
}

async fn contention(url: &str, etcd: &Etcd, name: &str) {
    let mut a = client(url).await;
    let la = a.lease_grant(30, None).await.expect("grant").id();
    let lb = a.lease_grant(30, None).await.expect("grant").id();
    let got = a
        .lock(name, Some(LockOptions::new().with_lease(la)))
        .await
        .expect("lock a");
    assert_eq!(got.key(), format!("{name}/{la:x}").as_bytes());
    assert!(got.header().expect("header").revision() > 0);

    // Locking again with the same lease is the same acquisition.
    let again = a
        .lock(name, Some(LockOptions::new().with_lease(la)))
        .await
        .expect("relock a");
    assert_eq!(again.key(), got.key());

    let url2 = url.to_string();
    let name2 = name.to_string();
    let waiter = tokio::spawn(async move {
        let mut b = client(&url2).await;
        b.lock(name2.as_str(), Some(LockOptions::new().with_lease(lb)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiter.is_finished(), "second locker must wait");
    assert_eq!(keys_under(etcd, &format!("{name}/")).await, 2);

    let unlocked = a.unlock(got.key()).await.expect("unlock a");
    let unlock_rev = unlocked.header().expect("header").revision();
    let b = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("second locker acquires after unlock")
        .expect("join")
        .expect("lock b");
    assert_eq!(b.key(), format!("{name}/{lb:x}").as_bytes());
    assert!(b.header().expect("header").revision() >= unlock_rev);
    a.unlock(b.key()).await.expect("unlock b");
    assert_eq!(keys_under(etcd, &format!("{name}/")).await, 0);
}

async fn lease_zero_gets_a_session_lease(url: &str, name: &str) {
    let mut a = client(url).await;
    let got = a.lock(name, None).await.expect("lock");
    let key = String::from_utf8(got.key().to_vec()).expect("utf8");
    let hex = key.strip_prefix(&format!("{name}/")).expect("prefix");
    let id = i64::from_str_radix(hex, 16).expect("hex lease id");
    let ttl = a.lease_time_to_live(id, None).await.expect("ttl");
    assert_eq!(ttl.granted_ttl(), 60, "clientv3's default session TTL");
    a.lease_revoke(id).await.expect("revoke");
}

async fn expiry_releases(url: &str, name: &str) {
    let mut a = client(url).await;
    let short = a.lease_grant(2, None).await.expect("grant").id();
    let long = a.lease_grant(30, None).await.expect("grant").id();
    a.lock(name, Some(LockOptions::new().with_lease(short)))
        .await
        .expect("lock short");
    let start = Instant::now();
    let b = tokio::time::timeout(
        Duration::from_secs(15),
        a.lock(name, Some(LockOptions::new().with_lease(long))),
    )
    .await
    .expect("lease expiry releases the lock")
    .expect("lock long");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited for the expiry"
    );
    a.unlock(b.key()).await.expect("unlock");
}

async fn abandoned_waiter_leaves_no_key(url: &str, etcd: &Etcd, name: &str) {
    let base = common::settled_watchers(etcd).await;
    let mut a = client(url).await;
    let la = a.lease_grant(30, None).await.expect("grant").id();
    let lb = a.lease_grant(30, None).await.expect("grant").id();
    let held = a
        .lock(name, Some(LockOptions::new().with_lease(la)))
        .await
        .expect("lock a");
    let (url2, name2) = (url.to_string(), name.to_string());
    let b_key = format!("{name}/{lb:x}");
    common::abandon_once_waiting(etcd, &b_key, Some(base + 1.0), async move {
        let mut b = client(&url2).await;
        let _ = b
            .lock(name2.as_str(), Some(LockOptions::new().with_lease(lb)))
            .await;
    })
    .await;
    let pfx = format!("{name}/");
    assert!(
        eventually(Duration::from_secs(5), || {
            let pfx = pfx.clone();
            async move { keys_under(etcd, &pfx).await == 1 }
        })
        .await,
        "the abandoned waiter's key is deleted"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            common::watchers(etcd).await <= base
        })
        .await,
        "the abandoned waiter's watch is cancelled"
    );
    a.unlock(held.key()).await.expect("unlock");
}

async fn errors(url: &str, name: &str) {
    let mut a = client(url).await;
    let e = a
        .lock(name, Some(LockOptions::new().with_lease(0x7777_0000)))
        .await
        .expect_err("unknown lease");
    let s = status(e);
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "etcdserver: requested lease not found")
    );
    // Unlocking a key that does not exist succeeds (a plain delete).
    let r = a.unlock(format!("{name}/nope")).await.expect("unlock");
    assert!(r.header().is_some());
}

async fn run_all(url: &str, etcd: &Etcd, tag: &str) {
    contention(url, etcd, &format!("{tag}/contend")).await;
    lease_zero_gets_a_session_lease(url, &format!("{tag}/zero")).await;
    abandoned_waiter_leaves_no_key(url, etcd, &format!("{tag}/abandon")).await;
    errors(url, &format!("{tag}/errors")).await;
    expiry_releases(url, &format!("{tag}/expiry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_matches_etcd() {
    let etcd = Etcd::start();
    let ours = serve_ours(&etcd).await;
    run_all(&etcd.url, &etcd, "etcd").await;
    run_all(&ours.url, &etcd, "ours").await;
}
