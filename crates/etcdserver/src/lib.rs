//! The oxcd core, etcd's `etcdserver`: one thread owns raft-rs's `RawNode`
//! ([`raft_node`]), one applies committed entries through a chain of guards ([`apply`]),
//! proposals wait on an id → reply registry ([`wait`]), and [`EtcdServer`] is what the
//! fronts (gRPC, HTTP) call. Also the peer transport, bootstrap and membership.
//!
//! Invariants:
//! - Nothing here knows the client-facing gRPC services or HTTP; the fronts call
//!   [`EtcdServer`]'s methods and map [`oxcd_api::EtcdError`] to their protocol.
//! - Every error on the apply path is either a request error (answered, state unchanged,
//!   identical on every member) or fatal (the process stops): see [`apply`].

mod alarm;
mod apply;
mod apply_auth;
mod apply_guard;
mod apply_lease;
mod apply_membership;
mod auth_server;
mod bootstrap;
mod cluster_ops;
mod compactor;
mod corrupt;
mod dial;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzz_support;
mod lease_server;
mod lessor_loop;
mod maint_ops;
mod maintenance;
mod membership;
pub mod metrics;
mod peer;
mod pending_snapshot;
mod quota;
mod raft_node;
mod range_stream;
mod reconfig;
mod server;
mod snapshot;
mod transport;
mod wait;

pub use apply::{Applied, ApplyResult};
pub use bootstrap::{Node, NodeConfig};
pub use compactor::{AutoCompaction, REVISION_CHECK_INTERVAL};
pub use error::{Error, Result};
pub use lease_server::LeaseHub;
pub use maintenance::downgrade;
pub use membership::format_url;
pub use oxcd_auth::{AuthConfig, AuthInfo, TokenOptions};
pub use peer::PeerService;
pub use server::{EtcdServer, ServerSettings};
