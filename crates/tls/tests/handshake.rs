//! Server/client handshakes over loopback with certificates made by the tests: success,
//! every refusal etcd makes, plaintext and silent clients, CN reporting, suites, versions.

mod common;

use std::time::Duration;

use common::*;
use oxcd_tls::{TlsAcceptor, TlsConnector, TlsError, TlsInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn client_connect(
    info: &TlsInfo,
    addr: std::net::SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let c = TlsConnector::new(info)?;
    tokio::time::timeout(STEP, c.connect("127.0.0.1", addr.port()))
        .await
        .expect("client handshake hung")
}

/// With TLS 1.3 the client may finish before the server refuses its certificate; the
/// refusal then shows on the first read.
async fn client_refused(info: &TlsInfo, addr: std::net::SocketAddr) {
    if let Ok(mut s) = client_connect(info, addr).await {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(STEP, s.read(&mut b))
            .await
            .expect("read hung");
        assert!(matches!(r, Err(_) | Ok(0)), "client was not refused: {r:?}");
    }
}

#[tokio::test]
async fn mtls_handshake_ok_and_cn_reported() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(true)).unwrap()).await;
    let mut c = client_connect(&pki.client_info(Some("alice"), 2), addr)
        .await
        .unwrap();
    let mut s = next(&mut rx).await.unwrap();
    let peer = s.peer().expect("verified peer identity");
    assert_eq!(peer.common_name.as_deref(), Some("alice"));
    assert_eq!(
        peer.ip_addresses,
        vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(peer.serial_hex, "100242");
    assert_eq!(s.info().common_name(), Some("alice"));
    // The client offers h2 only.
    assert_eq!(s.alpn(), Some(&b"h2"[..]));
    c.write_all(b"ping").await.unwrap();
    c.flush().await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
}

#[tokio::test]
async fn server_only_tls_has_no_peer_identity() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(false)).unwrap()).await;
    let _c = client_connect(&pki.client_info(None, 0), addr)
        .await
        .unwrap();
    let s = next(&mut rx).await.unwrap();
    assert!(s.peer().is_none());
}

#[tokio::test]
async fn client_without_cert_refused_under_client_cert_auth() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(true)).unwrap()).await;
    client_refused(&pki.client_info(None, 0), addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(matches!(e, TlsError::Handshake { .. }), "{e}");
}

#[tokio::test]
async fn wrong_ca_refused_both_ways() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(true)).unwrap()).await;
    // A client certificate from another CA.
    let other = Ca::new("other CA");
    let l = other.leaf(spec("mallory", &["127.0.0.1"], 9));
    let (c, k) = write_leaf(pki.dir.path(), "mallory", &l);
    let info = TlsInfo {
        cert_file: c,
        key_file: k,
        trusted_ca_file: pki.ca_file.clone(),
        ..TlsInfo::default()
    };
    client_refused(&info, addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // A client that trusts another CA refuses the server.
    let other_ca = write(pki.dir.path(), "other-ca.crt", &other.pem);
    let info = TlsInfo {
        trusted_ca_file: other_ca,
        ..pki.client_info(Some("bob"), 3)
    };
    let e = client_connect(&info, addr).await.unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn expired_client_cert_refused() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(true)).unwrap()).await;
    let l = pki.ca.leaf(LeafSpec {
        expired: true,
        ..spec("old", &["127.0.0.1"], 4)
    });
    let (c, k) = write_leaf(pki.dir.path(), "old", &l);
    let info = TlsInfo {
        cert_file: c,
        key_file: k,
        ..pki.client_info(None, 0)
    };
    client_refused(&info, addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(e.to_string().contains("certificate expired"), "{e}");
}

#[tokio::test]
async fn revoked_client_cert_refused_by_crl() {
    let pki = Pki::new();
    let revoked = pki.ca.leaf(spec("revoked", &["127.0.0.1"], 5));
    let crl = pki.ca.crl(&[&revoked.serial]);
    let mut server = pki.server_info(true);
    server.crl_file = write(pki.dir.path(), "ca.crl", &crl);
    let (addr, mut rx) = serve(TlsAcceptor::new(server).unwrap()).await;

    let (c, k) = write_leaf(pki.dir.path(), "revoked", &revoked);
    let info = TlsInfo {
        cert_file: c,
        key_file: k,
        ..pki.client_info(None, 0)
    };
    client_refused(&info, addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(e.to_string().contains("Revoked"), "{e}");

    // A certificate the CRL does not list still gets in.
    let _c = client_connect(&pki.client_info(Some("carol"), 6), addr)
        .await
        .unwrap();
    let s = next(&mut rx).await.unwrap();
    assert_eq!(s.peer().unwrap().common_name.as_deref(), Some("carol"));
}

#[tokio::test]
async fn plaintext_on_tls_port_errors_without_hanging() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(false)).unwrap()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut answer))
        .await
        .expect("plaintext client hung")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.0 400 Bad Request"));
    assert!(matches!(
        next(&mut rx).await.unwrap_err(),
        TlsError::Plaintext { .. }
    ));

    // Binary garbage: closed, also an error.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x00, 0x01, 0x02, 0x03]).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(STEP, tcp.read_to_end(&mut buf))
        .await
        .expect("garbage client hung")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(matches!(
        next(&mut rx).await.unwrap_err(),
        TlsError::Plaintext { .. }
    ));
}

