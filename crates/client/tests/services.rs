//! Cluster, Maintenance, Auth (with token refresh), Lock, Election, failover and the
//! concurrency recipes against a real etcd (`/usr/bin/etcd` or `$OXCD_TEST_ETCD`); each test
//! prints a skip message and passes when no etcd binary is installed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxcd_client::concurrency::{
    run_stm, Election, Isolation, Mutex, Session, SessionOptions, StmOptions,
};
use oxcd_client::test_util::{etcd_binary, free_port, EtcdProcess};
use oxcd_client::{Client, ConnectOptions, Error, PermissionType};

async fn etcd(extra: &[&str]) -> Option<(EtcdProcess, Client)> {
    let Some(bin) = etcd_binary() else {
        eprintln!("SKIP: no etcd binary (/usr/bin/etcd or $OXCD_TEST_ETCD)");
        return None;
    };
    let server = EtcdProcess::start_with(&bin, extra)
        .await
        .expect("start etcd");
    let client = Client::connect([server.endpoint()]).await.expect("connect");
    Some((server, client))
}

#[tokio::test]
async fn cluster_and_maintenance() {
    let Some((server, c)) = etcd(&[]).await else {
        return;
    };
    let ml = c.member_list().await.unwrap();
    assert_eq!(ml.members.len(), 1);
    let me = ml.members[0].id;
    let st = c.status().await.unwrap();
    assert_eq!(st.leader, me);
    assert!(c.alarm_list().await.unwrap().alarms.is_empty());
    c.put("h", "1", &Default::default()).await.unwrap();
    let h1 = c.hash_kv(0).await.unwrap();
    assert_ne!(h1.hash, 0);
    c.defragment().await.unwrap();
    assert!(c.hash().await.unwrap().hash != 0);
    use futures::StreamExt;
    let mut snap = c.snapshot().await.unwrap();
    let mut bytes = 0;
    while let Some(chunk) = snap.next().await {
        bytes += chunk.unwrap().blob.len();
    }
    assert!(bytes > 0);
    // A learner add then remove round-trips.
    let peer = format!("http://127.0.0.1:{}", free_port().unwrap());
    let added = c.member_add(vec![peer.clone()], true).await.unwrap();
    let new = added.member.unwrap();
    assert!(new.is_learner);
    assert_eq!(new.peer_ur_ls, [peer]);
    c.member_remove(new.id).await.unwrap();
    assert_eq!(c.member_list().await.unwrap().members.len(), 1);
    // Moving leadership to ourselves is a no-op on etcd.
    let _ = c.move_leader(me).await;
    drop(server);
}

#[tokio::test]
async fn failover_skips_a_dead_endpoint() {
    let Some((server, _)) = etcd(&[]).await else {
        return;
    };
    let dead = format!("127.0.0.1:{}", free_port().unwrap());
    let c = Client::connect_with(
        [dead.as_str(), server.endpoint()],
        &ConnectOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.current_endpoint(), dead);
    // Reads are retried on the next endpoint.
    assert!(c.get("x").await.unwrap().is_none());
    assert_eq!(c.current_endpoint(), server.endpoint());
    // Bad input: a malformed endpoint is named.
    let e = Client::connect(["http://:bad"]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidEndpoint { .. }), "{e}");
    // An unreachable single endpoint names it.
    let e = Client::connect([dead.as_str()]).await.unwrap_err();
    assert!(e.to_string().contains(&dead), "{e}");
}

