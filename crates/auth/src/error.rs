//! The auth crate's one error type, convertible to etcd's client-facing [`EtcdError`].
//! A request etcd refuses is [`AuthError::Request`]; the others are failures of the
//! machine ([`AuthError::is_fatal`]): the apply loop must stop on them.

use oxcd_api::EtcdError;

/// An auth store failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// etcd refuses the request with this error (deterministic on every member).
    #[error(transparent)]
    Request(#[from] EtcdError),
    /// A stored user or role does not decode.
    #[error("auth record is corrupt: {0}")]
    Corrupt(String),
    /// The `--auth-token` options are invalid (etcd's `ErrInvalidAuthOpts` and friends).
    #[error("invalid auth token options: {0}")]
    InvalidOptions(String),
    /// The backend failed (fatal on the apply path).
    #[error("storage: {0}")]
    Storage(#[from] oxcd_storage::Error),
}

impl AuthError {
    /// Whether this is a failure of the machine rather than of the request.
    pub fn is_fatal(&self) -> bool {
        matches!(self, AuthError::Corrupt(_) | AuthError::Storage(_))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for AuthError {
            fn from(e: $t) -> Self {
                AuthError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<AuthError> for EtcdError {
    fn from(e: AuthError) -> EtcdError {
        match e {
            AuthError::Request(e) => e,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}
