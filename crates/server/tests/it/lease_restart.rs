//! Leases across restarts: records and key attachments survive a graceful restart and a
//! SIGKILL; after a restart the remaining TTL follows etcd's rules (full TTL, or the
//! checkpointed remaining TTL, plus the election timeout); expiry resumes. Runs against
//! oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`); every wait is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::{channel, TestServer};
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest,
    RangeRequest,
};
use tonic::transport::Channel;

struct Clients {
    lease: LeaseClient<Channel>,
    kv: KvClient<Channel>,
}

async fn clients(s: &TestServer) -> Clients {
    let ch = channel(s).await;
    Clients {
        lease: LeaseClient::new(ch.clone()),
        kv: KvClient::new(ch),
    }
}

impl Clients {
    async fn grant(&mut self, ttl: i64) -> i64 {
        self.lease
            .lease_grant(LeaseGrantRequest { id: 0, ttl })
            .await
            .unwrap()
            .into_inner()
            .id
    }

    async fn put(&mut self, key: &str, lease: i64) {
        self.kv
            .put(PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                lease,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn exists(&mut self, key: &str) -> bool {
        !self
            .kv
            .range(RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .kvs
            .is_empty()
    }

    async fn ttl(&mut self, id: i64) -> (i64, i64, BTreeSet<Vec<u8>>) {
        let r = self
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
            .await
            .unwrap()
            .into_inner();
        (r.ttl, r.granted_ttl, r.keys.into_iter().collect())
    }

    async fn leases(&mut self) -> BTreeSet<i64> {
        self.lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner()
            .leases
            .into_iter()
            .map(|l| l.id)
            .collect()
    }
}

fn keys(ks: &[&str]) -> BTreeSet<Vec<u8>> {
    ks.iter().map(|k| k.as_bytes().to_vec()).collect()
}

async fn leases_survive(kill: bool, args: &[&str]) {
    let mut s = TestServer::start_with(args);
    let mut c = clients(&s).await;
    let a = c.grant(60).await;
    let b = c.grant(30).await;
    c.put("k1", a).await;
    c.put("k2", a).await;
    c.put("k3", b).await;
    let revoked = c.grant(60).await;
    c.put("gone", revoked).await;
    c.lease
        .lease_revoke(LeaseRevokeRequest { id: revoked })
        .await
        .unwrap();
    if kill {
        s.kill9();
        s.spawn_and_wait();
    } else {
        // Close our connection first: a graceful stop waits for open client connections.
        drop(c);
        s.restart();
    }
    let mut c = clients(&s).await;
    assert_eq!(c.leases().await, [a, b].into_iter().collect());
    let (ttl, granted, ks) = c.ttl(a).await;
    assert_eq!((granted, ks), (60, keys(&["k1", "k2"])));
    // Full TTL again after a restart, plus the election timeout (1 s).
    assert!((55..=61).contains(&ttl), "ttl {ttl}");
    assert_eq!(c.ttl(b).await.2, keys(&["k3"]));
    assert!(!c.exists("gone").await);
    // Attachments were rebuilt: revoking deletes the keys.
    c.lease
        .lease_revoke(LeaseRevokeRequest { id: a })
        .await
        .unwrap();
    assert!(!c.exists("k1").await && !c.exists("k2").await);
    assert!(c.exists("k3").await);
}

#[tokio::test]
async fn leases_survive_graceful_restart() {
    leases_survive(false, &[]).await;
}

#[tokio::test]
async fn leases_survive_kill9() {
    leases_survive(true, &[]).await;
}

#[tokio::test]
async fn leases_survive_restart_with_checkpointing_enabled() {
    // etcd 3.4 crashes on this flag with its default capnslog logger; zap works.
    leases_survive(
        false,
        &["--logger=zap", "--experimental-enable-lease-checkpoint"],
    )
    .await;
}

#[tokio::test]
async fn expiry_resumes_after_restart() {
    let mut s = TestServer::start();
    let mut c = clients(&s).await;
    let id = c.grant(3).await;
    c.put("ephemeral", id).await;
    s.kill9();
    s.spawn_and_wait();
    let restarted = Instant::now();
    let mut c = clients(&s).await;
    assert!(c.exists("ephemeral").await, "not expired yet");
    let limit = Duration::from_secs(10);
    while c.exists("ephemeral").await {
        assert!(restarted.elapsed() < limit, "still there after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.ttl(id).await.0, -1);
}
