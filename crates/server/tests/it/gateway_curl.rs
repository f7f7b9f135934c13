//! The HTTP side of the client port, driven with `curl` (the seed documents' "read and
//! write values using standard HTTP tools"): the JSON gateway (`/v3/kv/*`, `/v3/lease/*`,
//! `/v3/watch` streamed), `/health`, `/version` and `/metrics`. The same assertions run
//! against oxcd and against Debian's etcd 3.4.23 (`OXCD_TEST_SERVER=etcd`).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::TestServer;

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .expect("valid base64");
    String::from_utf8(bytes).expect("utf-8")
}

/// `curl -s` with a bounded time; (HTTP status, body).
fn curl(args: &[&str], max_secs: u32) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", &max_secs.to_string(), "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let url = format!("{}{path}", s.client_url());
    let (code, text) = curl(&["-X", "POST", &url, "-d", &body.to_string()], 10);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"));
    (code, v)
}

#[test]
fn kv_lease_and_txn_through_the_gateway() {
    let s = TestServer::start();
    let (code, put) = post(
        &s,
        "/v3/kv/put",
        &json!({"key": b64("/config/myapp/rate_limit"), "value": b64("200")}),
    );
    assert_eq!(code, 200, "{put}");
    let rev: i64 = put["header"]["revision"]
        .as_str()
        .expect("int64 as a string")
        .parse()
        .unwrap();
    assert!(rev >= 2, "{put}");

    let (code, got) = post(
        &s,
        "/v3/kv/range",
        &json!({"key": b64("/config/myapp/rate_limit")}),
    );
    assert_eq!(code, 200);
    assert_eq!(got["count"], "1", "{got}");
    assert_eq!(unb64(&got["kvs"][0]["value"]), "200");
    assert_eq!(got["kvs"][0]["mod_revision"], rev.to_string());
    assert!(
        got["kvs"][0].get("lease").is_none(),
        "defaults are omitted: {got}"
    );

    // Prefix listing, as the seed's get_prefix.
    post(
        &s,
        "/v3/kv/put",
        &json!({"key": b64("/config/myapp/db"), "value": b64("pg")}),
    );
    let (_, list) = post(
        &s,
        "/v3/kv/range",
        &json!({"key": b64("/config/myapp/"), "range_end": b64("/config/myapp0")}),
    );
    assert_eq!(list["count"], "2", "{list}");

    // Compare-and-swap: the value is 200, so the success branch runs.
    let (code, txn) = post(
        &s,
        "/v3/kv/txn",
        &json!({
            "compare": [{"key": b64("/config/myapp/rate_limit"), "result": "EQUAL",
                         "target": "VALUE", "value": b64("200")}],
            "success": [{"request_put": {"key": b64("/config/myapp/rate_limit"),
                                          "value": b64("300")}}],
        }),
    );
    assert_eq!(code, 200);
    assert_eq!(txn["succeeded"], true, "{txn}");

    // A lease and a key attached to it; revoking deletes the key.
    let (code, lease) = post(&s, "/v3/lease/grant", &json!({"TTL": "60"}));
    assert_eq!(code, 200, "{lease}");
    let id = lease["ID"]
        .as_str()
        .expect("lease id as a string")
        .to_string();
    assert_eq!(lease["TTL"], "60");
    post(
        &s,
        "/v3/kv/put",
        &json!({"key": b64("/services/a"), "value": b64("10.0.0.1"), "lease": id}),
    );
    let (_, ttl) = post(&s, "/v3/lease/timetolive", &json!({"ID": id, "keys": true}));
    assert_eq!(unb64(&ttl["keys"][0]), "/services/a", "{ttl}");
    let (code, _) = post(&s, "/v3/lease/revoke", &json!({"ID": id}));
    assert_eq!(code, 200);
    let (_, gone) = post(&s, "/v3/kv/range", &json!({"key": b64("/services/a")}));
    assert!(
        gone.get("kvs").is_none(),
        "revoked lease's key is gone: {gone}"
    );

    let (code, del) = post(
        &s,
        "/v3/kv/deleterange",
        &json!({"key": b64("/config/myapp/db"), "prev_kv": true}),
    );
    assert_eq!(code, 200);
    assert_eq!(del["deleted"], "1");
    assert_eq!(unb64(&del["prev_kvs"][0]["value"]), "pg");
}

#[test]
fn errors_carry_etcds_code_and_message() {
    let s = TestServer::start();
    // A range at a future revision: OutOfRange (11), etcd's string, HTTP 400.
    let (code, e) = post(
        &s,
        "/v3/kv/range",
        &json!({"key": b64("k"), "revision": "99"}),
    );
    assert_eq!(code, 400, "{e}");
    assert_eq!(e["code"], 11, "{e}");
    assert_eq!(
        e["error"],
        "etcdserver: mvcc: required revision is a future revision"
    );
    // A put without a key: InvalidArgument (3).
    let (code, e) = post(&s, "/v3/kv/put", &json!({"value": b64("v")}));
    assert_eq!(code, 400, "{e}");
    assert_eq!(e["code"], 3);
    assert_eq!(e["error"], "etcdserver: key is not provided");
    // Not JSON at all: a 4xx, the server keeps serving.
    let url = format!("{}/v3/kv/put", s.client_url());
    let (code, _) = curl(&["-X", "POST", &url, "-d", "{not json"], 10);
    assert!((400..500).contains(&code), "status {code}");
    let (code, _) = post(&s, "/v3/kv/range", &json!({"key": b64("k")}));
    assert_eq!(code, 200);
}

