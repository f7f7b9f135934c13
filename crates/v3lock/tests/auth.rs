//! The caller's auth token reaches the inner KV/Lease/Watch calls: with auth enabled on the
//! backing etcd, a user may lock only under the prefix its role grants, and a caller
//! without a token is refused, exactly as by etcd 3.4's own Lock/Election services.

mod common;

use common::{client, client_opts, serve_ours, status, Etcd};
use etcd_client::{ConnectOptions, LockOptions, Permission};

async fn enable_auth(etcd: &Etcd) {
    let mut c = client(&etcd.url).await;
    c.role_add("root").await.expect("role root");
    c.user_add("root", "rootpw", None).await.expect("user root");
    c.user_grant_role("root", "root").await.expect("grant root");
    c.role_add("lockers").await.expect("role lockers");
    c.role_grant_permission("lockers", Permission::read_write("mine/").with_prefix())
        .await
        .expect("grant perm");
    c.user_add("alice", "alicepw", None)
        .await
        .expect("user alice");
    c.user_grant_role("alice", "lockers")
        .await
        .expect("grant alice");
    c.auth_enable().await.expect("auth enable");
}

/// (code, message) of every outcome, so both servers can be compared as a whole.
async fn outcomes(url: &str) -> Vec<String> {
    let mut alice = client_opts(url, ConnectOptions::new().with_user("alice", "alicepw")).await;
    let mut out = Vec::new();
    let lease = alice.lease_grant(30, None).await.expect("grant").id();
    let held = alice
        .lock("mine/l", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("alice may lock under her prefix");
    assert_eq!(held.key(), format!("mine/l/{lease:x}").as_bytes());
    alice.unlock(held.key()).await.expect("unlock");

    let denied = alice
        .lock("theirs/l", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect_err("alice may not lock elsewhere");
    let s = status(denied);
    out.push(format!("{:?} {}", s.code(), s.message()));
    let e = alice
        .leader("theirs/e")
        .await
        .expect_err("nor read another election");
    let s = status(e);
    out.push(format!("{:?} {}", s.code(), s.message()));

    let mut anon = client(url).await;
    let e = anon
        .lock("mine/l", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect_err("no token, no lock");
    let s = status(e);
    out.push(format!("{:?} {}", s.code(), s.message()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reaches_inner_calls() {
    let etcd = Etcd::start();
    let ours = serve_ours(&etcd).await;
    enable_auth(&etcd).await;
    let theirs = outcomes(&etcd.url).await;
    assert_eq!(
        theirs,
        vec![
            "Unknown etcdserver: permission denied".to_string(),
            "Unknown etcdserver: permission denied".to_string(),
            "Unknown etcdserver: user name is empty".to_string(),
        ]
    );
    assert_eq!(outcomes(&ours.url).await, theirs);
}
