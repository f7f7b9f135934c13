//! One listener, both protocols; bounded resources against bad clients; shutdown.

use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{b64, post, Server};

#[tokio::test]
async fn grpc_and_http_share_the_port() {
    let s = Server::start().await;
    let ch = tonic::transport::Endpoint::from_shared(s.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut kv = pb::kv_client::KvClient::new(ch);
    kv.put(pb::PutRequest {
        key: b"foo".to_vec(),
        value: b"from-grpc".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    // The same listener answers HTTP/1.1 JSON...
    let r = post(
        &s.url("/v3/kv/range"),
        &format!(r#"{{"key":"{}"}}"#, b64("foo")),
    )
    .await;
    assert_eq!(r.json()["kvs"][0]["value"], b64("from-grpc"));
    // ...and what the gateway wrote is what gRPC reads.
    post(
        &s.url("/v3/kv/put"),
        &format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            b64("foo"),
            b64("from-http")
        ),
    )
    .await;
    let got = kv
        .range(pb::RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.get_ref().kvs[0].value, b"from-http");
    // gRPC requests carry the connection's info, as under tonic's server.
    let remote = s.fake.state.lock().unwrap().last_remote;
    assert!(remote.is_some_and(|a| a.ip().is_loopback()), "{remote:?}");
    // A gRPC error keeps its code end to end.
    let e = kv
        .compact(pb::CompactionRequest {
            revision: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange);
    // HTTP/2 without gRPC's content type goes to the HTTP router (h2c JSON works too).
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = h2
        .request(
            http::Request::get(s.url("/version"))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}

async fn read_all(mut c: TcpStream, limit: Duration) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, c.read(&mut buf))
            .await
            .expect("server answered or closed in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

#[tokio::test]
async fn a_huge_body_is_refused_with_413() {
    let s = Server::start().await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    // Announce 100 MB, send 64 KiB of it: the limit is 1 MiB, the answer must not wait.
    let head = "POST /v3/kv/put HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n";
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request body too large"), "{answer}");
    // A streamed (chunked) body above the limit is cut off too.
    let big = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        b64("k"),
        "A".repeat(2 * 1024 * 1024)
    );
    let r = post(&s.url("/v3/kv/put"), &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], 8);
    // The server is fine afterwards.
    assert_eq!(post(&s.url("/v3/kv/range"), "{}").await.status, 200);
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    let s = Server::start().await; // header_read_timeout: 500 ms
                                   // Sends nothing at all.
    let c = TcpStream::connect(s.addr).await.unwrap();
    let (_, took) = read_all(c, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // Trickles a request line and never finishes the headers.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"POST /v3/kv/range HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (answer, took) = read_all(c, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(3),
        "closed after {took:?}: {answer}"
    );
    // Garbage instead of HTTP: an error answer or a close, never a hang.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"\x00\x01\x02 not http\r\n\r\n").await.unwrap();
    let (answer, _) = read_all(c, Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(post(&s.url("/v3/kv/range"), "{}").await.status, 200);
}

#[tokio::test]
async fn shutdown_closes_open_streams_after_the_grace_period() {
    let s = Server::start_with(oxcd_http::ServeConfig {
        shutdown_grace: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let req = http::Request::post(s.url("/v3/watch"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"create_request":{"key":"Zm9v"}}"#,
        )))
        .unwrap();
    let resp = crate::client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let addr = s.addr;
    let t = Instant::now();
    s.stop().await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    drop(resp);
}

#[tokio::test]
async fn http_only_listener_serves_the_metrics_routes() {
    let fake = crate::Fake::new();
    let routes = crate::fake::routes(&fake);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(l);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let router = oxcd_http::metrics_router(routes, oxcd_http::HttpConfig::default());
    let task = tokio::spawn(oxcd_http::serve_http(
        incoming,
        router,
        oxcd_http::ServeConfig::default(),
        async {
            let _ = rx.await;
        },
    ));
    let get = |p: &str| {
        let url = format!("http://{addr}{p}");
        async move { crate::request("GET", &url, &[], "").await }
    };
    assert_eq!(get("/metrics").await.status, 200);
    assert_eq!(get("/health").await.json()["health"], "true");
    assert_eq!(
        get("/version").await.json()["etcdserver"],
        oxcd_api::ETCD_API_VERSION
    );
    assert_eq!(
        post(&format!("http://{addr}/v3/kv/range"), "{}")
            .await
            .status,
        404,
        "no gateway"
    );
    // gRPC is not served here: the call fails instead of reaching the KV.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = pb::kv_client::KvClient::new(ch)
        .range(pb::RangeRequest::default())
        .await
        .unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