#[test]
fn watch_streams_events_as_json_lines() {
    let s = TestServer::start();
    let url = format!("{}/v3/watch", s.client_url());
    let body = json!({"create_request": {"key": b64("/cwm/"), "range_end": b64("/cwm0")}});
    let child = Command::new("curl")
        .args([
            "-s",
            "-N",
            "-m",
            "8",
            "-X",
            "POST",
            &url,
            "-d",
            &body.to_string(),
        ])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("curl runs");
    // Give the watch time to be created, then write under the prefix.
    std::thread::sleep(Duration::from_millis(1500));
    let (code, _) = post(
        &s,
        "/v3/kv/put",
        &json!({"key": b64("/cwm/production/webhooks/github"), "value": b64("{}")}),
    );
    assert_eq!(code, 200);
    let out = child
        .wait_with_output()
        .expect("curl ends at its time limit");
    let text = String::from_utf8_lossy(&out.stdout);
    let msgs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(msgs.len() >= 2, "created + event: {text}");
    assert_eq!(msgs[0]["result"]["created"], true, "{text}");
    let ev = msgs
        .iter()
        .find_map(|m| {
            m["result"]["events"]
                .as_array()
                .and_then(|e| e.first())
                .cloned()
        })
        .unwrap_or_else(|| panic!("no event in {text}"));
    assert_eq!(unb64(&ev["kv"]["key"]), "/cwm/production/webhooks/github");
    assert!(
        ev.get("type").is_none(),
        "PUT is the default, omitted: {ev}"
    );
}

#[test]
fn health_version_and_metrics() {
    let s = TestServer::start();
    let (code, h) = curl(&[&format!("{}/health", s.client_url())], 10);
    assert_eq!(code, 200, "{h}");
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["health"], "true");

    let (code, v) = curl(&[&format!("{}/version", s.client_url())], 10);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&v).unwrap();
    assert!(
        v["etcdserver"]
            .as_str()
            .is_some_and(|x| x.starts_with("3.")),
        "{v}"
    );
    assert!(
        v["etcdcluster"]
            .as_str()
            .is_some_and(|x| x.starts_with("3.")),
        "{v}"
    );

    let scrape = || {
        let (code, text) = curl(&[&format!("{}/metrics", s.client_url())], 10);
        assert_eq!(code, 200);
        crate::common::prom::scrape_values(&text)
    };
    let before = scrape();
    assert_eq!(
        before.get("etcd_server_has_leader"),
        Some(&1.0),
        "{before:?}"
    );
    for i in 0..5 {
        post(
            &s,
            "/v3/kv/put",
            &json!({"key": b64(&format!("m{i}")), "value": b64("v")}),
        );
    }
    let after = scrape();
    let applied = |m: &std::collections::HashMap<String, f64>| {
        *m.get("etcd_server_proposals_applied_total")
            .expect("etcd_server_proposals_applied_total")
    };
    assert!(
        applied(&after) >= applied(&before) + 5.0,
        "{before:?} -> {after:?}"
    );
    assert!(after.contains_key("etcd_mvcc_db_total_size_in_bytes"));
    // Per-op counters and the disk latency histograms move with the writes.
    let get = |m: &std::collections::HashMap<String, f64>, k: &str| {
        *m.get(k).unwrap_or_else(|| panic!("{k} missing: {m:?}"))
    };
    // The backend commits on its batch interval (etcd: 100 ms), not with each put: scrape
    // again, bounded, until the commit after the puts shows.
    let mut after = after;
    for _ in 0..30 {
        let key = "etcd_disk_backend_commit_duration_seconds_count";
        if get(&after, key) >= get(&before, key) + 1.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = scrape();
    }
    for (metric, at_least) in [
        ("etcd_mvcc_put_total", 5.0),
        ("etcd_disk_wal_fsync_duration_seconds_count", 5.0),
        ("etcd_disk_backend_commit_duration_seconds_count", 1.0),
    ] {
        assert!(
            get(&after, metric) >= get(&before, metric) + at_least,
            "{metric}: {} -> {}",
            get(&before, metric),
            get(&after, metric)
        );
    }
    assert!(get(&after, "etcd_debugging_mvcc_keys_total") >= 5.0);
}

/// `--metrics extensive` adds gRPC handling-time histograms (go-grpc-prometheus's
/// `grpc_server_handling_seconds`), as etcd's.
#[test]
fn extensive_metrics_export_grpc_handling_histograms() {
    let s = TestServer::start_with(&["--metrics", "extensive"]);
    s.etcdctl(&["put", "k", "v"]).ok();
    s.etcdctl(&["get", "k"]).ok();
    let (code, text) = curl(&[&format!("{}/metrics", s.client_url())], 10);
    assert_eq!(code, 200);
    let m = crate::common::prom::scrape_values(&text);
    let n = m
        .get("grpc_server_handling_seconds_count")
        .copied()
        .unwrap_or(0.0);
    assert!(n >= 2.0, "grpc_server_handling_seconds_count = {n}");
}
