//! [`TlsAcceptor`]: turns an accepted `TcpStream` into a [`TlsStream`] with a bounded
//! handshake, and [`TlsStream`], which carries the verified peer identity.
//!
//! Invariants:
//! - A handshake (including the peer SAN check) that does not finish within the handshake
//!   timeout (10 s by default) is dropped — etcd had no such bound.
//! - Every failed handshake logs exactly one `warn` line ("rejected connection", with the
//!   remote address and the reason) and returns an error; nothing here panics on peer input.
//! - A client that speaks plaintext (first byte is not a TLS handshake record) is told so
//!   with Go's `400 Bad Request` answer when it looks like HTTP, then dropped.
//! - [`TlsStream::peer`] is `Some` only for a chain the server verified.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

use crate::error::{addr_str, Result, TlsError};
use crate::identity::PeerIdentity;
use crate::info::TlsInfo;
use crate::server::ServerTls;

/// Default bound on a server-side handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS record type of a handshake message: the first byte a TLS client sends.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Go's answer to an HTTP request on an HTTPS port.
const PLAINTEXT_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Accepts TLS on connections of one listener. Cheap to clone (shares the config).
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    tls: Arc<ServerTls>,
    handshake_timeout: Duration,
    peer_san_check: bool,
    name: Arc<str>,
}

impl TlsAcceptor {
    /// An acceptor for `info` (validated and loaded now; reloaded on file changes).
    pub fn new(info: TlsInfo) -> Result<TlsAcceptor> {
        Ok(TlsAcceptor::from_server_tls(Arc::new(ServerTls::new(
            info,
        )?)))
    }

    /// An acceptor over an existing (possibly shared) [`ServerTls`].
    pub fn from_server_tls(tls: Arc<ServerTls>) -> TlsAcceptor {
        TlsAcceptor {
            tls,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            peer_san_check: false,
            name: Arc::from("client"),
        }
    }

    /// Sets the handshake bound.
    pub fn with_handshake_timeout(mut self, d: Duration) -> TlsAcceptor {
        self.handshake_timeout = d;
        self
    }

    /// Enables etcd's peer-listener check that a client certificate's IP/DNS SANs match
    /// the connection's remote address (off unless set; etcd's peer listeners have it on
    /// unless `skip_client_san_verify`). DNS SANs are resolved forward only.
    pub fn with_peer_san_check(mut self, on: bool) -> TlsAcceptor {
        self.peer_san_check = on;
        self
    }

    /// Names the listener in log lines ("client", "peer", ...).
    pub fn with_name(mut self, name: &str) -> TlsAcceptor {
        self.name = Arc::from(name);
        self
    }

    /// The reloading config behind this acceptor.
    pub fn server_tls(&self) -> &Arc<ServerTls> {
        &self.tls
    }

    /// Runs the handshake on `tcp`. On failure logs one line and returns the error.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream> {
        let remote = tcp.peer_addr().ok();
        let local = tcp.local_addr().ok();
        let res =
            match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp, remote)).await {
                Ok(r) => r,
                Err(_) => Err(TlsError::HandshakeTimeout {
                    remote: addr_str(remote),
                    after: self.handshake_timeout,
                }),
            };
        match res {
            Ok((stream, peer)) => Ok(TlsStream {
                inner: stream,
                info: TlsConnectInfo {
                    remote_addr: remote,
                    local_addr: local,
                    peer: peer.map(Arc::new),
                    alpn: None,
                },
            }
            .with_alpn()),
            Err(e) => {
                tracing::warn!(
                    listener = %self.name,
                    remote_addr = %addr_str(remote),
                    error = %e,
                    "rejected connection"
                );
                Err(e)
            }
        }
    }

    async fn handshake(
        &self,
        mut tcp: TcpStream,
        remote: Option<SocketAddr>,
    ) -> Result<(
        tokio_rustls::server::TlsStream<TcpStream>,
        Option<PeerIdentity>,
    )> {
        let mut first = [0u8; 1];
        let n = tcp
            .peek(&mut first)
            .await
            .map_err(|e| TlsError::handshake(remote, e))?;
        if n == 0 {
            return Err(TlsError::handshake(
                remote,
                "connection closed before handshake",
            ));
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            if first[0].is_ascii_uppercase() {
                // Best effort: the client is going away anyway. Reading what it sent first
                // keeps the close from turning into a reset that would eat the answer.
                let mut sink = [0u8; 4096];
                let _ = tcp.read(&mut sink).await;
                let _ = tcp.write_all(PLAINTEXT_ANSWER).await;
                let _ = tcp.shutdown().await;
            }
            return Err(TlsError::Plaintext {
                remote: addr_str(remote),
            });
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.config());
        let stream = acceptor
            .accept(tcp)
            .await
            .map_err(|e| TlsError::handshake(remote, describe(&e)))?;
        let peer = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(PeerIdentity::from_chain);
        if self.peer_san_check && !self.tls.info().skip_client_san_verify {
            if let (Some(p), Some(r)) = (&peer, remote) {
                check_peer_san(p, r.ip())
                    .await
                    .map_err(|m| TlsError::handshake(remote, m))?;
            }
        }
        Ok((stream, peer))
    }
}

