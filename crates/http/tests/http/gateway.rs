//! The JSON gateway: shapes (base64, int64 strings, omitted defaults, proto field names),
//! errors, aliases, metadata, streams.

use std::time::Duration;

use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::{b64, fixture, post, request, shape, Server};

#[tokio::test]
async fn put_and_range_have_etcds_shapes() {
    let s = Server::start().await;
    let put = post(
        &s.url("/v3/kv/put"),
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("bar")),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.headers["content-type"], "application/json");
    assert_eq!(
        put.json(),
        fixture("put"),
        "the fake's ids are etcd's recorded ones"
    );

    let range = post(
        &s.url("/v3/kv/range"),
        &format!(r#"{{"key":"{}"}}"#, b64("foo")),
    )
    .await;
    assert_eq!(range.status, 200);
    // Exactly what etcd sent: int64 as strings, bytes as base64, `more`/`lease` omitted.
    assert_eq!(range.json(), fixture("range"));

    let missing = post(
        &s.url("/v3/kv/range"),
        &format!(r#"{{"key":"{}"}}"#, b64("none")),
    )
    .await;
    assert_eq!(
        missing.json(),
        fixture("range_missing"),
        "no kvs, no count when empty"
    );
}

#[tokio::test]
async fn txn_accepts_json_names_and_emits_oneof_fields() {
    let s = Server::start().await;
    post(
        &s.url("/v3/kv/put"),
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("bar")),
    )
    .await;
    // etcd's own docs use the JSON (lowerCamel) names in requests; proto names work too.
    let body = json!({
        "compare": [{"target": "CREATE", "key": b64("foo"), "createRevision": "2"}],
        "success": [{"requestPut": {"key": b64("foo"), "value": b64("baz")}}],
        "failure": [{"request_range": {"key": b64("foo")}}],
    });
    let txn = post(&s.url("/v3/kv/txn"), &body.to_string()).await;
    assert_eq!(txn.status, 200, "{}", txn.body);
    assert_eq!(txn.json(), fixture("txn"));
    // An unknown field is ignored, as by grpc-gateway.
    let r = post(
        &s.url("/v3/kv/range"),
        &format!(r#"{{"key":"{}","bad":1}}"#, b64("foo")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kvs"][0]["value"], b64("baz"));
    // Numbers are accepted for int64 fields as well as strings; enum names for enums.
    let r = post(
        &s.url("/v3/kv/range"),
        &format!(
            r#"{{"key":"{}","limit":5,"sort_order":"DESCEND"}}"#,
            b64("foo")
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn lease_routes_and_their_kv_aliases() {
    let s = Server::start().await;
    let g = post(&s.url("/v3/lease/grant"), r#"{"TTL":30}"#).await;
    assert_eq!(g.status, 200);
    assert_eq!(shape(&g.json()), shape(&fixture("lease_grant")));
    let id = g.json()["ID"].as_str().expect("ID is a string").to_string();

    let ttl = post(
        &s.url("/v3/kv/lease/timetolive"),
        &format!(r#"{{"ID":{id}}}"#),
    )
    .await;
    assert_eq!(
        shape(&ttl.json()),
        shape(&fixture("lease_timetolive")),
        "{}",
        ttl.body
    );
    let ttl2 = post(
        &s.url("/v3/lease/timetolive"),
        &format!(r#"{{"ID":"{id}"}}"#),
    )
    .await;
    assert_eq!(ttl.json(), ttl2.json());

    let ls = post(&s.url("/v3/kv/lease/leases"), "{}").await;
    assert_eq!(ls.json()["leases"], json!([{"ID": id}]));

    // Keep-alive: one request in the body, one `{"result":…}` line, then the stream ends.
    let ka = post(&s.url("/v3/lease/keepalive"), &format!(r#"{{"ID":{id}}}"#)).await;
    assert_eq!(ka.status, 200);
    let lines: Vec<Value> = ka
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", ka.body);
    assert_eq!(
        shape(&Value::Array(lines.clone())),
        shape(&fixture("lease_keepalive"))
    );
    assert_eq!(lines[0]["result"]["ID"], json!(id));

    let rv = post(
        &s.url("/v3/kv/lease/revoke"),
        &format!(r#"{{"ID":"{id}"}}"#),
    )
    .await;
    assert_eq!(rv.status, 200);
    let again = post(&s.url("/v3/lease/revoke"), &format!(r#"{{"ID":"{id}"}}"#)).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json(), fixture("error_lease_not_found")["body"]);
}

#[tokio::test]
async fn errors_carry_grpc_code_and_etcd_message() {
    let s = Server::start().await;
    let e = post(&s.url("/v3/kv/compaction"), r#"{"revision":"100"}"#).await;
    let want = fixture("error_future_revision");
    assert_eq!(e.status as u64, want["http_status"].as_u64().unwrap());
    assert_eq!(e.json(), want["body"]);
    assert_eq!(
        e.body.find("\"error\""),
        Some(1),
        "field order as etcd's: error first"
    );

    for (body, fixture_name) in [
        (r#"{"key":"Zm9v""#, "error_bad_json"),
        (r#"{"key":"!!!"}"#, "error_bad_base64"),
    ] {
        let e = post(&s.url("/v3/kv/range"), body).await;
        assert_eq!(e.status, 400, "{body}");
        // The decoder's wording differs from Go's; the shape and code do not.
        assert_eq!(shape(&e.json()), shape(&fixture(fixture_name)["body"]));
        assert_eq!(e.json()["code"], 3);
        assert_eq!(e.json()["error"], e.json()["message"]);
    }
    let e = post(&s.url("/v3/kv/range"), r#"{"sort_order":"BOGUS"}"#).await;
    assert_eq!((e.status, e.json()["code"].clone()), (400, json!(3)));

    // A service the server does not register answers gRPC's Unimplemented.
    let e = post(&s.url("/v3/auth/status"), "{}").await;
    assert_eq!(
        (e.status, e.json()["code"].clone()),
        (501, json!(12)),
        "{}",
        e.body
    );

    let e = post(&s.url("/v3/nope"), "{}").await;
    assert_eq!(e.status, 404);
    assert_eq!(
        e.json(),
        json!({"error": "Not Found", "message": "Not Found", "code": 5})
    );

    let e = request("GET", &s.url("/v3/kv/range"), &[], "").await;
    assert_eq!(e.status, 405);
    assert_eq!(e.json()["message"], "Method Not Allowed");
}

#[tokio::test]
async fn aliases_authorization_and_cors() {
    let s = Server::start().await;
    post(
        &s.url("/v3/kv/put"),
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("bar")),
    )
    .await;
    for p in ["/v3beta/kv/range", "/v3alpha/kv/range"] {
        let r = post(&s.url(p), &format!(r#"{{"key":"{}"}}"#, b64("foo"))).await;
        assert_eq!(r.json(), fixture("range"), "{p}");
    }
    let r = request(
        "POST",
        &s.url("/v3/kv/range"),
        &[("authorization", "tok.123")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(
        s.fake.state.lock().unwrap().last_token.as_deref(),
        Some("tok.123")
    );
    let r = request("POST", &s.url("/v3/kv/range"), &[], "").await;
    assert_eq!(r.status, 200, "an empty body is the default request");
    assert_eq!(s.fake.state.lock().unwrap().last_token, None);
    let r = request("OPTIONS", &s.url("/v3/kv/range"), &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "accept, content-type, authorization"
    );
}

#[tokio::test]
async fn maintenance_status_and_hash() {
    let s = Server::start().await;
    let st = post(&s.url("/v3/maintenance/status"), "{}").await;
    assert_eq!(shape(&st.json()), shape(&fixture("status")), "{}", st.body);
    let h = post(&s.url("/v3/maintenance/hash"), "{}").await;
    assert_eq!(
        shape(&h.json()),
        shape(&fixture("hash")),
        "uint32 is a JSON number"
    );
}

/// Reads one `\n`-terminated line of a streamed body, bounded in time.
async fn next_line(body: &mut hyper::body::Incoming, buf: &mut Vec<u8>) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            return serde_json::from_slice(&line).unwrap();
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("a line in time");
        let frame = frame.expect("stream still open").unwrap();
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
    }
}

#[tokio::test]
async fn watch_streams_results_line_by_line() {
    let s = Server::start().await;
    post(
        &s.url("/v3/kv/put"),
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("bar")),
    )
    .await;
    let req = http::Request::post(s.url("/v3/watch"))
        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
            r#"{{"create_request":{{"key":"{}"}}}}"#,
            b64("foo")
        ))))
        .unwrap();
    let resp = crate::client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut lines = vec![next_line(&mut body, &mut buf).await];
    post(
        &s.url("/v3/kv/put"),
        &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("foo"), b64("1")),
    )
    .await;
    lines.push(next_line(&mut body, &mut buf).await);
    post(
        &s.url("/v3/kv/deleterange"),
        &format!(r#"{{"key":"{}"}}"#, b64("foo")),
    )
    .await;
    lines.push(next_line(&mut body, &mut buf).await);
    let want = fixture("watch");
    assert_eq!(shape(&Value::Array(lines.clone())), shape(&want));
    assert_eq!(lines[1]["result"]["events"][0]["kv"]["value"], b64("1"));
    assert_eq!(
        lines[2]["result"]["events"][0]["type"], "DELETE",
        "PUT (the default) is omitted"
    );

    // The stream stays open after the body ended (etcd's watch outlives CloseSend)...
    assert!(
        tokio::time::timeout(Duration::from_millis(300), body.frame())
            .await
            .is_err()
    );
    // ...and a bad watch body is refused before any stream (etcd: 500, code Unknown).
    let e = post(&s.url("/v3/watch"), r#"{"create_request":{"key":"%%%"}}"#).await;
    assert_eq!((e.status, e.json()["code"].clone()), (500, json!(2)));
    // The client going away ends the in-process watch.
    assert_eq!(
        s.fake
            .open_watches
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    drop(body);
    let t = std::time::Instant::now();
    while s
        .fake
        .open_watches
        .load(std::sync::atomic::Ordering::SeqCst)
        != 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "watch task outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn many_concurrent_gateway_requests() {
    let s = Server::start().await;
    let url = s.url("/v3/kv/put");
    let reqs = (0..50).map(|i| {
        let url = url.clone();
        async move {
            post(
                &url,
                &format!(
                    r#"{{"key":"{}","value":"{}"}}"#,
                    b64(&format!("k{i}")),
                    b64("v")
                ),
            )
            .await
            .status
        }
    });
    let statuses: Vec<u16> = futures::stream::iter(reqs)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200));
    let r = post(
        &s.url("/v3/kv/range"),
        &format!(
            r#"{{"key":"{}","range_end":"AA==","count_only":true}}"#,
            b64("k")
        ),
    )
    .await;
    assert_eq!(r.json()["count"], "50");
}
