//! Election service behaviour, asserted identically against our ElectionService (over a
//! Routes forwarding to etcd 3.4) and against etcd 3.4's own Election service.

mod common;

use std::time::Duration;

use common::{client, eventually, serve_ours, status, Etcd};
use etcd_client::{GetOptions, LeaderKey, ObserveStream, ProclaimOptions, ResignOptions};
use tonic::Code;

const STEP: Duration = Duration::from_secs(10);

async fn next_value(obs: &mut ObserveStream) -> (Vec<u8>, i64) {
    let m = tokio::time::timeout(STEP, obs.message())
        .await
        .expect("observe delivers within the bound")
        .expect("observe stream ok")
        .expect("observe stream open");
    let kv = m.kv().expect("kv");
    let rev = m.header().expect("header").revision();
    (kv.value().to_vec(), rev)
}

async fn keys_under(etcd: &Etcd, pfx: &str) -> usize {
    let mut c = client(&etcd.url).await;
    c.get(pfx, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get")
        .kvs()
        .len()
}

async fn two_candidates(url: &str, name: &str) {
    let mut a = client(url).await;
    let la = a.lease_grant(30, None).await.expect("grant").id();
    let lb = a.lease_grant(30, None).await.expect("grant").id();

    // Observe before anyone leads: it reports the first leader when it appears.
    let mut observer = common::client_raw(url, etcd_client::ConnectOptions::new()).await;
    let name2 = name.to_string();
    let obs = tokio::spawn(async move { observer.observe(name2.as_str()).await });
    let no = a.leader(name).await.expect_err("no leader yet");
    let s = status(no);
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: no leader")
    );

    let won = a.campaign(name, "a", la).await.expect("campaign a");
    let leader_a: LeaderKey = won.leader().expect("leader key").clone();
    assert_eq!(leader_a.name(), name.as_bytes());
    assert_eq!(leader_a.key(), format!("{name}/{la:x}").as_bytes());
    assert_eq!(leader_a.lease(), la);
    assert_eq!(leader_a.rev(), won.header().expect("header").revision());
    let mut obs = tokio::time::timeout(STEP, obs)
        .await
        .expect("observe answers once there is a leader")
        .expect("join")
        .expect("observe");
    assert_eq!(next_value(&mut obs).await.0, b"a");

    let l = a.leader(name).await.expect("leader");
    assert_eq!(l.kv().expect("kv").value(), b"a");
    assert_eq!(l.kv().expect("kv").create_revision(), leader_a.rev());

    // b waits behind a.
    let url2 = url.to_string();
    let name2 = name.to_string();
    let b_campaign = tokio::spawn(async move {
        let mut b = client(&url2).await;
        b.campaign(name2.as_str(), "b", lb).await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!b_campaign.is_finished(), "b must wait while a leads");

    let p = a
        .proclaim(
            "a2",
            Some(ProclaimOptions::new().with_leader(leader_a.clone())),
        )
        .await
        .expect("proclaim");
    let p_rev = p.header().expect("header").revision();
    assert_eq!(next_value(&mut obs).await, (b"a2".to_vec(), p_rev));
    assert_eq!(
        a.leader(name)
            .await
            .expect("leader")
            .kv()
            .expect("kv")
            .value(),
        b"a2"
    );

    let r = a
        .resign(Some(ResignOptions::new().with_leader(leader_a.clone())))
        .await
        .expect("resign");
    assert!(r.header().expect("header").revision() > p_rev);
    let won_b = tokio::time::timeout(STEP, b_campaign)
        .await
        .expect("b wins after a resigns")
        .expect("join")
        .expect("campaign b");
    let leader_b = won_b.leader().expect("leader key").clone();
    assert_eq!(leader_b.key(), format!("{name}/{lb:x}").as_bytes());
    assert_eq!(next_value(&mut obs).await.0, b"b");

    // a is no longer the leader.
    let e = a
        .proclaim(
            "stale",
            Some(ProclaimOptions::new().with_leader(leader_a.clone())),
        )
        .await
        .expect_err("stale leader");
    let s = status(e);
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: not leader")
    );
    // Resigning a stale leadership is a no-op that succeeds.
    a.resign(Some(ResignOptions::new().with_leader(leader_a)))
        .await
        .expect("stale resign");
    assert_eq!(
        a.leader(name)
            .await
            .expect("leader")
            .kv()
            .expect("kv")
            .value(),
        b"b"
    );

    // Re-campaigning with the leader's own lease and a new value proclaims it.
    let again = a.campaign(name, "b2", lb).await.expect("re-campaign b");
    assert_eq!(again.leader().expect("leader").rev(), leader_b.rev());
    assert_eq!(next_value(&mut obs).await.0, b"b2");

    a.resign(Some(ResignOptions::new().with_leader(leader_b)))
        .await
        .expect("resign b");
    let s = status(a.leader(name).await.expect_err("no leader"));
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: no leader")
    );
}

