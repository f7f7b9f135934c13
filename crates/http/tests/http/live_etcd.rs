//! The same requests against Debian's etcd 3.4.23 (when /usr/bin/etcd exists) and against the
//! gateway: the answers must have the same shape and status.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{b64, post, shape, Server};

const ETCD: &str = "/usr/bin/etcd";

struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{c}");
    let peer = format!("http://127.0.0.1:{p}");
    let child = Command::new(ETCD)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--name",
            "default",
        ])
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let e = Etcd {
        child,
        url: client,
        _dir: dir,
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), async {
            crate::client()
                .get(format!("{}/health", e.url).parse().unwrap())
                .await
        })
        .await
        {
            if r.status() == 200 {
                return e;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not become healthy");
}

#[tokio::test]
async fn gateway_answers_have_etcds_shapes() {
    if !std::path::Path::new(ETCD).exists() {
        eprintln!("skipping: {ETCD} not installed");
        return;
    }
    let etcd = start_etcd().await;
    let s = Server::start().await;
    let (foo, bar) = (b64("foo"), b64("bar"));
    let steps: Vec<(&str, String)> = vec![
        ("/v3/kv/put", json!({"key": foo, "value": bar}).to_string()),
        ("/v3/kv/range", json!({"key": foo}).to_string()),
        ("/v3beta/kv/range", json!({"key": foo}).to_string()),
        ("/v3/kv/range", json!({"key": b64("none")}).to_string()),
        (
            "/v3/kv/range",
            json!({"key": foo, "count_only": true}).to_string(),
        ),
        (
            "/v3/kv/txn",
            json!({
                "compare": [{"target": "CREATE", "key": foo, "create_revision": "2"}],
                "success": [{"request_put": {"key": foo, "value": b64("baz")}}],
            })
            .to_string(),
        ),
        ("/v3/kv/compaction", json!({"revision": "1000"}).to_string()),
        ("/v3/kv/range", r#"{"key":"Zm9v""#.to_string()),
        ("/v3/kv/range", r#"{"key":"!!!"}"#.to_string()),
        ("/v3/lease/grant", json!({"TTL": 30}).to_string()),
        ("/v3/lease/revoke", json!({"ID": "12345"}).to_string()),
        ("/v3/maintenance/hash", "{}".to_string()),
    ];
    for (path, body) in steps {
        let want = post(&format!("{}{path}", etcd.url), &body).await;
        let got = post(&s.url(path), &body).await;
        assert_eq!(
            got.status, want.status,
            "{path} {body}: {} vs etcd's {}",
            got.body, want.body
        );
        assert_eq!(
            shape(&got.json()),
            shape(&want.json()),
            "{path} {body}: {} vs etcd's {}",
            got.body,
            want.body
        );
        if want.json().get("code").is_some() {
            assert_eq!(got.json()["code"], want.json()["code"], "{path}");
        }
    }
}
