//! oxcd's gRPC front, etcd's `v3rpc`: the client-facing services, each a thin adapter from
//! etcd's service trait to [`oxcd_etcdserver::EtcdServer`], and the connection adapter
//! that accepts etcdctl 3.4's scheme-prefixed `:authority`.
//!
//! Invariants: no domain logic lives here; every error leaves through
//! `tonic::Status::from(EtcdError)` (the one map in `oxcd_api::error`).

pub mod authority;
mod health;
pub mod metrics;
pub mod require_leader;
mod services;

pub use authority::FixAuthority;
pub use services::{routes, set_progress_report_interval};

/// The Common Name of the verified client certificate of the TLS connection `req` came on
/// (`None` over plaintext or without client-certificate auth). etcd's auth uses it as the
/// user name when a request carries no token.
pub fn client_common_name<T>(req: &tonic::Request<T>) -> Option<String> {
    oxcd_tls::peer_common_name(req).map(str::to_owned)
}
