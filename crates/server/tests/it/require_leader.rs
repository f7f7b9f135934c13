//! Require-leader (gRPC metadata `hasleader: true`, clientv3's `WithRequireLeader`) on a
//! 3-member cluster that loses quorum: requests with the metadata fail at once with
//! `Unavailable` "etcdserver: no leader", a watch stream opened with it ends with that error
//! after about three election timeouts, and requests without it are untouched (a
//! serializable read still answers). Same assertions against etcd 3.4, which has it. The
//! gRPC health service (`grpc.health.v1`) says SERVING with a leader; without one oxcd says
//! NOT_SERVING (as its `/health`), etcd 3.4 keeps saying SERVING. `/metrics` (read with a
//! Prometheus parser) shows `etcd_server_has_leader` 1, then 0.

use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::watch_client::WatchClient;
use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest};
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::cluster_harness::*;

fn require_leader<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("hasleader", "true".parse().expect("ascii"));
    r
}

fn range(serializable: bool) -> RangeRequest {
    RangeRequest {
        key: b"k".to_vec(),
        serializable,
        ..Default::default()
    }
}

#[test]
fn requests_and_watches_fail_fast_without_a_leader() {
    let _g = serial();
    let mut c = Cluster::start("reqleader", Opts::new(3));
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, WAIT);
    let f = (leader + 1) % 3;
    let other = 3 - leader - f;
    let election = Duration::from_millis(c.opts.election_ms);
    let url = c.members[f].client_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ch = rt.block_on(async {
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .expect("connect to the follower")
    });
    let mut kv = KvClient::new(ch.clone());

    // With a leader, require-leader requests and watches work, and gRPC health serves.
    rt.block_on(kv.range(require_leader(range(false))))
        .expect("range with a leader");
    let mut health = HealthClient::new(ch.clone());
    let health_status = |health: &mut HealthClient<tonic::transport::Channel>| {
        rt.block_on(health.check(HealthCheckRequest {
            service: String::new(),
        }))
        .expect("grpc.health.v1 Check")
        .into_inner()
        .status
    };
    assert_eq!(health_status(&mut health), ServingStatus::Serving as i32);
    let metrics_url = format!("{}/metrics", c.members[f].client_url());
    let has_leader = || {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "5", &metrics_url])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        crate::common::prom::scrape_values(&text)
            .get("etcd_server_has_leader")
            .copied()
    };
    assert_eq!(has_leader(), Some(1.0));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut watch = rt.block_on(async {
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut w = WatchClient::new(ch.clone())
            .watch(require_leader(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
            .await
            .expect("watch with a leader")
            .into_inner();
        let created = tokio::time::timeout(Duration::from_secs(5), w.message())
            .await
            .expect("created in time")
            .unwrap()
            .expect("a created response");
        assert!(created.created && !created.canceled, "{created:?}");
        w
    });

    // Quorum lost: the follower alone has no leader once its election timeout passes.
    c.kill9(leader);
    c.kill9(other);
    let lost_at = Instant::now();
    let refused = poll(WAIT, || {
        let t0 = Instant::now();
        match rt.block_on(kv.range(require_leader(range(true)))) {
            Err(st) if st.code() == Code::Unavailable => Some((st, t0.elapsed())),
            _ => {
                std::thread::sleep(Duration::from_millis(100));
                None
            }
        }
    });
    let (st, took) = refused.expect("no require-leader refusal after quorum loss");
    assert_eq!(st.message(), "etcdserver: no leader");
    assert!(
        took < election,
        "the refusal took {took:?}: it must not wait for a leader"
    );
    let expected = if c.kind == Kind::Etcd {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    } as i32;
    let health_now = poll(WAIT, || {
        let st = health_status(&mut health);
        (st == expected).then_some(st)
    });
    assert_eq!(health_now, Some(expected), "grpc health without a leader");
    assert_eq!(
        poll(WAIT, || (has_leader() == Some(0.0)).then_some(())),
        Some(()),
        "etcd_server_has_leader did not drop to 0"
    );
    // Without the metadata a serializable read is still served by the member.
    rt.block_on(kv.range(range(true)))
        .expect("serializable range without require-leader");

    // The watch stream ends with "no leader" after about three election timeouts.
    let ended = rt.block_on(async {
        loop {
            match tokio::time::timeout(WAIT, watch.message()).await {
                Err(_) => break None,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => break Some(Err("ended without an error".to_string())),
                Ok(Err(st)) => break Some(Ok(st)),
            }
        }
    });
    let st = ended
        .expect("the require-leader watch stayed open without a leader")
        .expect("the watch ended without an error");
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    assert_eq!(st.message(), "etcdserver: no leader");
    let after = lost_at.elapsed();
    assert!(
        after >= 2 * election,
        "the watch ended {after:?} after the leader loss, before ~3 election timeouts"
    );
    drop(tx);
}
