//! The errors of the concurrency recipes and how they leave the Lock/Election services.
//!
//! Invariant: a client sees exactly what etcd's v3lock/v3election servers send. Those run
//! clientv3, which turns every etcd error of an inner call ("etcdserver: ...") into a plain
//! Go error, and gRPC-go answers a plain error with `Unknown` and its text; the recipes' own
//! errors ("election: not leader", ...) are plain errors too. Any other status of an inner
//! call (a transport failure, a cancellation) is passed on unchanged.

use tonic::{Code, Status};

/// A failure of a Lock/Election request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An in-process KV/Lease/Watch call failed.
    #[error("{}", .0.message())]
    Rpc(Status),
    /// clientv3's `ErrElectionNotLeader`.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// clientv3's `ErrElectionNoLeader`.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// v3election's `ErrMissingLeaderKey`.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// clientv3's `ErrSessionExpired`: the lock key vanished while waiting.
    #[error("mutex: session is expired")]
    SessionExpired,
    /// A watch ended without the awaited delete (clientv3's waitDelete).
    #[error("lost watcher waiting for delete")]
    LostWatcher,
    /// A response lacked a part etcd always sends (a broken in-process server).
    #[error("oxcd: malformed {0} response")]
    Malformed(&'static str),
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error::Rpc(s)
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Rpc(s) if !s.message().starts_with("etcdserver: ") => s,
            Error::Malformed(_) => Status::internal(e.to_string()),
            other => Status::new(Code::Unknown, other.to_string()),
        }
    }
}

/// Result of a recipe step.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_api::EtcdError;

    #[test]
    fn leaves_as_etcd_does() {
        let s: Status = Error::ElectionNotLeader.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "election: not leader")
        );
        let s: Status = Error::MissingLeaderKey.into();
        assert_eq!(s.message(), "\"leader\" field must be provided");
        // An inner etcd error loses its code, as clientv3's rpctypes.Error does.
        let s: Status = Error::Rpc(EtcdError::LeaseNotFound.into()).into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "etcdserver: requested lease not found")
        );
        // Anything else passes through.
        let s: Status = Error::Rpc(Status::unavailable("connection refused")).into();
        assert_eq!(s.code(), Code::Unavailable);
    }
}
