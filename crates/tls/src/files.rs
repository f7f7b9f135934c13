//! Reading certificates, keys, CA bundles and CRLs from files, and the change stamps the
//! reloaders compare.
//!
//! Invariants: every error names the file; a stamp is (modification time, length) of each
//! watched file, `None` for a file that cannot be stat'ed, so a file that disappears and
//! comes back counts as a change.

use std::path::Path;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::error::{Result, TlsError};

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_string(),
        source,
    })
}

fn parse_err(path: &str, msg: impl Into<String>) -> TlsError {
    TlsError::Parse {
        path: path.to_string(),
        msg: msg.into(),
    }
}

/// All certificates of a PEM file, in file order (leaf first for a chain).
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            parse_err(
                path,
                format!("tls: failed to parse certificate PEM data ({e})"),
            )
        })?;
    if certs.is_empty() {
        return Err(parse_err(
            path,
            "tls: failed to find any PEM data in certificate input",
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            parse_err(path, "tls: failed to find any PEM data in key input")
        }
        e => parse_err(path, format!("tls: failed to parse private key ({e})")),
    })
}

/// The trust anchors of a CA bundle; a bundle with no usable certificate is an error.
pub fn load_roots(path: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(parse_err(
            path,
            "no usable CA certificate in trusted CA file",
        ));
    }
    Ok(roots)
}

/// The CRLs of a file holding PEM `X509 CRL` blocks or one DER CRL (Go's `ParseCRL`
/// accepted both).
pub fn load_crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = read(path)?;
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| parse_err(path, format!("failed to parse CRL ({e})")))?;
        if crls.is_empty() {
            return Err(parse_err(path, "failed to find any CRL in CRL file"));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// (mtime, len) of one file.
pub(crate) type Stamp = Option<(SystemTime, u64)>;

pub(crate) fn stamp(path: &str) -> Stamp {
    let m = std::fs::metadata(Path::new(path)).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The stamps of a set of files (empty paths skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamps(Vec<(String, Stamp)>);

impl Stamps {
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Stamps {
        Stamps(
            paths
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| (p.to_string(), stamp(p)))
                .collect(),
        )
    }

    /// The same files stat'ed again.
    pub fn refresh(&self) -> Stamps {
        Stamps::of(self.0.iter().map(|(p, _)| p.as_str()))
    }
}
