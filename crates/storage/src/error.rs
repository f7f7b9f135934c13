//! The storage crate's one error type. Any of these on a write path is fatal to the server:
//! it stops rather than acknowledge a write it could not persist.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backend: {0}")]
    Backend(#[from] redb::Error),
    #[error("raft log is corrupt: {0}")]
    Corrupt(String),
    /// A snapshot file that is not one, is truncated or fails its checksum.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A backend file redb cannot open (it panicked on it: found by fuzzing).
    #[error("backend file is corrupt: {0}")]
    BackendCorrupt(String),
    /// A defragmentation that could not finish (the database is left as it was).
    #[error("defragment: {0}")]
    Defrag(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The one conversion of redb's errors: into this crate's [`Error`], and, through
/// [`from_redb_errors!`](crate::from_redb_errors), into any crate's error variant that
/// wraps it (so `?` works on redb calls everywhere, with one definition).
#[macro_export]
macro_rules! from_redb_errors {
    ($target:ty, $wrap:expr) => {
        $crate::from_redb_errors!(@each $target, $wrap;
            redb::DatabaseError,
            redb::TransactionError,
            redb::TableError,
            redb::StorageError,
            redb::CommitError,
            redb::SetDurabilityError);
    };
    (@each $target:ty, $wrap:expr; $($t:ty),*) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                let wrap: fn($crate::Error) -> $target = $wrap;
                wrap($crate::Error::Backend(e.into()))
            }
        }
    )*};
}
from_redb_errors!(Error, |e| e);

pub type Result<T, E = Error> = std::result::Result<T, E>;
