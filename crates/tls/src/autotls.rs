//! Auto-TLS (`--auto-tls`, `--peer-auto-tls`): etcd's `transport.SelfCert`. A self-signed
//! certificate for the listen URLs' hosts, kept in `<data-dir>/fixtures/client` or
//! `<data-dir>/fixtures/peer` as `cert.pem` / `key.pem` and reused when both exist.
//!
//! Invariants: the directory is created 0700, the key written 0600; the certificate has
//! subject O=etcd, no CN, the hosts as IP or DNS SANs, server+client auth usage, and is
//! valid for `validity_years` × 365 days from now. Differences from etcd: the key is ECDSA
//! P-256 (etcd uses P-521, which rustls cannot sign with), so an etcd-made pair that this
//! build cannot load is replaced by a fresh one, with a warning.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

use crate::error::{Result, TlsError};
use crate::info::TlsInfo;

/// Which listener the auto-TLS certificate is for (its fixtures sub-directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoTlsKind {
    /// `--auto-tls`: `<data-dir>/fixtures/client`.
    Client,
    /// `--peer-auto-tls`: `<data-dir>/fixtures/peer`.
    Peer,
}

/// etcd's directory for the auto-TLS files of `kind`.
pub fn fixtures_dir(data_dir: &Path, kind: AutoTlsKind) -> PathBuf {
    data_dir.join("fixtures").join(match kind {
        AutoTlsKind::Client => "client",
        AutoTlsKind::Peer => "peer",
    })
}

/// etcd's embed logic for auto-TLS: when `configured` names no certificate, a self-signed
/// pair for `hosts` in [`fixtures_dir`] replaces it (keeping its cipher suites and
/// versions); when it does, auto-TLS is ignored with etcd's warning.
pub fn auto_tls(
    configured: &TlsInfo,
    data_dir: &Path,
    kind: AutoTlsKind,
    hosts: &[String],
    validity_years: u32,
) -> Result<TlsInfo> {
    if !configured.is_empty() {
        let what = match kind {
            AutoTlsKind::Client => "client",
            AutoTlsKind::Peer => "peer",
        };
        tracing::warn!("ignoring {what} auto TLS since certs given");
        return Ok(configured.clone());
    }
    let mut info = self_cert(&fixtures_dir(data_dir, kind), hosts, validity_years)?;
    info.cipher_suites = configured.cipher_suites.clone();
    info.min_version = configured.min_version.clone();
    info.max_version = configured.max_version.clone();
    Ok(info)
}

/// etcd's `SelfCert`: `cert.pem`/`key.pem` in `dir` (made if missing) for `hosts`
/// ("host:port" or bare hosts; IPs become IP SANs, others DNS SANs).
pub fn self_cert(dir: &Path, hosts: &[String], validity_years: u32) -> Result<TlsInfo> {
    if validity_years == 0 {
        return Err(TlsError::SelfCert(
            "selfSignedCertValidity is invalid,it should be greater than 0".into(),
        ));
    }
    create_dir(dir)?;
    let cert_path = absolute(&dir.join("cert.pem"));
    let key_path = absolute(&dir.join("key.pem"));
    let info = |c: &Path, k: &Path| TlsInfo {
        cert_file: c.display().to_string(),
        key_file: k.display().to_string(),
        client_cert_file: c.display().to_string(),
        client_key_file: k.display().to_string(),
        self_cert: true,
        ..TlsInfo::default()
    };
    if cert_path.exists() && key_path.exists() {
        let ours = info(&cert_path, &key_path);
        match crate::server::server_config(&ours) {
            Ok(_) => return Ok(ours),
            Err(e) => tracing::warn!(
                error = %e,
                dir = %dir.display(),
                "cannot use the existing auto-TLS certificate; generating a new one"
            ),
        }
    }
    let (cert_pem, key_pem) = generate(hosts, validity_years)?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "created cert file");
    write_file(&key_path, key_pem.as_bytes(), 0o600)?;
    tracing::info!(path = %key_path.display(), "created key file");
    Ok(info(&cert_path, &key_path))
}

fn generate(hosts: &[String], validity_years: u32) -> Result<(String, String)> {
    let gen_err = |e: rcgen::Error| TlsError::SelfCert(e.to_string());
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years));
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    for h in hosts {
        let h = split_host(h);
        if h.is_empty() {
            continue;
        }
        let san = match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(h.to_string().try_into().map_err(gen_err)?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    tracing::warn!(
        certificate_validity_bound_not_after = %params.not_after,
        "automatically generate certificates"
    );
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Go's `net.SplitHostPort` host part, tolerating a missing port.
fn split_host(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| TlsError::Read {
        path: dir.display().to_string(),
        source,
    })
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let err = |source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn split_host_forms() {
        assert_eq!(split_host("127.0.0.1:2379"), "127.0.0.1");
        assert_eq!(split_host("[::1]:2380"), "::1");
        assert_eq!(split_host("localhost"), "localhost");
        assert_eq!(split_host("::1"), "::1");
        assert_eq!(split_host("etcd-0.example:2380"), "etcd-0.example");
    }
}
