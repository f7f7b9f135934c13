//! Test PKI made with rcgen at test time (no keys are checked in), and small harness helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oxcd_tls::{TlsAcceptor, TlsError, TlsInfo, TlsStream};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Bound on any single step of a test.
pub const STEP: Duration = Duration::from_secs(5);

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: Vec<u8>,
}

pub struct LeafSpec<'a> {
    pub cn: &'a str,
    pub sans: &'a [&'a str],
    pub expired: bool,
    pub serial: u8,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    pub fn leaf(&self, spec: LeafSpec<'_>) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(spec.sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.cn);
        p.distinguished_name = dn;
        let serial = vec![0x10, spec.serial, 0x42];
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        if spec.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }

    pub fn crl(&self, revoked: &[&[u8]]) -> String {
        let now = time::OffsetDateTime::now_utc();
        let p = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        p.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

pub fn spec<'a>(cn: &'a str, sans: &'a [&'a str], serial: u8) -> LeafSpec<'a> {
    LeafSpec {
        cn,
        sans,
        expired: false,
        serial,
    }
}

/// Writes `data` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, data: &str) -> String {
    let p: PathBuf = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// A leaf's files in `dir` as (cert, key) paths.
pub fn write_leaf(dir: &Path, name: &str, l: &Leaf) -> (String, String) {
    (
        write(dir, &format!("{name}.crt"), &l.cert_pem),
        write(dir, &format!("{name}.key"), &l.key_pem),
    )
}

/// The standard setup: a CA, a server cert for 127.0.0.1, files in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ca_file: String,
    pub server_cert: String,
    pub server_key: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("oxcd test CA");
        let ca_file = write(dir.path(), "ca.crt", &ca.pem);
        let server = ca.leaf(spec("server", &["127.0.0.1", "localhost"], 1));
        let (server_cert, server_key) = write_leaf(dir.path(), "server", &server);
        Pki {
            dir,
            ca,
            ca_file,
            server_cert,
            server_key,
        }
    }

    /// Server flags: certificate, plus client-cert auth against the CA when `mtls`.
    pub fn server_info(&self, mtls: bool) -> TlsInfo {
        TlsInfo {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            trusted_ca_file: if mtls {
                self.ca_file.clone()
            } else {
                String::new()
            },
            client_cert_auth: mtls,
            ..TlsInfo::default()
        }
    }

    /// Client flags trusting the CA, with a fresh client certificate of CN `cn` (if any).
    pub fn client_info(&self, cn: Option<&str>, serial: u8) -> TlsInfo {
        let mut info = TlsInfo {
            trusted_ca_file: self.ca_file.clone(),
            ..TlsInfo::default()
        };
        if let Some(cn) = cn {
            let l = self.ca.leaf(spec(cn, &["127.0.0.1"], serial));
            let (c, k) = write_leaf(self.dir.path(), &format!("client-{cn}-{serial}"), &l);
            info.cert_file = c;
            info.key_file = k;
        }
        info
    }
}

/// Accepts on a loopback port; every handshake result goes to the channel.
pub async fn serve(
    acceptor: TlsAcceptor,
) -> (SocketAddr, mpsc::Receiver<Result<TlsStream, TlsError>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        // Bounded: the test runtime ends with the test.
        for _ in 0..64 {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let a = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(a.accept(tcp).await).await;
            });
        }
    });
    (addr, rx)
}

/// The next handshake result on the server side.
pub async fn next(
    rx: &mut mpsc::Receiver<Result<TlsStream, TlsError>>,
) -> Result<TlsStream, TlsError> {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .expect("server side produced no result in time")
        .expect("server loop ended")
}
