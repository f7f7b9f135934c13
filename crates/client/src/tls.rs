//! TLS settings of a connection (etcdctl's `--cacert`, `--cert`, `--key`).
//!
//! Invariant: files are read when the client connects, so a missing or unreadable file is an
//! [`Error::Tls`] naming it, never a panic; without the crate's `tls` feature every TLS
//! setting is rejected the same way.

use std::path::PathBuf;

use tonic::transport::Endpoint;

use crate::error::{Error, Result};

/// Where the CA bundle and the client's own certificate come from.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM CA bundle that verifies the server (`None`: the built-in web roots are not used,
    /// so a CA is needed unless the server's chain is in the system store).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `key_file`) for client-certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (default: the endpoint's host).
    pub domain: Option<String>,
}

#[cfg(feature = "tls")]
fn read(what: &str, p: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::Tls(format!("cannot read {what} {}: {e}", p.display())))
}

/// Apply `t` to `ep` (host `host` is the default server name).
#[cfg(feature = "tls")]
pub(crate) fn apply(ep: Endpoint, t: &TlsOptions, host: &str) -> Result<Endpoint> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut cfg = ClientTlsConfig::new().domain_name(t.domain.clone().unwrap_or(host.into()));
    if let Some(ca) = &t.ca_file {
        cfg = cfg.ca_certificate(Certificate::from_pem(read("CA file", ca)?));
    }
    match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => {
            cfg = cfg.identity(Identity::from_pem(read("certificate", c)?, read("key", k)?))
        }
        (None, None) => {}
        _ => return Err(Error::Tls("--cert and --key must be given together".into())),
    }
    ep.tls_config(cfg).map_err(|e| Error::Tls(e.to_string()))
}

/// Without the `tls` feature, TLS cannot be configured.
#[cfg(not(feature = "tls"))]
pub(crate) fn apply(_ep: Endpoint, _t: &TlsOptions, _host: &str) -> Result<Endpoint> {
    Err(Error::Tls(
        "oxcd-client was built without its `tls` feature".into(),
    ))
}
