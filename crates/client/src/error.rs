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
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status(Box::new(s))
    }
}
