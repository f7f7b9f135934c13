//! /health, /livez, /readyz, /version, /metrics.

use oxcd_api::etcdserverpb as pb;
use serde_json::json;

use crate::{fixture, request, Server};

async fn get(s: &Server, p: &str) -> crate::Answer {
    request("GET", &s.url(p), &[], "").await
}

fn alarm(s: &Server, a: pb::AlarmType) {
    s.fake.state.lock().unwrap().alarms.push(pb::AlarmMember {
        member_id: 1,
        alarm: a as i32,
    });
}

#[tokio::test]
async fn health_reports_leader_alarms_and_reads() {
    let s = Server::start().await;
    let h = get(&s, "/health").await;
    assert_eq!((h.status, h.json()), (200, fixture("health")));
    let h = get(&s, "/health?serializable=true").await;
    assert_eq!((h.status, h.json()), (200, json!({"health": "true"})));

    alarm(&s, pb::AlarmType::Nospace);
    let h = get(&s, "/health").await;
    assert_eq!(
        (h.status, h.json()),
        (503, json!({"health": "false", "reason": "ALARM NOSPACE"}))
    );
    let h = get(&s, "/health?exclude=NOSPACE").await;
    assert_eq!(h.status, 200, "{}", h.body);
    s.fake.state.lock().unwrap().alarms.clear();

    s.fake.state.lock().unwrap().leader = 0;
    let h = get(&s, "/health").await;
    assert_eq!(
        (h.status, h.json()),
        (503, json!({"health": "false", "reason": "RAFT NO LEADER"}))
    );
}

#[tokio::test]
async fn livez_and_readyz_as_etcd_3_6() {
    let s = Server::start().await;
    let r = get(&s, "/livez").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(&s, "/readyz?verbose").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
        )
    );
    let r = get(&s, "/readyz/linearizable_read").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(&s, "/readyz/nope").await;
    assert_eq!(r.status, 404);

    alarm(&s, pb::AlarmType::Corrupt);
    let r = get(&s, "/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.body
            .contains("[-]data_corruption failed: alarm activated: CORRUPT\n"),
        "{}",
        r.body
    );
    assert!(r.body.ends_with("readyz check failed\n"), "{}", r.body);
    let r = get(&s, "/readyz?exclude=data_corruption&verbose").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.starts_with("[+]data_corruption excluded: ok\n"),
        "{}",
        r.body
    );
    let r = get(&s, "/livez").await;
    assert_eq!(r.status, 200, "livez does not look at alarms");
}

#[tokio::test]
async fn version_and_metrics() {
    let s = Server::start().await;
    let v = get(&s, "/version").await;
    assert_eq!(
        v.json(),
        json!({"etcdserver": "3.5.17", "etcdcluster": "3.5.0"})
    );
    assert_eq!(crate::shape(&v.json()), crate::shape(&fixture("version")));

    let c = prometheus::IntCounter::new("oxcd_http_test_total", "a test counter").unwrap();
    prometheus::register(Box::new(c.clone())).unwrap();
    c.inc_by(3);
    let m = get(&s, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(
        m.body
            .contains("# TYPE oxcd_http_test_total counter\noxcd_http_test_total 3\n"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("process_resident_memory_bytes"),
        "process metrics exported"
    );
}
