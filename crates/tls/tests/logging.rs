//! Exactly one log line per refused connection. Its own test binary: it installs the
//! global subscriber, which would also catch other tests' lines.

mod common;

use common::*;
use oxcd_tls::{TlsAcceptor, TlsConnector, TlsError, TlsInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn client_connect(
    info: &TlsInfo,
    addr: std::net::SocketAddr,
) -> Result<oxcd_tls::tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let c = TlsConnector::new(info)?;
    tokio::time::timeout(STEP, c.connect("127.0.0.1", addr.port()))
        .await
        .expect("client handshake hung")
}

async fn client_refused(info: &TlsInfo, addr: std::net::SocketAddr) {
    if let Ok(mut s) = client_connect(info, addr).await {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(STEP, s.read(&mut b))
            .await
            .expect("read hung");
        assert!(matches!(r, Err(_) | Ok(0)), "client was not refused: {r:?}");
    }
}

/// Collects the process's log output.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_log_line_per_failed_handshake() {
    let cap = Captured::default();
    let w = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(sub).unwrap();
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(true)).unwrap()).await;
    client_refused(&pki.client_info(None, 0), addr).await;
    assert!(next(&mut rx).await.is_err());
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\n").await.unwrap();
    assert!(next(&mut rx).await.is_err());
    let _ok = client_connect(&pki.client_info(Some("fine"), 13), addr)
        .await
        .unwrap();
    assert!(next(&mut rx).await.is_ok());
    let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("rejected connection"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines
        .iter()
        .all(|l| l.contains("WARN") && l.contains("remote_addr=127.0.0.1:")));
}
