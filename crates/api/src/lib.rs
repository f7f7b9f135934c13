//! etcd v3's wire format, generated from our own `.proto` files (field names and numbers are
//! etcd 3.5's), plus etcd's gRPC error codes and strings in one place ([`error`]).
//!
//! Invariant: nothing here knows about storage or Raft; every other crate depends on this one.

pub mod error;

pub use error::EtcdError;

/// The etcd API version oxcd implements and reports in `Status.version`.
pub const ETCD_API_VERSION: &str = "3.5.17";
/// The cluster version reported to clients (major.minor of [`ETCD_API_VERSION`]).
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";
/// oxcd's own version.
pub const OXCD_VERSION: &str = env!("CARGO_PKG_VERSION");

#[allow(clippy::all, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

#[allow(clippy::all, missing_docs)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

#[allow(clippy::all, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

#[allow(clippy::all, missing_docs)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

#[allow(clippy::all, missing_docs)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

#[allow(clippy::all, missing_docs)]
pub mod oxcdpb {
    tonic::include_proto!("oxcdpb");
}
