//! The one error type of `oxcd-client`.
//!
//! Invariant: every fallible public function of the crate returns [`Error`]; a gRPC failure
//! keeps its [`tonic::Status`] (boxed, so `Result<_, Error>` stays small) so callers can
//! branch on [`Error::code`].

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to an etcd v3 endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoint was given to [`crate::Client::connect`].
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint string is not a valid URI (`http://host:port`).
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The transport could not connect to an endpoint.
    #[error("cannot connect to {endpoint}: {}", chain(source))]
    Connect {
        /// The endpoint that failed.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered an RPC with a gRPC error status.
    #[error("grpc error {code:?}: {message}", code = .0.code(), message = .0.message())]
    Status(Box<tonic::Status>),
    /// A watch could not be created or was canceled by the server.
    #[error("watch canceled: {0}")]
    WatchCanceled(String),
    /// A bidirectional stream (watch, lease keep-alive) ended or its sender was dropped.
    #[error("stream closed: {0}")]
    StreamClosed(&'static str),
    /// The lease named in a keep-alive no longer exists (the server answered TTL <= 0).
    #[error("lease {0:x} expired or not found")]
    LeaseExpired(i64),
    /// TLS settings could not be loaded (unreadable CA, certificate or key file).
    #[error("tls: {0}")]
    Tls(String),
    /// A setting or argument is invalid (e.g. a cache namespace outside `[a-zA-Z0-9_-]{1,64}`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A value read from etcd did not deserialize into the requested type.
    #[error("cannot decode value of key {key:?}: {reason}")]
    Decode {
        /// The key whose value was rejected.
        key: String,
        /// The deserializer's message.
        reason: String,
    },
    /// A lock, election or session operation failed because its session's lease is gone.
    #[error("session expired (lease {0:x})")]
    SessionExpired(i64),
    /// A software transactional memory transaction could not commit within its retries.
    #[error("stm: transaction conflicted {0} times")]
    StmConflict(usize),
    /// The operation ran into its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Another error, with what was being done and where.
    #[error("{context}: {source}")]
    Context {
        /// What failed (naming the endpoint when one was involved).
        context: String,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },
}

/// `e` and its sources, joined by ": " (tonic's transport errors hide the cause in sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Error {
    /// The gRPC code of a [`Error::Status`]; `None` for client-side errors.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(s) => Some(s.code()),
            Error::Context { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The gRPC message of a [`Error::Status`] (etcd's error string, e.g.
    /// `etcdserver: requested lease not found`).
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Status(s) => Some(s.message()),
            Error::Context { source, .. } => source.message(),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status(Box::new(s))
    }
}
