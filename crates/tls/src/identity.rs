//! What a verified peer certificate says about the peer: Common Name (the auth layer's user
//! name), SANs (the peer transport's identity), serial. Also Go's `VerifyHostname` rules
//! for `--peer-cert-allowed-hostname`.
//!
//! Invariants: only certificates that passed verification are turned into a
//! [`PeerIdentity`]; the CN is the first CN attribute of the subject (Go's
//! `Subject.CommonName`); host matching uses SANs only (Go 1.17+ ignores the CN).

use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity in a client's (or peer's) verified certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject Common Name of the leaf certificate; `None` when it has none.
    pub common_name: Option<String>,
    /// DNS-name SANs of the leaf.
    pub dns_names: Vec<String>,
    /// IP-address SANs of the leaf.
    pub ip_addresses: Vec<IpAddr>,
    /// Serial number of the leaf, lower-case hex without leading zero bytes.
    pub serial_hex: String,
    /// The chain as presented, leaf first (DER).
    pub certificates: Vec<CertificateDer<'static>>,
}

impl PeerIdentity {
    /// Parses the leaf of `chain`. `None` for an empty chain or an unparsable leaf.
    pub fn from_chain(chain: &[CertificateDer<'static>]) -> Option<PeerIdentity> {
        let leaf = chain.first()?;
        let p = ParsedCert::parse(leaf)?;
        Some(PeerIdentity {
            common_name: p.common_name,
            dns_names: p.dns_names,
            ip_addresses: p.ip_addresses,
            serial_hex: p.serial_hex,
            certificates: chain.to_vec(),
        })
    }

    /// Whether `host` (a DNS name or an IP) matches the leaf's SANs, by Go's rules.
    pub fn matches_hostname(&self, host: &str) -> bool {
        matches_hostname(&self.dns_names, &self.ip_addresses, host)
    }
}

pub(crate) struct ParsedCert {
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub serial_hex: String,
}

impl ParsedCert {
    pub fn parse(der: &CertificateDer<'_>) -> Option<ParsedCert> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        let serial = cert.raw_serial();
        let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        let serial_hex = serial[first..].iter().map(|b| format!("{b:02x}")).collect();
        Some(ParsedCert {
            common_name,
            dns_names,
            ip_addresses,
            serial_hex,
        })
    }
}

/// Go's `x509.Certificate.VerifyHostname` on SANs: an IP matches an IP SAN exactly; a name
/// matches a DNS SAN case-insensitively, `*.` wildcards covering exactly one left label.
pub(crate) fn matches_hostname(dns: &[String], ips: &[IpAddr], host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return ips.contains(&ip);
    }
    let h = h.trim_end_matches('.').to_ascii_lowercase();
    dns.iter().any(|pattern| {
        let p = pattern.trim_end_matches('.').to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => match h.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            },
            None => p == h,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_rules() {
        let dns = vec!["*.example.com".to_string(), "etcd-1".to_string()];
        let ips = vec!["10.0.0.1".parse().unwrap()];
        assert!(matches_hostname(&dns, &ips, "a.example.com"));
        assert!(!matches_hostname(&dns, &ips, "a.b.example.com"));
        assert!(!matches_hostname(&dns, &ips, "example.com"));
        assert!(matches_hostname(&dns, &ips, "ETCD-1"));
        assert!(matches_hostname(&dns, &ips, "10.0.0.1"));
        assert!(!matches_hostname(&dns, &ips, "10.0.0.2"));
    }
}
