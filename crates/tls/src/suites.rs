//! etcd's cipher-suite and TLS-version flag values (Go's names) mapped onto rustls' *ring*
//! provider.
//!
//! Invariants: an unknown name is an error worded as etcd's (`unexpected TLS cipher suite
//! %q`); a name Go knows but rustls does not implement (CBC, RC4, 3DES, static-RSA suites)
//! is skipped with a warning, and an error only when nothing usable is left. As in Go, the
//! list restricts TLS 1.2 suites only: TLS 1.3 suites are always on and their names are
//! accepted and ignored.

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite as cs, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::error::{Result, TlsError};

/// A TLS protocol version as etcd's `--tls-min-version` / `--tls-max-version` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// "TLS1.2"
    Tls12,
    /// "TLS1.3"
    Tls13,
}

impl TlsVersion {
    /// Parses etcd's spelling; "" means "not set" (`None`).
    pub fn parse(s: &str) -> Result<Option<TlsVersion>> {
        match s {
            "" => Ok(None),
            "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
            other => Err(TlsError::config(format!(
                "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    }

    /// etcd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

enum Known {
    Tls12(SupportedCipherSuite),
    Tls13,
    Unsupported,
}

fn lookup(name: &str) -> Option<Known> {
    use Known::*;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            Tls12(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            Tls12(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            Tls12(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => Tls12(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => Tls12(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            Tls12(cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            Tls13
        }
        "TLS_RSA_WITH_RC4_128_SHA"
        | "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" => Unsupported,
        _ => return None,
    })
}

/// Checks every name; an unknown one is etcd's error.
pub fn validate_cipher_suites(names: &[String]) -> Result<()> {
    for n in names {
        if lookup(n).is_none() {
            return Err(TlsError::config(format!(
                "unexpected TLS cipher suite {n:?}"
            )));
        }
    }
    Ok(())
}

/// The negotiated parameters: which suites and versions a config offers.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// Builds the provider and version list for `names` (etcd's `--cipher-suites`) and the
/// min/max versions (already parsed; `None` = TLS1.2 / TLS1.3).
pub(crate) fn params(
    names: &[String],
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Params> {
    let min = min.unwrap_or(TlsVersion::Tls12);
    let max = max.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err(TlsError::config(format!(
            "min version ({}) is greater than max version ({})",
            min.as_str(),
            max.as_str()
        )));
    }
    if !names.is_empty() && min == TlsVersion::Tls13 {
        return Err(TlsError::config(
            "cipher suites cannot be configured when only TLS1.3 is enabled",
        ));
    }
    let mut provider = default_provider();
    let mut versions: Vec<TlsVersion> = [TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| *v >= min && *v <= max)
        .collect();
    if !names.is_empty() {
        let mut tls12 = Vec::new();
        for n in names {
            match lookup(n) {
                None => {
                    return Err(TlsError::config(format!(
                        "unexpected TLS cipher suite {n:?}"
                    )))
                }
                Some(Known::Tls12(s)) => {
                    if !tls12
                        .iter()
                        .any(|x: &SupportedCipherSuite| x.suite() == s.suite())
                    {
                        tls12.push(s)
                    }
                }
                Some(Known::Tls13) => {}
                Some(Known::Unsupported) => {
                    tracing::warn!(cipher_suite = %n, "ignoring TLS cipher suite that oxcd does not implement (only AEAD suites are)")
                }
            }
        }
        if tls12.is_empty() {
            // Only TLS 1.3 names (or unsupported ones): TLS 1.2 has nothing to offer.
            versions.retain(|v| *v == TlsVersion::Tls13);
            if versions.is_empty() {
                return Err(TlsError::config(format!(
                    "none of the TLS cipher suites {names:?} is supported"
                )));
            }
        }
        let tls13: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect();
        provider.cipher_suites = tls12.into_iter().chain(tls13).collect();
    }
    Ok(Params {
        provider: Arc::new(provider),
        versions: versions.into_iter().map(TlsVersion::rustls).collect(),
    })
}
