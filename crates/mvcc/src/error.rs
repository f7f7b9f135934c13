//! The crate's one error type.
//!
//! Invariants:
//! - Client-facing variants map one to one onto etcd's errors ([`EtcdError`]) with etcd's
//!   exact strings; this crate never builds a `tonic::Status` (only `oxcd-api` does).
//! - [`Error::Storage`] and [`Error::Corrupt`] mean the backend failed or disagrees with the
//!   index; on the apply path the server treats them as fatal.

use oxcd_api::EtcdError;

/// An MVCC failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested revision has been compacted.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the store's.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// `ignore_value` / `ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A request without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn with more compares or ops than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn writing one key twice (two puts, or a put inside a deleted range).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A range with an unknown sort order or target.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// A tombstone on a key that is not live (etcd's `ErrRevisionNotFound`); internal.
    #[error("mvcc: revision not found")]
    RevisionNotFound,
    /// A txn with writes given to the read-only txn path; a caller bug.
    #[error("mvcc: txn with writes applied on a read view")]
    WriteInReadTxn,
    /// The backend's content disagrees with the index, or a record does not decode.
    #[error("mvcc: store is corrupt: {0}")]
    Corrupt(String),
    /// The backend failed.
    #[error("storage: {0}")]
    Storage(#[from] oxcd_storage::Error),
}

impl Error {
    /// Whether this is a failure of the machine rather than of the request: on the apply
    /// path the server stops on it (a request error is answered and changes nothing).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::RevisionNotFound | Error::WriteInReadTxn | Error::Corrupt(_) | Error::Storage(_)
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

oxcd_storage::from_redb_errors!(Error, Error::Storage);

impl From<Error> for EtcdError {
    fn from(e: Error) -> EtcdError {
        match e {
            Error::Compacted => EtcdError::Compacted,
            Error::FutureRev => EtcdError::FutureRev,
            Error::KeyNotFound => EtcdError::KeyNotFound,
            Error::EmptyKey => EtcdError::EmptyKey,
            Error::ValueProvided => EtcdError::ValueProvided,
            Error::LeaseProvided => EtcdError::LeaseProvided,
            Error::TooManyOps => EtcdError::TooManyOps,
            Error::DuplicateKey => EtcdError::DuplicateKey,
            // oxcd-api has no variant for it yet; same code and string as etcd's.
            Error::InvalidSortOption => EtcdError::InvalidArgument(e.to_string()),
            e @ (Error::RevisionNotFound
            | Error::WriteInReadTxn
            | Error::Corrupt(_)
            | Error::Storage(_)) => EtcdError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_failures_are_fatal_request_errors_are_not() {
        for e in [
            Error::RevisionNotFound,
            Error::WriteInReadTxn,
            Error::Corrupt("x".into()),
            Error::Storage(oxcd_storage::Error::Corrupt("y".into())),
        ] {
            assert!(e.is_fatal(), "{e}");
        }
        for e in [
            Error::Compacted,
            Error::FutureRev,
            Error::KeyNotFound,
            Error::EmptyKey,
            Error::ValueProvided,
            Error::LeaseProvided,
            Error::TooManyOps,
            Error::DuplicateKey,
            Error::InvalidSortOption,
        ] {
            assert!(!e.is_fatal(), "{e}");
        }
    }

    #[test]
    fn client_errors_map_to_etcd_errors_with_etcd_strings() {
        let e = EtcdError::from(Error::InvalidSortOption);
        assert_eq!(e.code(), oxcd_api::error::EtcdError::EmptyKey.code());
        assert_eq!(e.to_string(), "etcdserver: invalid sort option");
        let cases = [
            (
                Error::Compacted,
                EtcdError::Compacted,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Error::FutureRev,
                EtcdError::FutureRev,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Error::KeyNotFound,
                EtcdError::KeyNotFound,
                "etcdserver: key not found",
            ),
            (
                Error::EmptyKey,
                EtcdError::EmptyKey,
                "etcdserver: key is not provided",
            ),
            (
                Error::ValueProvided,
                EtcdError::ValueProvided,
                "etcdserver: value is provided",
            ),
            (
                Error::LeaseProvided,
                EtcdError::LeaseProvided,
                "etcdserver: lease is provided",
            ),
            (
                Error::TooManyOps,
                EtcdError::TooManyOps,
                "etcdserver: too many operations in txn request",
            ),
            (
                Error::DuplicateKey,
                EtcdError::DuplicateKey,
                "etcdserver: duplicate key given in txn request",
            ),
        ];
        for (e, want, msg) in cases {
            let got = EtcdError::from(e);
            assert_eq!(got, want);
            assert_eq!(got.to_string(), msg);
        }
    }

    #[test]
    fn internal_errors_become_internal() {
        let e = EtcdError::from(Error::Corrupt("revision 2_0 missing".into()));
        assert_eq!(
            e,
            EtcdError::Internal("mvcc: store is corrupt: revision 2_0 missing".into())
        );
    }
}
