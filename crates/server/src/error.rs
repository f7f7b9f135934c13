//! The binary's one error type: configuration and start-up failures, or the core's.

/// Why the `oxcd` binary could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] oxcd_etcdserver::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
