//! TLS for oxcd's client and peer listeners and its outgoing connections, with etcd's
//! `transport.TLSInfo` flag semantics, on rustls with the *ring* provider.
//!
//! - [`TlsInfo`]: the flags; [`TlsInfo::validate`] gives etcd's error strings.
//! - Server: [`server_config`] (one-shot) or [`ServerTls`] (follows file changes);
//!   [`TlsAcceptor`] (bounded handshake, one log line per refusal, peer identity);
//!   [`incoming`] for tonic's `serve_with_incoming`; [`TlsConnectInfo`] /
//!   [`peer_common_name`] in a gRPC handler.
//! - Client: [`client_config`], [`TlsConnector`] (tonic connector), [`tonic_client_tls_config`].
//! - Auto-TLS: [`auto_tls`], [`self_cert`].
//!
//! Invariant: nothing in this crate panics on peer input or bad files; everything returns
//! [`TlsError`].

mod acceptor;
mod autotls;
mod client;
pub mod clock;
mod error;
pub mod files;
mod identity;
mod incoming;
mod info;
mod server;
mod suites;

pub use acceptor::{
    peer_common_name, TlsAcceptor, TlsConnectInfo, TlsStream, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use autotls::{auto_tls, fixtures_dir, self_cert, AutoTlsKind};
pub use client::{client_config, tonic_client_tls_config, TlsConnector};
pub use error::{Result, TlsError};
pub use identity::PeerIdentity;
pub use incoming::{incoming, TlsIncoming};
pub use info::TlsInfo;
pub use server::{server_config, ServerTls, DEFAULT_RELOAD_INTERVAL, SERVER_ALPN};
pub use suites::TlsVersion;

/// Re-exported so callers use the same rustls as this crate.
pub use rustls;
pub use tokio_rustls;
