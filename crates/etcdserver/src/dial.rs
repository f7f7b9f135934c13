//! Outgoing gRPC connections to other members' URLs (peer transport, joining, forwarding
//! to the leader): `http://` URLs are dialled in plaintext, `https://` URLs through the
//! given [`TlsConnector`].
//!
//! Invariants: an `https://` URL is never dialled in plaintext (without a connector the
//! dial fails with a clear error); the TLS connector verifies the member's certificate and
//! presents ours, so with peer mTLS a member is identified by its certificate.

use std::time::Duration;

use oxcd_tls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

/// Opens a channel to `url`; `configure` sets timeouts and keep-alives on the endpoint.
pub(crate) async fn connect(
    url: &str,
    tls: Option<&TlsConnector>,
    connect_timeout: Duration,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, String> {
    let (plain, https) = match url.strip_prefix("https://") {
        Some(rest) => (format!("http://{rest}"), true),
        None => (url.to_string(), false),
    };
    let ep = Endpoint::from_shared(plain)
        .map_err(|e| format!("bad URL {url}: {e}"))?
        .connect_timeout(connect_timeout);
    let ep = configure(ep);
    if !https {
        return ep
            .connect()
            .await
            .map_err(|e| format!("{url}: {}", chain(&e)));
    }
    let Some(tls) = tls else {
        return Err(format!("{url}: https URL but no TLS configured"));
    };
    // The connector does TCP and the handshake; tonic sees an `http://` URI.
    ep.connect_with_connector(tls.clone().with_connect_timeout(connect_timeout))
        .await
        .map_err(|e| format!("{url}: {}", chain(&e)))
}

/// An error with its sources (tonic's transport error alone says only "transport error").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
