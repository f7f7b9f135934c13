//! Client side: a rustls [`ClientConfig`] from a [`TlsInfo`] (peer transport, our client
//! crate, etcdctl flag parity), a [`TlsConnector`] usable as tonic's custom connector, and
//! a tonic [`ClientTlsConfig`] for the plain case.
//!
//! Invariants: the server is verified against `trusted_ca_file`, else the system roots,
//! unless `insecure_skip_verify` or a self-signed (auto-TLS) info; handshake signatures are
//! checked even then. The client certificate is `client_cert_file`, else `cert_file`, and
//! is re-read when its files change (at most once a second), as etcd re-reads it per
//! handshake. ALPN offers `h2` only (gRPC).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

use crate::error::{Result, TlsError};
use crate::files::{self, Stamps};
use crate::info::TlsInfo;
use crate::suites;

/// Builds a client config from `info`.
pub fn client_config(info: &TlsInfo) -> Result<ClientConfig> {
    let parsed = info.parse()?;
    let params = suites::params(&info.cipher_suites, parsed.min, parsed.max)?;
    let builder = ClientConfig::builder_with_provider(params.provider.clone())
        .with_protocol_versions(&params.versions)?;
    let builder = if info.insecure_skip_verify || info.self_cert {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerify(params.provider.clone())))
    } else {
        builder.with_root_certificates(roots(info)?)
    };
    let mut cfg =
        match info.client_pair() {
            Some((cert, key)) => builder.with_client_cert_resolver(Arc::new(
                ReloadingClientCert::new(cert, key, params.provider.clone())?,
            )),
            None => builder.with_no_client_auth(),
        };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

fn roots(info: &TlsInfo) -> Result<RootCertStore> {
    if !info.trusted_ca_file.is_empty() {
        return files::load_roots(&info.trusted_ca_file);
    }
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        return Err(TlsError::config(
            "no trusted CA: set the CA file (--cacert / --trusted-ca-file); no system roots found",
        ));
    }
    Ok(roots)
}

/// etcdctl's `--insecure-skip-tls-verify`: any server certificate, but a valid handshake
/// signature by its key.
#[derive(Debug)]
struct NoServerVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

const CLIENT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The client certificate, re-read when its files change.
#[derive(Debug)]
struct ReloadingClientCert {
    cert_file: String,
    key_file: String,
    provider: Arc<CryptoProvider>,
    state: Mutex<ClientCertState>,
}

#[derive(Debug)]
struct ClientCertState {
    key: Arc<CertifiedKey>,
    stamps: Stamps,
    last: Instant,
}

fn load_certified(cert: &str, key: &str, provider: &CryptoProvider) -> Result<CertifiedKey> {
    CertifiedKey::from_der(files::load_certs(cert)?, files::load_key(key)?, provider).map_err(|e| {
        match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Parse {
                path: key.to_string(),
                msg: "tls: private key does not match public key".into(),
            },
            e => e.into(),
        }
    })
}

impl ReloadingClientCert {
    fn new(cert: &str, key: &str, provider: Arc<CryptoProvider>) -> Result<Self> {
        let stamps = Stamps::of([cert, key]);
        let ck = load_certified(cert, key, &provider)?;
        Ok(ReloadingClientCert {
            cert_file: cert.to_string(),
            key_file: key.to_string(),
            provider,
            state: Mutex::new(ClientCertState {
                key: Arc::new(ck),
                stamps,
                // Reload throttling only; not part of any protocol decision.
                last: Instant::now(),
            }),
        })
    }
}

impl ResolvesClientCert for ReloadingClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut st = self.state.lock();
        if st.last.elapsed() >= CLIENT_RELOAD_INTERVAL {
            st.last = Instant::now();
            let fresh = st.stamps.refresh();
            if fresh != st.stamps {
                st.stamps = fresh;
                match load_certified(&self.cert_file, &self.key_file, &self.provider) {
                    Ok(k) => st.key = Arc::new(k),
                    Err(e) => tracing::warn!(error = %e, "failed to reload client certificate"),
                }
            }
        }
        Some(st.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Dials TCP and runs the client handshake. As a `tower::Service<Uri>` it is a tonic
/// connector: `Endpoint::from_shared("http://host:port")?.connect_with_connector(c)` —
/// give tonic an `http://` URI, since the connector does the TLS itself.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
    connect_timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector from `info` (its `server_name`, when set, overrides the dialled host for
    /// certificate verification).
    pub fn new(info: &TlsInfo) -> Result<TlsConnector> {
        Ok(TlsConnector {
            config: Arc::new(client_config(info)?),
            server_name: (!info.server_name.is_empty()).then(|| info.server_name.clone()),
            connect_timeout: None,
        })
    }

    /// A connector over a ready config.
    pub fn from_config(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            config,
            server_name: None,
            connect_timeout: None,
        }
    }

    /// Bounds TCP connect plus handshake.
    pub fn with_connect_timeout(mut self, d: Duration) -> TlsConnector {
        self.connect_timeout = Some(d);
        self
    }

    /// Connects to `host:port` and handshakes; the certificate must match `host` (or the
    /// configured server name).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let fut = self.connect_inner(host, port);
        match self.connect_timeout {
            Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
                TlsError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {host}:{port} timed out"),
                ))
            })?,
            None => fut.await,
        }
    }

    async fn connect_inner(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| TlsError::config(format!("invalid server name {name:?}: {e}")))?;
        let tcp = TcpStream::connect((host, port)).await?;
        let _ = tcp.set_nodelay(true);
        let remote = tcp.peer_addr().ok();
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| TlsError::handshake(remote, e))
    }
}

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| TlsError::config(format!("no host in {uri}")))?
                .to_string();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("http") => 80,
                _ => 443,
            });
            this.connect(&host, port).await.map(TokioIo::new)
        })
    }
}

/// tonic's own TLS config from `info`, for `https://` endpoints:
/// `Endpoint::from_shared("https://host:port")?.tls_config(cfg)?`. It cannot skip
/// verification or restrict suites; use [`TlsConnector`] for those.
pub fn tonic_client_tls_config(info: &TlsInfo) -> Result<tonic::transport::ClientTlsConfig> {
    info.validate()?;
    if info.insecure_skip_verify || info.self_cert {
        return Err(TlsError::config(
            "tonic's ClientTlsConfig cannot skip server verification; use TlsConnector",
        ));
    }
    let read = |p: &str| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_string(),
            source,
        })
    };
    let mut cfg = tonic::transport::ClientTlsConfig::new();
    if info.trusted_ca_file.is_empty() {
        cfg = cfg.with_enabled_roots();
    } else {
        cfg = cfg.ca_certificate(tonic::transport::Certificate::from_pem(read(
            &info.trusted_ca_file,
        )?));
    }
    if let Some((cert, key)) = info.client_pair() {
        cfg = cfg.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    if !info.server_name.is_empty() {
        cfg = cfg.domain_name(info.server_name.clone());
    }
    Ok(cfg)
}
