//! The lessor's errors, convertible to etcd's client-facing [`EtcdError`].

use oxcd_api::EtcdError;

/// A lessor failure.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// etcd's `ErrLeaseNotFound`.
    #[error("lease not found")]
    NotFound,
    /// etcd's `ErrLeaseExists`.
    #[error("lease already exists")]
    Exists,
    /// etcd's `ErrLeaseTTLTooLarge`.
    #[error("too large lease TTL")]
    TtlTooLarge,
    /// Deleting a revoked lease's keys failed (fatal on the apply path).
    #[error("deleting the keys of lease {id:x}: {msg}")]
    Delete { id: i64, msg: String },
    /// A lease record does not decode.
    #[error("lease record is corrupt: {0}")]
    Corrupt(String),
    /// The backend failed (fatal on the apply path).
    #[error("storage: {0}")]
    Storage(#[from] oxcd_storage::Error),
}

impl LeaseError {
    /// Whether this is a failure of the machine rather than of the request: the apply
    /// loop must stop on it.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LeaseError::Delete { .. } | LeaseError::Corrupt(_) | LeaseError::Storage(_)
        )
    }
}

oxcd_storage::from_redb_errors!(LeaseError, LeaseError::Storage);

impl From<LeaseError> for EtcdError {
    fn from(e: LeaseError) -> EtcdError {
        match e {
            LeaseError::NotFound => EtcdError::LeaseNotFound,
            LeaseError::Exists => EtcdError::LeaseExist,
            LeaseError::TtlTooLarge => EtcdError::LeaseTtlTooLarge,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}
