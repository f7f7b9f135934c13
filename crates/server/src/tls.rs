//! TLS of the binary's listeners and outgoing connections, from the parsed flags:
//! auto-TLS resolved (etcd's `embed` logic), one reloading server config per side shared
//! by all its listeners, and the connectors the core dials `https://` URLs with.
//!
//! Invariants: an `https://` listen URL without a certificate (given or auto) is a start-up
//! error, as in etcd; certificate files that cannot be loaded stop start-up; peer
//! listeners check the client certificate's SANs against the remote address unless
//! `--experimental-peer-skip-client-san-verification`.

use std::sync::Arc;

use futures::StreamExt;
use oxcd_tls::{AutoTlsKind, ServerTls, TlsAcceptor, TlsConnector, TlsInfo};
use tokio::net::TcpListener;

use crate::config::{self, Config};
use crate::error::{Error, Result};

/// The TLS of both sides; `None` where no certificate is configured.
pub struct Tls {
    pub client: Option<Side>,
    pub peer: Option<Side>,
}

/// One side's (client or peer) server config and flags.
pub struct Side {
    pub info: TlsInfo,
    pub server: Arc<ServerTls>,
}

impl Tls {
    /// Resolves auto-TLS and loads the certificates; checks that https URLs have TLS.
    pub fn load(cfg: &Config) -> Result<Tls> {
        let hosts = |urls: &[url::Url]| -> Vec<String> {
            urls.iter()
                .filter_map(|u| u.host_str().map(str::to_owned))
                .collect()
        };
        let client = side(
            &cfg.client_tls,
            cfg.client_auto_tls,
            cfg,
            AutoTlsKind::Client,
            &hosts(&cfg.listen_client_urls),
        )?;
        let peer = side(
            &cfg.peer_tls,
            cfg.peer_auto_tls,
            cfg,
            AutoTlsKind::Peer,
            &hosts(&cfg.listen_peer_urls),
        )?;
        let client_urls = cfg
            .listen_client_urls
            .iter()
            .chain(&cfg.listen_client_http_urls)
            .chain(&cfg.listen_metrics_urls)
            .chain(&cfg.advertise_client_urls);
        for u in client_urls {
            if u.scheme() == "https" && client.is_none() {
                return Err(Error::Config(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    config::format_url(u)
                )));
            }
        }
        let peer_urls = cfg
            .listen_peer_urls
            .iter()
            .chain(&cfg.initial_advertise_peer_urls);
        for u in peer_urls {
            if u.scheme() == "https" && peer.is_none() {
                return Err(Error::Config(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {} with HTTPS scheme",
                    config::format_url(u)
                )));
            }
        }
        Ok(Tls { client, peer })
    }

    /// The acceptor for a client listener at `u` (`None`: plaintext).
    pub fn client_acceptor(&self, u: &url::Url) -> Option<TlsAcceptor> {
        let side = self.client.as_ref().filter(|_| u.scheme() == "https")?;
        Some(TlsAcceptor::from_server_tls(side.server.clone()).with_name("client"))
    }

    /// The acceptor for a peer listener at `u` (`None`: plaintext).
    pub fn peer_acceptor(&self, u: &url::Url) -> Option<TlsAcceptor> {
        let side = self.peer.as_ref().filter(|_| u.scheme() == "https")?;
        Some(
            TlsAcceptor::from_server_tls(side.server.clone())
                .with_name("peer")
                .with_peer_san_check(true),
        )
    }

    /// How the core dials `https://` peer URLs: the peer certificate as client
    /// certificate, the peer CA (or none, for auto-TLS) to verify the other member.
    pub fn peer_connector(&self) -> Result<Option<TlsConnector>> {
        self.peer
            .as_ref()
            .map(|s| TlsConnector::new(&s.info))
            .transpose()
            .map_err(|e| Error::Config(format!("peer TLS: {e}")))
    }

    /// How the core dials the leader's `https://` client URLs (lease forwarding). Like
    /// etcd's own gateway dialling its listener, the server certificate is verified only
    /// against `--trusted-ca-file` when one is given.
    pub fn client_connector(&self) -> Result<Option<TlsConnector>> {
        self.client
            .as_ref()
            .map(|s| {
                let mut info = s.info.clone();
                info.insecure_skip_verify = info.trusted_ca_file.is_empty();
                TlsConnector::new(&info)
            })
            .transpose()
            .map_err(|e| Error::Config(format!("client TLS: {e}")))
    }
}

fn side(
    info: &TlsInfo,
    auto: bool,
    cfg: &Config,
    kind: AutoTlsKind,
    hosts: &[String],
) -> Result<Option<Side>> {
    let what = match kind {
        AutoTlsKind::Client => "client",
        AutoTlsKind::Peer => "peer",
    };
    let info = if auto {
        oxcd_tls::auto_tls(
            info,
            &cfg.data_dir,
            kind,
            hosts,
            cfg.self_signed_cert_validity,
        )
        .map_err(|e| Error::Config(format!("{what} auto TLS: {e}")))?
    } else {
        info.clone()
    };
    if info.is_empty() {
        return Ok(None);
    }
    let server =
        ServerTls::new(info.clone()).map_err(|e| Error::Config(format!("{what} TLS: {e}")))?;
    tracing::info!(side = what, tls = %info, "starting with TLS");
    Ok(Some(Side {
        info,
        server: Arc::new(server),
    }))
}

/// Client connections of one TLS listener: the handshake (per connection, bounded), then the `:authority`
/// adapter, for [`oxcd_http::serve`].
pub fn client_incoming_tls(
    l: TcpListener,
    tls: TlsAcceptor,
) -> impl futures::Stream<Item = std::io::Result<oxcd_v3rpc::FixAuthority<oxcd_tls::TlsStream>>> {
    oxcd_tls::incoming(l, tls).map(|r| r.map(oxcd_v3rpc::FixAuthority::new))
}
