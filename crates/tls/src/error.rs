//! The crate's one error type. Configuration errors carry etcd's wording (its `TLSInfo`,
//! `tlsutil` and embed-config messages) so operators see the strings they know.

use std::net::SocketAddr;
use std::time::Duration;

/// A TLS configuration, file, certificate-generation or handshake failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A flag combination etcd refuses, worded as etcd words it.
    #[error("{0}")]
    Config(String),
    /// A certificate, key, CA or CRL file could not be read.
    #[error("open {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A file was read but holds no usable PEM/DER data.
    #[error("{msg}: {path}")]
    Parse { path: String, msg: String },
    /// rustls refused the configuration (e.g. key does not match certificate).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// Building the client-certificate or server-certificate verifier failed.
    #[error("tls: building certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Generating or writing an auto-TLS certificate failed.
    #[error("cannot generate cert: {0}")]
    SelfCert(String),
    /// A connection failed its TLS handshake or a post-handshake check.
    #[error("TLS handshake with {remote} failed: {msg}")]
    Handshake { remote: String, msg: String },
    /// A connection did not complete its handshake in time.
    #[error("TLS handshake with {remote} timed out after {after:?}")]
    HandshakeTimeout { remote: String, after: Duration },
    /// A plaintext (non-TLS) client spoke on a TLS port.
    #[error("client {remote} sent a plaintext request to a TLS port")]
    Plaintext { remote: String },
    /// A socket error outside the handshake (connect, accept).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl TlsError {
    pub(crate) fn config(msg: impl Into<String>) -> TlsError {
        TlsError::Config(msg.into())
    }

    pub(crate) fn handshake(remote: Option<SocketAddr>, msg: impl std::fmt::Display) -> TlsError {
        TlsError::Handshake {
            remote: addr_str(remote),
            msg: msg.to_string(),
        }
    }

    /// Whether the failure is the peer's (bad handshake, plaintext, timeout) rather than
    /// this process's configuration or files.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            TlsError::Handshake { .. }
                | TlsError::HandshakeTimeout { .. }
                | TlsError::Plaintext { .. }
        )
    }
}

pub(crate) fn addr_str(a: Option<SocketAddr>) -> String {
    a.map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Result alias of this crate.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;
