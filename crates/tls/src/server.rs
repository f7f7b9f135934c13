//! Server side: a rustls [`ServerConfig`] from a [`TlsInfo`], and [`ServerTls`], which
//! rebuilds it when the certificate, key, CA or CRL files change (rotation without restart).
//!
//! Invariants:
//! - Client certificates are required and verified iff etcd would (trusted CA file or
//!   `--client-cert-auth`); verification is webpki's against the CA bundle, plus the CRL
//!   (a listed serial anywhere in the chain is refused; a chain the CRL does not cover is
//!   accepted, as etcd's serial check does), plus the allowed CN / hostname of the leaf.
//!   All of it happens inside the handshake, so a refused client gets a TLS alert.
//! - ALPN offers `h2` then `http/1.1`.
//! - Reload: files are stat'ed at most once per reload interval (1 s by default); a change
//!   rebuilds the whole config; a rebuild that fails (e.g. a half-written file) is logged
//!   once per change and the previous config stays in use. Established connections keep
//!   the config they were accepted with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::clock::{Clock, MonotonicClock};
use crate::error::{Result, TlsError};
use crate::files::{self, Stamps};
use crate::identity::{matches_hostname, ParsedCert};
use crate::info::TlsInfo;
use crate::suites;

/// The ALPN protocols a server offers, in preference order.
pub const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Builds a server config from the files named by `info`, once (no reloading; see
/// [`ServerTls`] for that). Errors are etcd's for bad flags, and name the file otherwise.
pub fn server_config(info: &TlsInfo) -> Result<ServerConfig> {
    let parsed = info.parse_server()?;
    let params = suites::params(&info.cipher_suites, parsed.min, parsed.max)?;
    let certs = files::load_certs(&info.cert_file)?;
    let key = files::load_key(&info.key_file)?;
    let builder = ServerConfig::builder_with_provider(params.provider.clone())
        .with_protocol_versions(&params.versions)?;
    let builder = if info.requires_client_cert() {
        builder.with_client_cert_verifier(client_verifier(info, &params.provider)?)
    } else {
        builder.with_no_client_auth()
    };
    // Go's X509KeyPair refuses a key that is not the certificate's; so do we, up front.
    let mismatch = |e: rustls::Error| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Parse {
            path: info.key_file.clone(),
            msg: "tls: private key does not match public key".into(),
        },
        e => e.into(),
    };
    CertifiedKey::from_der(certs.clone(), key.clone_key(), &params.provider).map_err(mismatch)?;
    let mut cfg = builder.with_single_cert(certs, key).map_err(mismatch)?;
    cfg.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

fn client_verifier(
    info: &TlsInfo,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    if info.trusted_ca_file.is_empty() {
        // etcd (Go) verifies against the system roots when --client-cert-auth comes
        // without a CA file; without access to a system store we refuse clearly instead.
        return Err(TlsError::config(
            "--client-cert-auth needs --trusted-ca-file (the CA that signs client certificates)",
        ));
    }
    let roots = files::load_roots(&info.trusted_ca_file)?;
    let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !info.crl_file.is_empty() {
        b = b
            .with_crls(files::load_crls(&info.crl_file)?)
            .allow_unknown_revocation_status();
    }
    let inner = b.build()?;
    if info.allowed_cn.is_empty() && info.allowed_hostname.is_empty() {
        return Ok(inner);
    }
    Ok(Arc::new(AllowedVerifier {
        inner,
        allowed_cn: info.allowed_cn.clone(),
        allowed_hostname: info.allowed_hostname.clone(),
    }))
}

/// etcd's `VerifyPeerCertificate` for `--peer-cert-allowed-cn/hostname`, after webpki.
#[derive(Debug)]
struct AllowedVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed_cn: Vec<String>,
    allowed_hostname: Vec<String>,
}

#[derive(Debug)]
struct AuthFailed(String);

impl std::fmt::Display for AuthFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client certificate authentication failed ({})", self.0)
    }
}

impl std::error::Error for AuthFailed {}

impl ClientCertVerifier for AllowedVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let fail = |why: String| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(AuthFailed(why)),
            )))
        };
        let Some(cert) = ParsedCert::parse(end_entity) else {
            return Err(fail("unparsable certificate".into()));
        };
        if !self.allowed_cn.is_empty() {
            let cn = cert.common_name.unwrap_or_default();
            if !self.allowed_cn.contains(&cn) {
                return Err(fail(format!("CN {cn:?} is not allowed")));
            }
        }
        if !self.allowed_hostname.is_empty()
            && !self
                .allowed_hostname
                .iter()
                .any(|h| matches_hostname(&cert.dns_names, &cert.ip_addresses, h))
        {
            return Err(fail(format!(
                "certificate is not valid for {:?}",
                self.allowed_hostname
            )));
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Default interval between checks of the certificate files.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A server config that follows its files: [`ServerTls::config`] returns the current one,
/// rebuilt after the files changed.
#[derive(Debug)]
pub struct ServerTls {
    info: TlsInfo,
    config: RwLock<Arc<ServerConfig>>,
    check: Mutex<Check>,
    clock: Arc<dyn Clock>,
    interval: Duration,
}

#[derive(Debug)]
struct Check {
    last: Instant,
    stamps: Stamps,
}

impl ServerTls {
    /// Validates `info` and builds the first config (errors here should stop startup, as
    /// etcd's do).
    pub fn new(info: TlsInfo) -> Result<ServerTls> {
        ServerTls::with_clock(info, Arc::new(MonotonicClock), DEFAULT_RELOAD_INTERVAL)
    }

    /// As [`ServerTls::new`] with an injected clock and reload interval (zero = check on
    /// every call).
    pub fn with_clock(
        info: TlsInfo,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Result<ServerTls> {
        let stamps = stamps_of(&info);
        let cfg = server_config(&info)?;
        Ok(ServerTls {
            check: Mutex::new(Check {
                last: clock.now(),
                stamps,
            }),
            info,
            config: RwLock::new(Arc::new(cfg)),
            clock,
            interval,
        })
    }

    /// The flags this config was built from.
    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    /// The current config, rebuilt first if the files changed since the last check and
    /// the reload interval has passed.
    pub fn config(&self) -> Arc<ServerConfig> {
        // One caller checks; concurrent handshakes just take the current config.
        if let Some(mut chk) = self.check.try_lock() {
            let now = self.clock.now();
            if now.duration_since(chk.last) >= self.interval {
                chk.last = now;
                let fresh = chk.stamps.refresh();
                if fresh != chk.stamps {
                    chk.stamps = fresh;
                    match server_config(&self.info) {
                        Ok(cfg) => {
                            *self.config.write() = Arc::new(cfg);
                            tracing::info!(cert_file = %self.info.cert_file, "reloaded TLS certificates");
                        }
                        Err(e) => tracing::warn!(
                            error = %e,
                            "cannot reload TLS certificates; keeping the previous ones"
                        ),
                    }
                }
            }
        }
        self.config.read().clone()
    }
}

fn stamps_of(info: &TlsInfo) -> Stamps {
    Stamps::of([
        info.cert_file.as_str(),
        info.key_file.as_str(),
        info.trusted_ca_file.as_str(),
        info.crl_file.as_str(),
    ])
}
