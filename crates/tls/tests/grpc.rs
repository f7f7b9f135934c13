//! A tonic server on [`oxcd_tls::incoming`] answers a tonic client over mutual TLS, and the
//! handler reads the client certificate's CN from the request.

mod common;

use common::*;
use oxcd_api::v3lockpb::lock_client::LockClient;
use oxcd_api::v3lockpb::lock_server::{Lock, LockServer};
use oxcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use oxcd_tls::{
    incoming, peer_common_name, tonic_client_tls_config, TlsAcceptor, TlsConnectInfo, TlsConnector,
};
use tokio::net::TcpListener;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

/// Answers Lock with the caller's CN as the key.
struct WhoAmI;

#[tonic::async_trait]
impl Lock for WhoAmI {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let info = req
            .extensions()
            .get::<TlsConnectInfo>()
            .ok_or_else(|| Status::internal("no TLS connect info"))?;
        assert!(info.remote_addr.is_some());
        let cn = peer_common_name(&req).unwrap_or("<none>").to_string();
        Ok(Response::new(LockResponse {
            header: None,
            key: cn.into_bytes(),
        }))
    }

    async fn unlock(
        &self,
        _req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        Err(Status::unimplemented("unlock"))
    }
}

#[tokio::test]
async fn tonic_over_mtls_reports_cn() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inc = incoming(listener, TlsAcceptor::new(pki.server_info(true)).unwrap());
    assert_eq!(inc.local_addr(), Some(addr));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(LockServer::new(WhoAmI))
            .serve_with_incoming_shutdown(inc, async {
                let _ = stop_rx.await;
            }),
    );

    // Our connector (http:// URI: the connector does the TLS).
    let alice = pki.client_info(Some("alice"), 20);
    let ch = Endpoint::from_shared(format!("http://127.0.0.1:{}", addr.port()))
        .unwrap()
        .connect_with_connector(TlsConnector::new(&alice).unwrap())
        .await
        .unwrap();
    let resp = tokio::time::timeout(
        STEP,
        LockClient::new(ch).lock(LockRequest {
            name: b"x".to_vec(),
            lease: 0,
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.into_inner().key, b"alice");

    // tonic's own ClientTlsConfig (https:// URI), another CN.
    let bob = pki.client_info(Some("bob"), 21);
    let ch = Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tonic_client_tls_config(&bob).unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let resp = tokio::time::timeout(
        STEP,
        LockClient::new(ch).lock(LockRequest {
            name: b"x".to_vec(),
            lease: 0,
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.into_inner().key, b"bob");

    // A client without a certificate gets no answer.
    let anon = pki.client_info(None, 0);
    let r = async {
        let ch = Endpoint::from_shared(format!("http://127.0.0.1:{}", addr.port()))
            .unwrap()
            .connect_with_connector(TlsConnector::new(&anon).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        LockClient::new(ch)
            .lock(LockRequest {
                name: b"x".to_vec(),
                lease: 0,
            })
            .await
            .map_err(|e| e.to_string())
    };
    let r = tokio::time::timeout(STEP, r)
        .await
        .expect("anonymous client hung");
    assert!(r.is_err(), "anonymous client was served: {r:?}");

    let _ = stop_tx.send(());
    tokio::time::timeout(STEP, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn incoming_is_not_blocked_by_silent_clients_and_stops_when_dropped() {
    use futures::StreamExt;
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(pki.server_info(true))
        .unwrap()
        .with_handshake_timeout(std::time::Duration::from_secs(30));
    let mut inc = incoming(listener, acceptor);
    // Silent and plaintext clients first; they never reach the stream.
    let _silent: Vec<_> =
        futures::future::join_all((0..3).map(|_| tokio::net::TcpStream::connect(addr))).await;
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let c = TlsConnector::new(&pki.client_info(Some("eve"), 22)).unwrap();
    let _conn = c.connect("127.0.0.1", addr.port()).await.unwrap();
    let s = tokio::time::timeout(STEP, inc.next())
        .await
        .expect("good client held up")
        .unwrap()
        .unwrap();
    assert_eq!(s.info().common_name(), Some("eve"));
    drop(inc);
    // The listener closes once the stream is gone.
    let deadline = std::time::Instant::now() + STEP;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "listener still open");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