#[tokio::test]
async fn silent_client_dropped_after_handshake_timeout() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.server_info(false))
        .unwrap()
        .with_handshake_timeout(Duration::from_millis(300));
    let (addr, mut rx) = serve(acceptor).await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A second, good client is not held up by the silent one.
    let _good = client_connect(&pki.client_info(None, 0), addr)
        .await
        .unwrap();
    assert!(next(&mut rx).await.is_ok());
    let e = next(&mut rx).await.unwrap_err();
    assert!(matches!(e, TlsError::HandshakeTimeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(STEP, silent.read(&mut b))
        .await
        .expect("not dropped");
    assert!(matches!(r, Ok(0) | Err(_)));
}

#[tokio::test]
async fn allowed_cn_refuses_other_cn() {
    let pki = Pki::new();
    let server = TlsInfo {
        allowed_cn: vec!["peer-1".into()],
        ..pki.server_info(true)
    };
    let (addr, mut rx) = serve(TlsAcceptor::new(server).unwrap()).await;
    client_refused(&pki.client_info(Some("peer-2"), 7), addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("client certificate authentication failed"),
        "{e}"
    );
    let _c = client_connect(&pki.client_info(Some("peer-1"), 8), addr)
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx)
            .await
            .unwrap()
            .peer()
            .unwrap()
            .common_name
            .as_deref(),
        Some("peer-1")
    );
}

#[tokio::test]
async fn allowed_hostname_checks_sans() {
    let pki = Pki::new();
    let server = TlsInfo {
        allowed_hostname: vec!["etcd-1.example".into()],
        ..pki.server_info(true)
    };
    let (addr, mut rx) = serve(TlsAcceptor::new(server).unwrap()).await;
    // SAN 127.0.0.1 only: refused.
    client_refused(&pki.client_info(Some("x"), 10), addr).await;
    assert!(next(&mut rx).await.is_err());
    let l = pki.ca.leaf(spec("y", &["etcd-1.example"], 11));
    let (c, k) = write_leaf(pki.dir.path(), "y", &l);
    let info = TlsInfo {
        cert_file: c,
        key_file: k,
        ..pki.client_info(None, 0)
    };
    let _c = client_connect(&info, addr).await.unwrap();
    assert!(next(&mut rx).await.is_ok());
}

#[tokio::test]
async fn peer_san_check_refuses_certificate_for_another_address() {
    let pki = Pki::new();
    let l = pki.ca.leaf(spec("peer", &["10.9.9.9"], 12));
    let (c, k) = write_leaf(pki.dir.path(), "peer", &l);
    let client = TlsInfo {
        cert_file: c,
        key_file: k,
        ..pki.client_info(None, 0)
    };
    let acceptor = TlsAcceptor::new(pki.server_info(true))
        .unwrap()
        .with_peer_san_check(true)
        .with_name("peer");
    let (addr, mut rx) = serve(acceptor).await;
    let _c = client_connect(&client, addr).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(e.to_string().contains("not 127.0.0.1"), "{e}");
    // etcd's --experimental-peer-skip-client-san-verification.
    let server = TlsInfo {
        skip_client_san_verify: true,
        ..pki.server_info(true)
    };
    let acceptor = TlsAcceptor::new(server).unwrap().with_peer_san_check(true);
    let (addr, mut rx) = serve(acceptor).await;
    let _c = client_connect(&client, addr).await.unwrap();
    assert!(next(&mut rx).await.is_ok());
}

#[tokio::test]
async fn cipher_suite_and_version_restrictions() {
    let pki = Pki::new();
    let server = TlsInfo {
        cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()],
        max_version: "TLS1.2".into(),
        ..pki.server_info(false)
    };
    let (addr, mut rx) = serve(TlsAcceptor::new(server).unwrap()).await;
    let c = client_connect(&pki.client_info(None, 0), addr)
        .await
        .unwrap();
    let s = next(&mut rx).await.unwrap();
    assert_eq!(
        s.protocol_version(),
        Some(oxcd_tls::rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        s.cipher_suite(),
        Some(oxcd_tls::rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
    assert_eq!(
        c.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
        oxcd_tls::rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );
    // A TLS1.3-only client cannot talk to a TLS1.2-only server.
    let client = TlsInfo {
        min_version: "TLS1.3".into(),
        ..pki.client_info(None, 0)
    };
    assert!(client_connect(&client, addr).await.is_err());
    assert!(next(&mut rx).await.is_err());
    // A client offering only other TLS1.2 suites is refused.
    let client = TlsInfo {
        cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()],
        max_version: "TLS1.2".into(),
        ..pki.client_info(None, 0)
    };
    assert!(client_connect(&client, addr).await.is_err());
    assert!(next(&mut rx).await.is_err());
}

#[tokio::test]
async fn default_negotiates_tls13() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(false)).unwrap()).await;
    let _c = client_connect(&pki.client_info(None, 0), addr)
        .await
        .unwrap();
    let s = next(&mut rx).await.unwrap();
    assert_eq!(
        s.protocol_version(),
        Some(oxcd_tls::rustls::ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_unknown_server() {
    let pki = Pki::new();
    let (addr, mut rx) = serve(TlsAcceptor::new(pki.server_info(false)).unwrap()).await;
    let other = Ca::new("unrelated");
    let other_ca = write(pki.dir.path(), "unrelated.crt", &other.pem);
    let strict = TlsInfo {
        trusted_ca_file: other_ca.clone(),
        ..TlsInfo::default()
    };
    assert!(client_connect(&strict, addr).await.is_err());
    assert!(next(&mut rx).await.is_err());
    let insecure = TlsInfo {
        insecure_skip_verify: true,
        ..strict
    };
    client_connect(&insecure, addr).await.unwrap();
    assert!(next(&mut rx).await.is_ok());
}
