//! `/metrics`: the Prometheus text exposition of the `prometheus` crate's default registry.
//!
//! Invariant: this module only exports; the crates that own metrics register them in the
//! default registry. Process metrics (`process_*`) come with the crate's `process` feature.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};

async fn metrics() -> Response<Body> {
    let enc = TextEncoder::new();
    let mut buf = Vec::new();
    let (status, body) = match enc.encode(&prometheus::gather(), &mut buf) {
        Ok(()) => (StatusCode::OK, buf),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n").into_bytes(),
        ),
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(enc.format_type()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub(crate) fn routes() -> Router {
    Router::new().route("/metrics", get(metrics))
}