/// The handshake error as a line: rustls prints its `Other` certificate errors with
/// `Debug`, so those are unwrapped to their own message.
pub(crate) fn describe(e: &io::Error) -> String {
    if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    {
        return format!("invalid peer certificate: {}", o.0);
    }
    e.to_string()
}

/// etcd's `checkCertSAN`: a certificate without SANs passes; otherwise the remote IP must be
/// an IP SAN or the address of one of its (non-wildcard) DNS SANs.
async fn check_peer_san(p: &PeerIdentity, ip: IpAddr) -> std::result::Result<(), String> {
    if p.ip_addresses.is_empty() && p.dns_names.is_empty() {
        return Ok(());
    }
    if p.ip_addresses.contains(&ip) {
        return Ok(());
    }
    for name in p.dns_names.iter().filter(|n| !n.starts_with("*.")) {
        if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 0)).await {
            if addrs.into_iter().any(|a| a.ip() == ip) {
                return Ok(());
            }
        }
    }
    if p.dns_names.is_empty() {
        let ips: Vec<String> = p.ip_addresses.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "x509: certificate is valid for {}, not {ip}",
            ips.join(", ")
        ));
    }
    Err(format!(
        "tls: {:?} does not match any of DNSNames {:?}",
        ip.to_string(),
        p.dns_names
    ))
}

/// What tonic puts in each request's extensions for a connection from [`crate::incoming`]
/// (read it with `request.extensions().get::<TlsConnectInfo>()`, or [`peer_common_name`]).
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The listener's address.
    pub local_addr: Option<SocketAddr>,
    /// The verified client certificate's identity (`None` without client-cert auth).
    pub peer: Option<Arc<PeerIdentity>>,
    /// The negotiated ALPN protocol (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
}

impl TlsConnectInfo {
    /// The verified client certificate's Common Name (etcd uses it as the user name).
    pub fn common_name(&self) -> Option<&str> {
        self.peer.as_ref()?.common_name.as_deref()
    }
}

/// The CN of the verified client certificate of the connection `req` came on.
pub fn peer_common_name<T>(req: &tonic::Request<T>) -> Option<&str> {
    req.extensions().get::<TlsConnectInfo>()?.common_name()
}

/// A server-side TLS connection that finished its handshake and checks.
#[derive(Debug)]
pub struct TlsStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

impl TlsStream {
    fn with_alpn(mut self) -> TlsStream {
        self.info.alpn = self.inner.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        self
    }

    /// Connection metadata (addresses, verified identity, ALPN).
    pub fn info(&self) -> &TlsConnectInfo {
        &self.info
    }

    /// The verified client identity, if the client presented a certificate.
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.info.peer.as_deref()
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.info.alpn.as_deref()
    }

    /// The negotiated TLS version.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.inner.get_ref().1.protocol_version()
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.inner
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite())
    }

    /// The underlying tokio-rustls stream.
    pub fn into_inner(self) -> tokio_rustls::server::TlsStream<TcpStream> {
        self.inner
    }
}

impl Connected for TlsStream {
    type ConnectInfo = TlsConnectInfo;

    fn connect_info(&self) -> TlsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
