//! oxcd-http driven over real loopback TCP: a fake KV/Lease/Watch/Maintenance behind the
//! gateway, a hyper HTTP client and a tonic client on the same port, raw sockets for bad
//! input. Shapes are checked against what etcd 3.4.23's gateway sent (etcd-3.4.23.json, and
//! live against /usr/bin/etcd in `live_etcd`).

mod fake;
mod gateway;
mod health;
mod live_etcd;
mod serving;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

pub use fake::Fake;

/// A served listener; dropping it shuts the server down.
pub struct Server {
    pub addr: SocketAddr,
    pub fake: Fake,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(oxcd_http::ServeConfig {
            header_read_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(scfg: oxcd_http::ServeConfig) -> Server {
        let fake = Fake::new();
        let routes = fake::routes(&fake);
        let cfg = oxcd_http::HttpConfig {
            server_version: "3.5.17".into(),
            cluster_version: "3.5.0".into(),
            max_request_bytes: 1024 * 1024,
            health_timeout: Duration::from_secs(1),
            max_concurrent_streams: None,
            enable_ui: true,
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
        let (stop, rx) = oneshot::channel::<()>();
        let http = oxcd_http::router(routes.clone(), cfg);
        let task = tokio::spawn(async move {
            oxcd_http::serve(incoming, routes, http, scfg, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            fake,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits (bounded) for `serve` to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returned")
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn post(url: &str, body: &str) -> Answer {
    request("POST", url, &[], body).await
}

/// A value's shape: the same object keys (recursively) and JSON types, values ignored.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::Null,
    }
}

pub fn fixture(name: &str) -> Value {
    let all: Value = serde_json::from_str(include_str!("etcd-3.4.23.json")).unwrap();
    all.get(name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .clone()
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
