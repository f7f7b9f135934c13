//! The server crate's one error type. Client-facing errors carry an [`EtcdError`]; the
//! conversion into `tonic::Status` happens only in `oxcd_api::error`.
//! Storage errors on the apply path are fatal: the apply loop stops the process instead
//! of acknowledging a write it could not persist.

use oxcd_api::EtcdError;

/// A server failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("storage: {0}")]
    Storage(#[from] oxcd_storage::Error),
    #[error("mvcc: {0}")]
    Mvcc(#[from] oxcd_mvcc::Error),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("data dir is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for EtcdError {
    fn from(e: Error) -> EtcdError {
        match e {
            Error::Etcd(e) => e,
            Error::Mvcc(e) => e.into(),
            other => EtcdError::Internal(other.to_string()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        EtcdError::from(e).into()
    }
}
