//! [`TlsInfo`]: the TLS flags of one listener or client, with etcd's `transport.TLSInfo`
//! semantics.
//!
//! Invariants (etcd's): a server needs both `cert_file` and `key_file`; a trusted CA file *or*
//! `client_cert_auth` makes client certificates required and verified; `allowed_cn` and
//! `allowed_hostname` are mutually exclusive; the client certificate of an outgoing
//! connection is `client_cert_file`/`client_key_file`, falling back to `cert_file`/`key_file`.
//! Empty strings mean "not set", as with etcd's flags.

use crate::error::{Result, TlsError};
use crate::suites::{self, TlsVersion};

/// The TLS flags of one listener (client or peer) or one outgoing client, as etcd's
/// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--crl-file`,
/// `--peer-cert-allowed-cn`, `--peer-cert-allowed-hostname`, `--cipher-suites`,
/// `--tls-min-version`, `--tls-max-version` (and etcdctl's `--cert`, `--key`, `--cacert`,
/// `--insecure-skip-tls-verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server certificate (PEM, leaf first); also the client certificate when
    /// `client_cert_file` is empty.
    pub cert_file: String,
    /// The key of `cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Client certificate for outgoing connections (etcd's `ClientCertFile`).
    pub client_cert_file: String,
    /// Key of `client_cert_file`.
    pub client_key_file: String,
    /// CA bundle (PEM): verifies client certificates on a server, the server on a client.
    pub trusted_ca_file: String,
    /// Require and verify client certificates (`--client-cert-auth`).
    pub client_cert_auth: bool,
    /// Certificate revocation list (PEM or DER); revoked client certificates are refused.
    pub crl_file: String,
    /// Client side: do not verify the server certificate (etcdctl `--insecure-skip-tls-verify`).
    pub insecure_skip_verify: bool,
    /// Peer listener: skip etcd's check that a peer certificate's SANs match the peer's
    /// address (`--experimental-peer-skip-client-san-verification`).
    pub skip_client_san_verify: bool,
    /// Client side: the name the server certificate must match instead of the dialled host.
    pub server_name: String,
    /// Go names of the allowed TLS 1.2 cipher suites (`--cipher-suites`); empty = all.
    pub cipher_suites: Vec<String>,
    /// "", "TLS1.2" or "TLS1.3" (`--tls-min-version`; "" = TLS1.2).
    pub min_version: String,
    /// "", "TLS1.2" or "TLS1.3" (`--tls-max-version`; "" = TLS1.3).
    pub max_version: String,
    /// Accepted client-certificate Common Names (`--peer-cert-allowed-cn`); empty = any.
    pub allowed_cn: Vec<String>,
    /// Host names or IPs one of which a client certificate's SANs must match
    /// (`--peer-cert-allowed-hostname`); empty = any.
    pub allowed_hostname: Vec<String>,
    /// Set by [`crate::self_cert`]: the certificate is self-signed, so clients built from
    /// this info do not verify the server (etcd's `selfCert`).
    pub self_cert: bool,
}

/// The validated, parsed form used by the config builders.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub min: Option<TlsVersion>,
    pub max: Option<TlsVersion>,
}

impl TlsInfo {
    /// etcd's `TLSInfo.Empty()`: neither a certificate nor a key is set.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_empty() && self.key_file.is_empty()
    }

    /// Whether a server built from this info requests and verifies client certificates
    /// (etcd: a trusted CA file or `--client-cert-auth`).
    pub fn requires_client_cert(&self) -> bool {
        !self.trusted_ca_file.is_empty() || self.client_cert_auth
    }

    /// The certificate/key pair for outgoing connections, if any.
    pub(crate) fn client_pair(&self) -> Option<(&str, &str)> {
        if !self.client_cert_file.is_empty() {
            Some((&self.client_cert_file, &self.client_key_file))
        } else if !self.cert_file.is_empty() {
            Some((&self.cert_file, &self.key_file))
        } else {
            None
        }
    }

    /// Checks the flag combination without touching files: versions, cipher-suite names,
    /// allowed CN vs. hostname, client pair completeness. Worded as etcd's errors.
    pub fn validate(&self) -> Result<()> {
        self.parse().map(|_| ())
    }

    pub(crate) fn parse(&self) -> Result<Parsed> {
        let min = TlsVersion::parse(&self.min_version)?;
        let max = TlsVersion::parse(&self.max_version)?;
        suites::validate_cipher_suites(&self.cipher_suites)?;
        // Runs the min/max and TLS1.3-only checks.
        suites::params(&self.cipher_suites, min, max)?;
        if !self.allowed_cn.is_empty() && !self.allowed_hostname.is_empty() {
            return Err(TlsError::config(format!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={:?}, hostname={:?})",
                self.allowed_cn.join(","),
                self.allowed_hostname.join(",")
            )));
        }
        if self.client_key_file.is_empty() != self.client_cert_file.is_empty() {
            return Err(TlsError::config(format!(
                "ClientKeyFile and ClientCertFile must both be present or both absent: key: {}, cert: {}]",
                self.client_key_file, self.client_cert_file
            )));
        }
        Ok(Parsed { min, max })
    }

    /// Additional server-side checks: etcd's `baseConfig` key/cert presence, and (oxcd's
    /// addition) CN/hostname restrictions need client certificates to be verified, since
    /// otherwise they would silently check nothing.
    pub(crate) fn parse_server(&self) -> Result<Parsed> {
        if self.key_file.is_empty() || self.cert_file.is_empty() {
            return Err(TlsError::config(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                self.key_file, self.cert_file
            )));
        }
        let p = self.parse()?;
        if (!self.allowed_cn.is_empty() || !self.allowed_hostname.is_empty())
            && !self.requires_client_cert()
        {
            return Err(TlsError::config(
                "allowed CN/hostname need client certificate verification (--trusted-ca-file or --client-cert-auth)",
            ));
        }
        Ok(p)
    }
}

impl std::fmt::Display for TlsInfo {
    /// etcd's `TLSInfo.String()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cert = {}, key = {}, client-cert={}, client-key={}, trusted-ca = {}, client-cert-auth = {}, crl-file = {}",
            self.cert_file,
            self.key_file,
            self.client_cert_file,
            self.client_key_file,
            self.trusted_ca_file,
            self.client_cert_auth,
            self.crl_file
        )
    }
}
