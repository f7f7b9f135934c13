//! Leases (etcd's lessor, `server/lease/lessor.go`). This crate owns lease ids, TTLs, expiry
//! and which keys are attached to which lease; it never imports the MVCC store: to revoke a
//! lease it deletes the attached keys through the [`RangeDeleter`] trait, as etcd's lessor
//! does.
//!
//! - [`Lessor`]: the lease table, shared by the apply loop (grant, revoke, checkpoint,
//!   attach/detach), the gRPC services (renew, time-to-live, list) and the leader's expiry
//!   loop (find expired leases, find due checkpoints).
//! - [`Clock`]: time is injected; [`MonotonicClock`] in the server, [`ManualClock`] in tests.
//!
//! Invariants:
//! - Every change that all members must agree on (grant, revoke, checkpoint, attach,
//!   detach) happens only on the apply path, in raft log order; the lease record is written
//!   to `LEASE_TABLE` in the same backend transaction as the request that changed it.
//! - Expiry is known only to the primary (the leader's lessor): on other members every
//!   lease expires "never". Expired leases are only *reported* ([`Lessor::find_expired`]);
//!   the caller revokes them through Raft.

mod clock;
mod error;
mod lessor;
mod queue;
mod record;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use error::LeaseError;
pub use lessor::{
    min_lease_ttl, LeaseCheckpoint, Lessor, LessorConfig, RenewError, TimeToLive,
    DEFAULT_CHECKPOINT_INTERVAL, EXPIRED_LEASE_RETRY_INTERVAL, LEASE_REVOKE_RATE,
    MAX_LEASE_CHECKPOINT_BATCH, MAX_LEASE_TTL,
};
pub use record::LeaseRecord;

/// A lease id as it travels on the wire.
pub type LeaseId = i64;

/// "No lease": a key put without a lease.
pub const NO_LEASE: LeaseId = 0;

/// Deletes the keys of a revoked lease in one revision (implemented over the MVCC store).
pub trait RangeDeleter {
    /// The error a failed delete reports.
    type Error: std::fmt::Display;
    /// Deletes each key in `keys`, all in the same revision (one write txn).
    fn delete_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), Self::Error>;
    /// The backend transaction the deletes ran in: the lease record is deleted in it too,
    /// so the keys and the lease disappear together.
    fn backend_tx(&mut self) -> &mut oxcd_storage::WriteTx;
}
