//! etcd's Lock (`v3lockpb`) and Election (`v3electionpb`) services, built as etcd builds
//! them: the servers in `server/etcdserver/api/v3lock` and `v3election` run clientv3's
//! `concurrency` recipes (Session, Mutex, Election) over a client of the server itself.
//! Here that client is tonic's generated KV/Lease/Watch clients whose transport is a
//! [`tonic::service::Routes`] holding the server's own services ([`client`]).
//!
//! Layout: [`client`] the in-process client; [`session`] sessions and abandoned-wait
//! cleanup; [`key`] waitDeletes; [`mutex`] and [`election`] the recipes;
//! [`LockService`] and [`ElectionService`] the gRPC services; [`error`] how failures reach
//! the caller (as etcd's: recipe errors and inner etcd errors with code Unknown).
//!
//! Wiring: build the KV, Lease and Watch services into a `Routes` first, then hand a clone
//! to [`LockService::new`] and [`ElectionService::new`] and add those (wrapped in the
//! generated `LockServer`/`ElectionServer`) to the client-facing routes. Whatever must apply
//! to inner calls (auth, request limits) has to live inside those services or their
//! per-service wrappers, not in a `Server::layer`, which in-process calls do not pass.
//!
//! Invariants: this crate keeps no state of its own; every lock and election lives in keys
//! `name/<lease id in hex>` bound to the lease, so it survives restarts and is replicated
//! like any other key. A caller that goes away while waiting leaves no key behind.

pub mod client;
pub mod election;
mod election_service;
pub mod error;
pub mod key;
mod lock_service;
pub mod mutex;
pub mod session;

pub use election_service::ElectionService;
pub use error::Error;
pub use lock_service::LockService;
