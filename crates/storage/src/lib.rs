//! Durable storage under the MVCC store and the Raft node:
//! - [`backend`]: the redb database holding keys, leases and cluster metadata. Writes are
//!   committed in batches; the consistent index (last applied raft index) is written in the
//!   same transaction as the data it covers, so replay after a crash applies nothing twice.
//! - [`snapshot`]: backend snapshots (save, status, verify, restore); [`defrag`]: online
//!   defragmentation; [`quota`]: the space quota check; [`alarm`]: the alarm table.
//! - [`wal`] and [`raft_log`]: the Raft log (our own preallocated, checksummed WAL), hard
//!   state and snapshot metadata. An entry is acknowledged to Raft only after it is fsynced.
//! - [`crash_journal`]: power-loss simulation of the WAL for durability tests (the
//!   recording half only with the test-only `crash-journal` feature).
//!
//! Invariant: the backend's durable consistent index never exceeds the last index the
//! raft log holds durably, and the raft log is compacted only up to the backend's durable
//! consistent index.

pub mod alarm;
pub mod backend;
pub mod crash_journal;
pub mod defrag;
pub mod error;
#[doc(hidden)]
pub mod fuzz_support;
pub mod hash;
pub mod metrics;
pub mod quota;
pub mod raft_log;
pub mod schema;
pub mod snapshot;
pub mod wal;

pub use backend::{Backend, BackendConfig, WriteTx};
pub use defrag::{DefragReport, DefragStage};
pub use error::{Error, Result};
pub use snapshot::{
    restore_backend, snapshot_status, ChunkWriter, RestoreInfo, RestoreOptions, SnapshotStatus,
};

pub use raft_log::RaftLog;
#[cfg(all(feature = "unsafe-no-fsync", not(debug_assertions)))]
compile_error!("`unsafe-no-fsync` is a test-only mutation; it must never be in a release build");
