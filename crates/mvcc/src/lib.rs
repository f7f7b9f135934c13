//! etcd's MVCC key-value store (`server/storage/mvcc`) and its request applier, over the
//! redb backend of `oxcd-storage`.
//!
//! - [`revision`]: revisions and their backend key encoding (etcd's, byte for byte).
//! - [`key_index`]: one key's generations of revisions; [`index`]: the tree of them.
//! - [`Store`]: the store, with one writer ([`WriteTxn`], inside the caller's backend
//!   transaction) and many concurrent readers ([`ReadTxn`]) that see only the published
//!   revision; compaction.
//! - [`compaction`]: compaction in bounded steps off the apply path; [`hash`]: etcd's
//!   HashKV; [`cost`]: the quota cost of a request.
//! - [`kv_apply`]: etcd's applier for Range, Put, DeleteRange, Txn and Compaction.
//! - [`validate`]: etcd's gRPC-level request checks.
//! - [`watch`]: the watchable store (etcd's `watchableStore`): watchers, their groups,
//!   catch-up from history and victims.
//!
//! Invariant: nothing here builds a `tonic::Status`; errors are [`Error`], convertible to
//! `oxcd_api::EtcdError`.

pub mod compaction;
pub mod cost;
pub mod error;
#[doc(hidden)]
pub mod fuzz_support;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod kv_apply;
pub mod metrics;
pub mod read;
pub mod revision;
pub mod store;
pub mod validate;
pub mod watch;
pub mod write;

#[cfg(test)]
mod test_util;

pub use compaction::{CompactJob, DEFAULT_COMPACTION_BATCH_LIMIT};
pub use error::{Error, Result};
pub use hash::KeyValueHash;
pub use read::{RangeOptions, RangeResult, ReadTxn, ReadView};
pub use revision::Revision;
pub use store::Store;
pub use write::WriteTxn;
