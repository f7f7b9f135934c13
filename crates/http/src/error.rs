//! This crate's error type, and the gateway's error answers in grpc-gateway v1's shape
//! (`{"error","message","code"}` with the gRPC code number and the HTTP status grpc-gateway v1
//! maps it to), as etcd 3.4's gateway sends them.
//!
//! Invariant: every failure of a gateway request leaves through [`status_response`] (unary,
//! before a stream starts) or [`stream_error_chunk`] (inside a stream).

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use tonic::{Code, Status};

/// Failures of serving a listener.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Accepting a connection failed in a way that ends the listener.
    #[error("accept: {0}")]
    Accept(String),
}

/// grpc-gateway v1's `HTTPStatusFromCode` (etcd 3.4 uses grpc-gateway v1.9).
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's unary error body; field order as etcd's gateway writes it.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

/// grpc-gateway's in-stream error (`StreamError` with proto field names).
#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

/// A JSON error answer with an explicit HTTP status (for failures that never reached gRPC).
pub(crate) fn error_response(http: StatusCode, code: Code, message: &str) -> Response<Body> {
    let body = serde_json::to_vec(&ErrorBody {
        error: message,
        message,
        code: code as i32,
    })
    .unwrap_or_default();
    json_bytes(http, body)
}

/// The answer to a request that failed with `status`.
pub(crate) fn status_response(status: &Status) -> Response<Body> {
    error_response(http_status(status.code()), status.code(), status.message())
}

/// Why the gateway refused a request before calling gRPC.
pub(crate) enum Reject {
    /// Undecodable body or header (grpc-gateway: InvalidArgument, 400).
    BadRequest(String),
    /// Body above the limit (413).
    TooLarge(usize),
}

impl Reject {
    pub(crate) fn into_response(self) -> Response<Body> {
        match self {
            Reject::BadRequest(m) => bad_request(&m),
            Reject::TooLarge(limit) => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::ResourceExhausted,
                &format!("http: request body too large (limit {limit} bytes)"),
            ),
        }
    }
}

/// A request the gateway could not decode (grpc-gateway: InvalidArgument, 400).
pub(crate) fn bad_request(message: &str) -> Response<Body> {
    error_response(StatusCode::BAD_REQUEST, Code::InvalidArgument, message)
}

/// `{"error":{…}}\n`: how grpc-gateway ends a stream that failed after it started.
pub(crate) fn stream_error_chunk(status: &Status) -> bytes::Bytes {
    let http = http_status(status.code());
    #[derive(Serialize)]
    struct Chunk<'a> {
        error: StreamError<'a>,
    }
    let mut v = serde_json::to_vec(&Chunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    })
    .unwrap_or_default();
    v.push(b'\n');
    v.into()
}

pub(crate) fn json_bytes(http: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = http;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Unknown path: 404 with a JSON error (etcd answers a plain-text "Not Found").
pub(crate) async fn not_found() -> Response<Body> {
    error_response(StatusCode::NOT_FOUND, Code::NotFound, "Not Found")
}

/// A known path asked with another method than POST.
pub(crate) async fn method_not_allowed() -> Response<Body> {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        "Method Not Allowed",
    )
}

/// etcd's CORS headers on every answer; a preflight `OPTIONS` is answered 200 empty.
pub(crate) async fn cors(method: Method, mut r: Response<Body>) -> Response<Body> {
    if method == Method::OPTIONS {
        r = Response::new(Body::empty());
    }
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    r
}

/// Whether a request is gRPC (etcd's cmux test: HTTP/2 and a gRPC content type).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}
