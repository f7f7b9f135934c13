//! Leases (etcd's lessor). This crate owns lease ids, TTLs and which keys are attached to
//! which lease; it never imports the MVCC store: to revoke a lease it deletes the attached
//! keys through the [`RangeDeleter`] trait, as etcd's lessor does.
//!
//! The Lease service itself (grant, keep-alive, expiry) is built by a later issue; until
//! then no lease can exist, so a Put naming a lease fails with etcd's "requested lease not
//! found".

/// A lease id as it travels on the wire.
pub type LeaseId = i64;

/// "No lease": a key put without a lease.
pub const NO_LEASE: LeaseId = 0;

/// Deletes the keys of a revoked lease in one revision (implemented by the MVCC store).
pub trait RangeDeleter {
    /// The error a failed delete reports.
    type Error;
    /// Deletes each key in `keys`, all in the same revision.
    fn delete_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), Self::Error>;
}