#[tokio::test]
async fn auth_token_is_refreshed() {
    let Some((server, c)) = etcd(&["--auth-token-ttl=1"]).await else {
        return;
    };
    c.user_add("root", Some("rootpw")).await.unwrap();
    c.role_add("root").await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.user_add("app", Some("apppw")).await.unwrap();
    c.role_add("cfg").await.unwrap();
    c.role_grant_permission(
        "cfg",
        PermissionType::Readwrite,
        b"/cfg/".to_vec(),
        oxcd_client::prefix_end(b"/cfg/"),
    )
    .await
    .unwrap();
    c.user_grant_role("app", "cfg").await.unwrap();
    c.auth_enable().await.unwrap();
    let e = c.put("/cfg/a", "x", &Default::default()).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument), "{e}");

    let opts = ConnectOptions {
        user: Some(("app".into(), "apppw".into())),
        ..Default::default()
    };
    let app = Client::connect_with([server.endpoint()], &opts)
        .await
        .unwrap();
    app.put("/cfg/a", "1", &Default::default()).await.unwrap();
    let denied = app
        .put("/other", "1", &Default::default())
        .await
        .unwrap_err();
    assert!(
        denied.message().unwrap().contains("permission denied"),
        "{denied}"
    );
    // The simple token expires after 1 s of inactivity; the next request re-authenticates.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.put("/cfg/a", "2", &Default::default()).await.unwrap();
    assert_eq!(app.get("/cfg/a").await.unwrap().unwrap().value, b"2");
    let wrong = ConnectOptions {
        user: Some(("app".into(), "nope".into())),
        ..Default::default()
    };
    let e = Client::connect_with([server.endpoint()], &wrong)
        .await
        .unwrap_err();
    assert!(
        e.message().unwrap().contains("authentication failed"),
        "{e}"
    );
    let root = Client::connect_with(
        [server.endpoint()],
        &ConnectOptions {
            user: Some(("root".into(), "rootpw".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // AuthStatus is etcd 3.5's: 3.4 answers Unimplemented.
    match root.auth_status().await {
        Ok(st) => assert!(st.enabled),
        Err(e) => assert_eq!(e.code(), Some(tonic::Code::Unimplemented), "{e}"),
    }
    assert_eq!(root.user_get("app").await.unwrap().roles, ["cfg"]);
    root.auth_disable().await.unwrap();
}

#[tokio::test]
async fn lock_and_election_services() {
    let Some((_server, c)) = etcd(&[]).await else {
        return;
    };
    let l1 = c.lease_grant(30, 0).await.unwrap().id;
    let l2 = c.lease_grant(30, 0).await.unwrap().id;
    let k1 = c.lock("L", l1).await.unwrap().key;
    assert!(k1.starts_with(b"L/"));
    let c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.lock("L", l2).await.map(|r| r.key) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "second lock must wait");
    c.unlock(k1).await.unwrap();
    let k2 = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    c.unlock(k2).await.unwrap();

    let lead = c.campaign("E", l1, "a").await.unwrap().leader.unwrap();
    assert_eq!(c.leader("E").await.unwrap().kv.unwrap().value, b"a");
    c.proclaim(lead.clone(), "b").await.unwrap();
    use futures::StreamExt;
    let mut obs = c.observe("E").await.unwrap();
    assert_eq!(obs.next().await.unwrap().unwrap().kv.unwrap().value, b"b");
    c.resign(lead).await.unwrap();
}

#[tokio::test]
async fn concurrency_recipes() {
    let Some((_server, c)) = etcd(&[]).await else {
        return;
    };
    let s1 = Session::new(
        &c,
        SessionOptions {
            ttl: 5,
            lease: None,
        },
    )
    .await
    .unwrap();
    let s2 = Session::new(
        &c,
        SessionOptions {
            ttl: 5,
            lease: None,
        },
    )
    .await
    .unwrap();
    let mut m1 = Mutex::new(&s1, "/mx");
    m1.lock().await.unwrap();
    let holder = Arc::new(AtomicI64::new(1));
    {
        let mut m2 = Mutex::new(&s2, "/mx");
        let h = holder.clone();
        let second = async {
            m2.lock().await.unwrap();
            assert_eq!(
                h.load(Ordering::SeqCst),
                0,
                "m2 got the lock while m1 held it"
            );
            m2.unlock().await.unwrap();
        };
        let first = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            holder.store(0, Ordering::SeqCst);
            m1.unlock().await.unwrap();
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            futures::future::join(first, second),
        )
        .await
        .unwrap();
    }

    // Election: the first campaigner leads; the second takes over when it resigns.
    let mut e1 = Election::new(&s1, "/el");
    e1.campaign("one").await.unwrap();
    assert_eq!(e1.leader().await.unwrap().unwrap().value, b"one");
    e1.proclaim("uno").await.unwrap();
    let mut e2 = Election::new(&s2, "/el");
    let e2_done = async {
        e2.campaign("two").await.unwrap();
    };
    let resign = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        e1.resign().await.unwrap();
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join(resign, e2_done),
    )
    .await
    .unwrap();
    assert_eq!(e2.leader().await.unwrap().unwrap().value, b"two");

    // STM: concurrent transfers keep the total, under both isolation levels.
    for iso in [Isolation::Serializable, Isolation::RepeatableReads] {
        c.put("/acct/a", "100", &Default::default()).await.unwrap();
        c.put("/acct/b", "0", &Default::default()).await.unwrap();
        let opts = StmOptions {
            isolation: iso,
            max_attempts: 200,
        };
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                let opts = opts.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        run_stm(&c, &opts, |stm| async move {
                            let a: i64 = String::from_utf8(stm.get("/acct/a").await?.unwrap())
                                .unwrap()
                                .parse()
                                .unwrap();
                            let b: i64 = String::from_utf8(stm.get("/acct/b").await?.unwrap())
                                .unwrap()
                                .parse()
                                .unwrap();
                            stm.put("/acct/a", (a - 1).to_string());
                            stm.put("/acct/b", (b + 1).to_string());
                            Ok(())
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let a = c.get("/acct/a").await.unwrap().unwrap().value;
        let b = c.get("/acct/b").await.unwrap().unwrap().value;
        assert_eq!(
            (a.as_slice(), b.as_slice()),
            (&b"80"[..], &b"20"[..]),
            "{iso:?}"
        );
    }
    s2.close().await.unwrap();
    assert!(!s1.is_done());
    s1.close().await.unwrap();
}
