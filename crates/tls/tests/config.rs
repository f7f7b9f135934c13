//! Flag validation (etcd's error strings), auto-TLS, and certificate rotation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oxcd_tls::clock::ManualClock;
use oxcd_tls::{
    auto_tls, client_config, self_cert, server_config, AutoTlsKind, ServerTls, TlsAcceptor,
    TlsConnector, TlsError, TlsInfo,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn err(info: &TlsInfo) -> String {
    info.validate().unwrap_err().to_string()
}

#[test]
fn validation_errors_are_etcds() {
    let bad_suite = TlsInfo {
        cipher_suites: vec![
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            "not_found".into(),
        ],
        ..TlsInfo::default()
    };
    assert_eq!(
        err(&bad_suite),
        r#"unexpected TLS cipher suite "not_found""#
    );
    let bad_version = TlsInfo {
        min_version: "TLS1.1".into(),
        ..TlsInfo::default()
    };
    assert_eq!(
        err(&bad_version),
        r#"unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#
    );
    let inverted = TlsInfo {
        min_version: "TLS1.3".into(),
        max_version: "TLS1.2".into(),
        ..TlsInfo::default()
    };
    assert_eq!(
        err(&inverted),
        "min version (TLS1.3) is greater than max version (TLS1.2)"
    );
    let tls13_suites = TlsInfo {
        min_version: "TLS1.3".into(),
        cipher_suites: vec!["TLS_AES_128_GCM_SHA256".into()],
        ..TlsInfo::default()
    };
    assert_eq!(
        err(&tls13_suites),
        "cipher suites cannot be configured when only TLS1.3 is enabled"
    );
    let both = TlsInfo {
        allowed_cn: vec!["a".into()],
        allowed_hostname: vec!["b".into()],
        ..TlsInfo::default()
    };
    assert_eq!(
        err(&both),
        r#"AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")"#
    );
    // Go names of suites rustls lacks are skipped, not fatal, when others remain.
    let mixed = TlsInfo {
        cipher_suites: vec![
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        ],
        ..TlsInfo::default()
    };
    mixed.validate().unwrap();
    assert!(TlsInfo::default().validate().is_ok());
}

#[test]
fn server_needs_cert_and_key_and_readable_files() {
    let e = server_config(&TlsInfo {
        cert_file: "/x.crt".into(),
        ..TlsInfo::default()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "KeyFile and CertFile must both be present[key: , cert: /x.crt]"
    );
    let e = server_config(&TlsInfo {
        cert_file: "/nonexistent/x.crt".into(),
        key_file: "/nonexistent/x.key".into(),
        ..TlsInfo::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().starts_with("open /nonexistent/x.crt: "),
        "{e}"
    );
    let pki = Pki::new();
    // A key that does not belong to the certificate.
    let other = pki.ca.leaf(spec("other", &["127.0.0.1"], 30));
    let (_, other_key) = write_leaf(pki.dir.path(), "other", &other);
    let e = server_config(&TlsInfo {
        key_file: other_key,
        ..pki.server_info(false)
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("private key does not match public key"),
        "{e}"
    );
    // A certificate file with no PEM in it.
    let junk = write(pki.dir.path(), "junk.crt", "hello");
    let e = server_config(&TlsInfo {
        cert_file: junk,
        ..pki.server_info(false)
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("failed to find any PEM data in certificate input"),
        "{e}"
    );
    // Allowed CN without verified client certificates would check nothing.
    let e = server_config(&TlsInfo {
        allowed_cn: vec!["a".into()],
        ..pki.server_info(false)
    })
    .unwrap_err();
    assert!(matches!(e, TlsError::Config(_)));
}

#[tokio::test]
async fn auto_tls_generates_once_and_serves() {
    let data = tempfile::tempdir().unwrap();
    let hosts = vec!["127.0.0.1:2379".to_string(), "localhost:2379".to_string()];
    let info = auto_tls(
        &TlsInfo::default(),
        data.path(),
        AutoTlsKind::Client,
        &hosts,
        1,
    )
    .unwrap();
    assert!(info.self_cert);
    let dir = data.path().join("fixtures").join("client");
    assert_eq!(info.cert_file, dir.join("cert.pem").display().to_string());
    let first = std::fs::read(&info.cert_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&info.key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Reused when present.
    let again = self_cert(&dir, &hosts, 1).unwrap();
    assert_eq!(std::fs::read(&again.cert_file).unwrap(), first);
    // The certificate names the hosts and has no CN.
    let certs = oxcd_tls::files::load_certs(&info.cert_file).unwrap();
    let id = oxcd_tls::PeerIdentity::from_chain(&certs).unwrap();
    assert_eq!(id.common_name, None);
    assert!(id.matches_hostname("127.0.0.1") && id.matches_hostname("localhost"));
    // A server on it, and a client from the same info (self-signed: not verified).
    let (addr, mut rx) = serve(TlsAcceptor::new(info.clone()).unwrap()).await;
    let _c = TlsConnector::new(&info)
        .unwrap()
        .connect("127.0.0.1", addr.port())
        .await
        .unwrap();
    assert!(next(&mut rx).await.is_ok());
    // Configured certificates win over auto-TLS.
    let pki = Pki::new();
    let given = pki.server_info(false);
    assert_eq!(
        auto_tls(&given, data.path(), AutoTlsKind::Peer, &hosts, 1).unwrap(),
        given
    );
    assert!(!data.path().join("fixtures").join("peer").exists());
    assert!(self_cert(&dir, &hosts, 0).is_err());
}

#[tokio::test]
async fn rotation_new_connections_get_new_cert_old_ones_stay_up() {
    let pki = Pki::new();
    let clock = ManualClock::new();
    let tls = Arc::new(
        ServerTls::with_clock(
            pki.server_info(false),
            Arc::new(clock.clone()),
            Duration::from_secs(1),
        )
        .unwrap(),
    );
    let (addr, mut rx) = serve(TlsAcceptor::from_server_tls(tls.clone())).await;
    let client =
        TlsConnector::from_config(Arc::new(client_config(&pki.client_info(None, 0)).unwrap()));
    let serial_of = |c: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        let certs = c.get_ref().1.peer_certificates().unwrap().to_vec();
        oxcd_tls::PeerIdentity::from_chain(&certs)
            .unwrap()
            .serial_hex
    };

    let mut old = client.connect("127.0.0.1", addr.port()).await.unwrap();
    let mut old_srv = next(&mut rx).await.unwrap();
    assert_eq!(serial_of(&old), "100142");

    // Replace the files (as cert-manager would) with a certificate of another serial.
    let rotated = pki.ca.leaf(spec("server", &["127.0.0.1"], 0x77));
    std::fs::write(&pki.server_cert, &rotated.cert_pem).unwrap();
    std::fs::write(&pki.server_key, &rotated.key_pem).unwrap();

    // Within the reload interval the old certificate is still served.
    let c = client.connect("127.0.0.1", addr.port()).await.unwrap();
    next(&mut rx).await.unwrap();
    assert_eq!(serial_of(&c), "100142");

    clock.advance(Duration::from_secs(2));
    let c = client.connect("127.0.0.1", addr.port()).await.unwrap();
    next(&mut rx).await.unwrap();
    assert_eq!(serial_of(&c), "107742");

    // The connection made before the rotation still works both ways.
    old.write_all(b"still").await.unwrap();
    old.flush().await.unwrap();
    let mut b = [0u8; 5];
    tokio::time::timeout(STEP, old_srv.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"still");
    old_srv.write_all(b"up").await.unwrap();
    old_srv.flush().await.unwrap();
    let mut b = [0u8; 2];
    tokio::time::timeout(STEP, old.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"up");

    // A broken file is not picked up; the current certificate stays.
    std::fs::write(&pki.server_key, "garbage").unwrap();
    clock.advance(Duration::from_secs(2));
    let c = client.connect("127.0.0.1", addr.port()).await.unwrap();
    next(&mut rx).await.unwrap();
    assert_eq!(serial_of(&c), "107742");
}

#[tokio::test]
async fn rotation_of_crl_refuses_newly_revoked_client() {
    let pki = Pki::new();
    let clock = ManualClock::new();
    let mut info = pki.server_info(true);
    info.crl_file = write(pki.dir.path(), "ca.crl", &pki.ca.crl(&[]));
    let tls = Arc::new(
        ServerTls::with_clock(
            info.clone(),
            Arc::new(clock.clone()),
            Duration::from_secs(1),
        )
        .unwrap(),
    );
    let (addr, mut rx) = serve(TlsAcceptor::from_server_tls(tls)).await;
    let client_info = pki.client_info(Some("dave"), 40);
    let c = TlsConnector::new(&client_info).unwrap();
    let _ok = c.connect("127.0.0.1", addr.port()).await.unwrap();
    assert!(next(&mut rx).await.is_ok());
    let certs = oxcd_tls::files::load_certs(&client_info.cert_file).unwrap();
    let serial = oxcd_tls::PeerIdentity::from_chain(&certs)
        .unwrap()
        .serial_hex;
    assert_eq!(serial, "102842");
    std::fs::write(&info.crl_file, pki.ca.crl(&[&[0x10, 40, 0x42]])).unwrap();
    clock.advance(Duration::from_secs(2));
    let _ = c.connect("127.0.0.1", addr.port()).await;
    let e = next(&mut rx).await.unwrap_err();
    assert!(e.to_string().contains("Revoked"), "{e}");
}
