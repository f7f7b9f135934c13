//! Serving a listener: both protocols on one port as etcd's cmux does ([`serve`]), or HTTP
//! only ([`serve_http`]) for `--listen-client-http-urls` and `--listen-metrics-urls`.
//!
//! Invariants:
//! - A request goes to the gRPC [`Routes`] iff it is HTTP/2 with a `application/grpc*` content
//!   type (etcd's test); everything else goes to the HTTP router. The gRPC path hands hyper's
//!   body to tonic and tonic's body back to hyper unchanged (an `Either`, no copy, no boxing
//!   of the stream).
//! - HTTP/1.1 and HTTP/2 with prior knowledge (what gRPC clients send) share the port; the
//!   protocol is told from the first bytes, which must arrive within
//!   [`ServeConfig::header_read_timeout`], as must every HTTP/1 request's headers.
//! - A gRPC request's `grpc-timeout` bounds the wait for its response, as under tonic's
//!   server (which the `Routes` alone do not do).
//! - Each request carries the connection's [`Connected::connect_info`] as an extension, as
//!   under tonic's own server (`Request::remote_addr` keeps working).
//! - On shutdown no connection is accepted any more; open ones are asked to finish
//!   (HTTP/2 GOAWAY, HTTP/1 close after the current request) and are closed after
//!   [`ServeConfig::shutdown_grace`] (watch streams never end on their own).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use futures::{Stream, StreamExt};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tower::{Service, ServiceExt};

use crate::error::{is_grpc, Error};
use crate::rewind::Rewind;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Transport settings of a served listener.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Time a new connection has to send its first bytes, and an HTTP/1 request its headers
    /// (slow-loris bound).
    pub header_read_timeout: Duration,
    /// HTTP/2 streams per connection (etcd: `--max-concurrent-streams`, default unlimited).
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 server pings (etcd: `--grpc-keepalive-interval`, 2h; oxcd used 60 s).
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered (etcd: `--grpc-keepalive-timeout`, 20 s).
    pub http2_keepalive_timeout: Duration,
    /// After shutdown is signalled, how long open connections may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(30),
            max_concurrent_streams: Some(u32::MAX),
            http2_keepalive_interval: Some(Duration::from_secs(60)),
            http2_keepalive_timeout: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// Per-connection dispatch between gRPC and HTTP.
#[derive(Clone)]
struct Dispatch<C> {
    grpc: Option<Routes>,
    http: Router,
    info: C,
}

type DispatchBody = Either<tonic::body::Body, axum::body::Body>;

impl<C: Clone + Send + Sync + 'static> Service<http::Request<Incoming>> for Dispatch<C> {
    type Response = http::Response<DispatchBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        match &self.grpc {
            Some(grpc) if is_grpc(&req) => {
                let deadline = grpc_timeout(req.headers());
                let fut = grpc.clone().oneshot(req);
                Box::pin(async move {
                    let resp = match deadline {
                        None => fut.await?,
                        Some(d) => match tokio::time::timeout(d, fut).await {
                            Ok(r) => r?,
                            Err(_) => {
                                tonic::Status::deadline_exceeded("Timeout expired").into_http()
                            }
                        },
                    };
                    Ok(resp.map(Either::Left))
                })
            }
            _ => {
                let fut = self.http.clone().oneshot(req);
                Box::pin(async move { Ok(fut.await?.map(Either::Right)) })
            }
        }
    }
}

/// The client's `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit), which
/// tonic's own server enforces until the response starts; so does this one.
fn grpc_timeout(h: &http::HeaderMap) -> Option<Duration> {
    let v = h.get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    if n.is_empty() || n.len() > 8 {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Serves every connection of `incoming` with both protocols: gRPC requests to `grpc`,
/// everything else to `http` (normally [`crate::router`] over the same `grpc`). Returns once
/// `shutdown` resolved and open connections finished or the grace period passed.
///
/// `incoming` may yield plain TCP streams, TLS streams or adapters around them; accept errors
/// are logged and skipped.
pub async fn serve<I, IO, E>(
    incoming: I,
    grpc: Routes,
    http: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    I: Stream<Item = Result<IO, E>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    E: Into<BoxError>,
{
    run(incoming, Some(grpc), http, cfg, shutdown).await
}

/// As [`serve`], HTTP only (etcd's `--listen-client-http-urls`, `--listen-metrics-urls`).
pub async fn serve_http<I, IO, E>(
    incoming: I,
    http: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    I: Stream<Item = Result<IO, E>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    E: Into<BoxError>,
{
    run(incoming, None, http, cfg, shutdown).await
}

fn builder(cfg: &ServeConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .keep_alive_interval(cfg.http2_keepalive_interval)
        .keep_alive_timeout(cfg.http2_keepalive_timeout);
    b
}

async fn run<I, IO, E>(
    incoming: I,
    grpc: Option<Routes>,
    http: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    I: Stream<Item = Result<IO, E>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    E: Into<BoxError>,
{
    let builder = builder(&cfg);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    // Owned, so dropping it closes the listener before the grace period.
    let mut incoming = Box::pin(incoming);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            next = incoming.next() => match next {
                None => break,
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    tracing::warn!(error = %e, "accepting a connection failed");
                    // E.g. out of file descriptors: give connections time to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(Ok(io)) => {
                    let svc = Dispatch { grpc: grpc.clone(), http: http.clone(), info: io.connect_info() };
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    let timeout = cfg.header_read_timeout;
                    conns.spawn(async move {
                        let io = match Rewind::read_preface(io, timeout).await {
                            Ok(io) => io,
                            Err(e) => {
                                tracing::debug!(error = %e, "closing a connection that sent no request");
                                return;
                            }
                        };
                        let conn = builder
                            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc))
                            .into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
            },
        }
    }
    drop(incoming);
    if tokio::time::timeout(cfg.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closing connections still open after the shutdown grace period");
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let t = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(t("5S"), Some(Duration::from_secs(5)));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(t("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(t("123456789S"), None, "at most 8 digits");
        assert_eq!(t("S"), None);
        assert_eq!(t("5x"), None);
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }
}
