//! Interop with Go's TLS, the reference: Debian's etcdctl (Go client) against a tonic server
//! on our acceptor, and our client config against a real etcd with `--client-cert-auth`.
//! Each test is skipped (passes with a note) when the binary is not installed.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use oxcd_api::etcdserverpb::kv_server::{Kv, KvServer};
use oxcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusRequest, TxnRequest,
    TxnResponse,
};
use oxcd_tls::{incoming, peer_common_name, TlsAcceptor, TlsConnector, TlsInfo};
use tokio::net::TcpListener;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Range answers empty and records the caller's CN; the rest is unimplemented.
struct RecordingKv(Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl Kv for RecordingKv {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let cn = peer_common_name(&req).unwrap_or("").to_string();
        self.0.lock().unwrap().push(cn);
        Ok(Response::new(RangeResponse {
            header: Some(ResponseHeader::default()),
            ..RangeResponse::default()
        }))
    }
    type RangeStreamStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<oxcd_api::etcdserverpb::RangeStreamResponse, Status>>
                + Send,
        >,
    >;
    async fn range_stream(
        &self,
        _: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("range_stream"))
    }
    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Err(Status::unimplemented("put"))
    }
    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("delete"))
    }
    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("txn"))
    }
    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("compact"))
    }
}

async fn etcdctl(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn etcdctl_over_mtls_to_our_acceptor() {
    if !Path::new(ETCDCTL).exists() {
        eprintln!("skipped: {ETCDCTL} not installed");
        return;
    }
    let pki = Pki::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inc = incoming(listener, TlsAcceptor::new(pki.server_info(true)).unwrap());
    tokio::spawn(
        Server::builder()
            .add_service(KvServer::new(RecordingKv(seen.clone())))
            .serve_with_incoming(inc),
    );
    let user = pki.client_info(Some("etcdctl-user"), 50);
    let base = |with_cert: bool| {
        let mut a = vec![
            format!("--endpoints=https://127.0.0.1:{port}"),
            format!("--cacert={}", pki.ca_file),
            "--dial-timeout=5s".to_string(),
            "--command-timeout=5s".to_string(),
        ];
        if with_cert {
            a.push(format!("--cert={}", user.cert_file));
            a.push(format!("--key={}", user.key_file));
        }
        a.push("get".into());
        a.push("foo".into());
        a
    };
    let out = etcdctl(base(true)).await;
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(*seen.lock().unwrap(), vec!["etcdctl-user".to_string()]);
    // Without a client certificate Go's client is refused.
    let out = etcdctl(base(false)).await;
    assert!(!out.status.success());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// Kills the etcd we started when the test ends, however it ends.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn our_client_over_mtls_to_real_etcd() {
    if !Path::new(ETCD).exists() {
        eprintln!("skipped: {ETCD} not installed");
        return;
    }
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let (cport, pport) = (free_port(), free_port());
    let curl = format!("https://127.0.0.1:{cport}");
    let log = std::fs::File::create(data.path().join("etcd.log")).unwrap();
    let _etcd = Etcd(
        Command::new(ETCD)
            .args([
                "--name=tls-interop".to_string(),
                format!("--data-dir={}", data.path().join("d").display()),
                format!("--listen-client-urls={curl}"),
                format!("--advertise-client-urls={curl}"),
                format!("--listen-peer-urls=http://127.0.0.1:{pport}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{pport}"),
                format!("--initial-cluster=tls-interop=http://127.0.0.1:{pport}"),
                format!("--cert-file={}", pki.server_cert),
                format!("--key-file={}", pki.server_key),
                format!("--trusted-ca-file={}", pki.ca_file),
                "--client-cert-auth".to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let user = pki.client_info(Some("root"), 60);
    let connector = TlsConnector::new(&user)
        .unwrap()
        .with_connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let attempt = async {
            let ch = Endpoint::from_shared(format!("http://127.0.0.1:{cport}"))
                .unwrap()
                .connect_with_connector(connector.clone())
                .await
                .map_err(|e| e.to_string())?;
            MaintenanceClient::new(ch)
                .status(StatusRequest {})
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(STEP, attempt).await {
            Ok(Ok(r)) => break r.into_inner(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "etcd did not answer over mTLS: {other:?}; log: {}",
                    std::fs::read_to_string(data.path().join("etcd.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(status.version.starts_with("3."), "{}", status.version);

    // Without a client certificate, etcd refuses us (the call fails, it does not hang).
    let anon = TlsInfo {
        trusted_ca_file: pki.ca_file.clone(),
        ..TlsInfo::default()
    };
    let r = tokio::time::timeout(STEP, async {
        let ch = Endpoint::from_shared(format!("http://127.0.0.1:{cport}"))
            .unwrap()
            .connect_with_connector(TlsConnector::new(&anon).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        MaintenanceClient::new(ch)
            .status(StatusRequest {})
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .expect("anonymous call hung");
    assert!(r.is_err(), "etcd served a client without certificate");
}