async fn missing_leader_key(url: &str) {
    let mut a = client(url).await;
    let s = status(a.proclaim("x", None).await.expect_err("no leader key"));
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "\"leader\" field must be provided")
    );
    let s = status(a.resign(None).await.expect_err("no leader key"));
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "\"leader\" field must be provided")
    );
}

async fn lease_expiry_hands_over(url: &str, name: &str) {
    let mut a = client(url).await;
    let short = a.lease_grant(2, None).await.expect("grant").id();
    let long = a.lease_grant(30, None).await.expect("grant").id();
    let won = a.campaign(name, "short", short).await.expect("campaign");
    let won_b = tokio::time::timeout(Duration::from_secs(15), a.campaign(name, "long", long))
        .await
        .expect("expiry hands leadership over")
        .expect("campaign long");
    assert!(won_b.leader().expect("leader").rev() > won.leader().expect("leader").rev());
    // The expired leader can no longer proclaim.
    let s = status(
        a.proclaim(
            "x",
            Some(ProclaimOptions::new().with_leader(won.leader().expect("leader").clone())),
        )
        .await
        .expect_err("expired leader"),
    );
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unknown, "election: not leader")
    );
    a.lease_revoke(long).await.expect("revoke");
}

async fn abandoned_campaign_resigns(url: &str, etcd: &Etcd, name: &str) {
    let mut a = client(url).await;
    let la = a.lease_grant(30, None).await.expect("grant").id();
    let lb = a.lease_grant(30, None).await.expect("grant").id();
    a.campaign(name, "a", la).await.expect("campaign a");
    let (url2, name2) = (url.to_string(), name.to_string());
    let b_key = format!("{name}/{lb:x}");
    common::abandon_once_waiting(etcd, &b_key, None, async move {
        let mut b = client(&url2).await;
        let _ = b.campaign(name2.as_str(), "b", lb).await;
    })
    .await;
    let pfx = format!("{name}/");
    assert!(
        eventually(Duration::from_secs(5), || {
            let pfx = pfx.clone();
            async move { keys_under(etcd, &pfx).await == 1 }
        })
        .await,
        "the abandoned candidate's key is deleted"
    );
    a.lease_revoke(la).await.expect("revoke");
}

async fn run_all(url: &str, etcd: &Etcd, tag: &str) {
    two_candidates(url, &format!("{tag}/two")).await;
    missing_leader_key(url).await;
    abandoned_campaign_resigns(url, etcd, &format!("{tag}/abandon")).await;
    lease_expiry_hands_over(url, &format!("{tag}/expiry")).await;
    no_watch_left_behind(url, etcd, &format!("{tag}/gone")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_matches_etcd() {
    let etcd = Etcd::start();
    let ours = serve_ours(&etcd).await;
    run_all(&etcd.url, &etcd, "etcd").await;
    run_all(&ours.url, &etcd, "ours").await;
}

/// A client that goes away from Observe or a waiting Campaign leaves no watch behind.
async fn no_watch_left_behind(url: &str, etcd: &Etcd, name: &str) {
    let base = common::settled_watchers(etcd).await;
    let mut a = client(url).await;
    let la = a.lease_grant(30, None).await.expect("grant").id();
    let lb = a.lease_grant(30, None).await.expect("grant").id();
    a.campaign(name, "a", la).await.expect("campaign a");
    let mut obs = a.observe(name).await.expect("observe");
    assert_eq!(next_value(&mut obs).await.0, b"a");
    let (url2, name2) = (url.to_string(), name.to_string());
    let b = tokio::spawn(async move {
        let mut b = client(&url2).await;
        let _ = b.campaign(name2.as_str(), "b", lb).await;
    });
    assert!(
        eventually(Duration::from_secs(10), || async {
            common::watchers(etcd).await >= base + 2.0
        })
        .await,
        "the observer and the waiting candidate each watch ({url}): base {base}, now {}",
        common::watchers(etcd).await
    );
    assert!(!b.is_finished(), "b must still be waiting");
    b.abort();
    let _ = b.await;
    drop(obs);
    assert!(
        eventually(Duration::from_secs(5), || async {
            common::watchers(etcd).await <= base
        })
        .await,
        "watches of gone clients are cancelled"
    );
    a.lease_revoke(la).await.expect("revoke");
    a.lease_revoke(lb).await.expect("revoke");
}
