//! Endpoints, failover, retry with backoff, and the auth token every request carries.
//!
//! Invariants:
//! - The client holds one gRPC channel per endpoint; requests go to the *current* endpoint.
//!   A request that fails with `Unavailable` moves the current endpoint on to the next one
//!   (round robin), so a dead member costs at most one failed attempt per request.
//! - A unary RPC is retried on `Unavailable` only when retrying cannot apply it twice: always
//!   for reads (`Safety::Idempotent`), and for writes only when the request never reached a
//!   server (a connect error). At most [`RetryPolicy::max_retries`] retries, waiting
//!   `base * 2^n` (capped at `max_backoff`, with jitter) before each.
//! - With credentials, a request rejected with `etcdserver: invalid auth token` (the token
//!   expired or the member restarted) re-authenticates once and is sent again.
//! - The token lives in one shared slot: every clone of a client, and every stream it opens
//!   afterwards, sends the newest token.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oxcd_api::etcdserverpb::{auth_client::AuthClient, AuthenticateRequest};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::ConnectOptions;

/// A channel whose requests carry the client's auth token (if any).
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

/// Adds the `token` metadata etcd expects once authentication is enabled.
#[derive(Clone, Default)]
pub struct TokenInterceptor {
    token: Arc<RwLock<Option<MetadataValue<tonic::metadata::Ascii>>>>,
}

impl std::fmt::Debug for TokenInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenInterceptor")
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = self.token.read().expect("token lock").as_ref() {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

/// When a failed unary RPC may be sent again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// The wait before retry number `n` (0-based): `base * 2^n` capped, then 50-100 % of it.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// Whether sending a request twice is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reads and other requests without effects (or with idempotent ones).
    Idempotent,
    /// Writes: retried only if they never left the client.
    Mutating,
}

/// Shared state of every clone of a [`crate::Client`].
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) endpoints: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    pub(crate) token: TokenInterceptor,
    creds: Option<(String, String)>,
    retry: RetryPolicy,
    auth_lock: tokio::sync::Mutex<()>,
}

/// Split comma-separated lists and trim.
pub(crate) fn split_endpoints<I, S>(endpoints: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    endpoints
        .into_iter()
        .flat_map(|s| {
            s.as_ref()
                .split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Turn `host:port`, `http://host:port` or `https://host:port` into a tonic endpoint.
pub(crate) fn endpoint(raw: &str, opts: &ConnectOptions) -> Result<Endpoint> {
    let invalid = |reason: String| Error::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason,
    };
    let tls = opts.tls.is_some();
    let uri = match raw.split_once("://") {
        Some(("http" | "https", _)) => raw.to_string(),
        Some((scheme, _)) => return Err(invalid(format!("unsupported scheme {scheme:?}"))),
        None if tls => format!("https://{raw}"),
        None => format!("http://{raw}"),
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    if parsed.port_u16().is_none() || parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("expected host:port".into()));
    }
    let mut ep = Endpoint::from_shared(uri).map_err(|e| invalid(e.to_string()))?;
    ep = ep.connect_timeout(opts.connect_timeout).tcp_nodelay(true);
    if let Some(t) = opts.request_timeout {
        ep = ep.timeout(t);
    }
    if let Some(k) = opts.keep_alive_interval {
        ep = ep.http2_keep_alive_interval(k).keep_alive_while_idle(true);
    }
    if let Some(t) = &opts.tls {
        ep = crate::tls::apply(ep, t, parsed.host().unwrap_or_default())?;
    }
    Ok(ep)
}

/// Whether a status says the request never reached a server.
fn not_sent(s: &tonic::Status) -> bool {
    if s.code() != tonic::Code::Unavailable {
        return false;
    }
    let m = s.message().to_ascii_lowercase();
    [
        "connect",
        "connection refused",
        "dns error",
        "transport error",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Whether etcd rejected the request's token (expired, or issued before a restart).
pub(crate) fn is_invalid_token(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unauthenticated && s.message().contains("invalid auth token")
}

impl Transport {
    pub(crate) async fn connect(raw: Vec<String>, opts: &ConnectOptions) -> Result<Transport> {
        let eps = raw
            .iter()
            .map(|r| endpoint(r, opts))
            .collect::<Result<Vec<_>>>()?;
        let channels = match eps.as_slice() {
            [] => return Err(Error::NoEndpoints),
            // One endpoint: fail fast and name it.
            [one] => vec![one.connect().await.map_err(|source| Error::Connect {
                endpoint: raw[0].clone(),
                source,
            })?],
            many => many.iter().map(Endpoint::connect_lazy).collect(),
        };
        let t = Transport {
            endpoints: raw,
            channels,
            current: AtomicUsize::new(0),
            token: TokenInterceptor::default(),
            creds: opts.user.clone(),
            retry: opts.retry.clone(),
            auth_lock: tokio::sync::Mutex::new(()),
        };
        if t.creds.is_some() {
            t.authenticate().await?;
        }
        Ok(t)
    }

    pub(crate) fn from_channel(channel: Channel) -> Transport {
        Transport {
            endpoints: vec!["<channel>".into()],
            channels: vec![channel],
            current: AtomicUsize::new(0),
            token: TokenInterceptor::default(),
            creds: None,
            retry: RetryPolicy::none(),
            auth_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The current endpoint's index and its channel (with the token interceptor).
    pub(crate) fn pick(&self) -> (usize, AuthChannel) {
        let i = self.current.load(Ordering::Relaxed) % self.channels.len();
        (
            i,
            InterceptedService::new(self.channels[i].clone(), self.token.clone()),
        )
    }

    /// The endpoint requests currently go to.
    pub(crate) fn current_endpoint(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Move on from endpoint `failed` (unless another request already did).
    pub(crate) fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.channels.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Get a fresh token with the configured credentials (no-op without credentials).
    pub(crate) async fn authenticate(&self) -> Result<()> {
        let Some((name, password)) = &self.creds else {
            return Ok(());
        };
        let _g = self.auth_lock.lock().await;
        let mut last = None;
        for _ in 0..self.channels.len() {
            let (i, _) = self.pick();
            let req = AuthenticateRequest {
                name: name.clone(),
                password: password.clone(),
            };
            match AuthClient::new(self.channels[i].clone())
                .authenticate(req)
                .await
            {
                Ok(r) => {
                    let token = r.into_inner().token;
                    let v = MetadataValue::try_from(token.as_str())
                        .map_err(|e| Error::InvalidArgument(format!("auth token: {e}")))?;
                    *self.token.token.write().expect("token lock") = Some(v);
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    self.fail_over(i);
                    last = Some(s);
                }
                Err(s) => return Err(s.into()),
            }
        }
        Err(last.map(Error::from).unwrap_or(Error::NoEndpoints))
    }

    /// Run a unary RPC with failover, retry and token refresh (see the module invariants).
    pub(crate) async fn unary<R, T, F, Fut>(&self, safety: Safety, req: R, f: F) -> Result<T>
    where
        R: Clone,
        F: Fn(AuthChannel, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut retries = 0;
        let mut refreshed = false;
        loop {
            let (i, ch) = self.pick();
            let status = match f(ch, req.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) => s,
            };
            if is_invalid_token(&status) && self.creds.is_some() && !refreshed {
                refreshed = true;
                self.authenticate().await?;
                continue;
            }
            if status.code() != tonic::Code::Unavailable {
                return Err(status.into());
            }
            self.fail_over(i);
            let retryable = safety == Safety::Idempotent || not_sent(&status);
            if !retryable || retries >= self.retry.max_retries {
                return Err(status.into());
            }
            tokio::time::sleep(self.retry.backoff(retries)).await;
            retries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        for _ in 0..20 {
            let b0 = p.backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b2 = p.backoff(2);
            assert!(b2 >= Duration::from_millis(200) && b2 <= Duration::from_millis(400));
            let b9 = p.backoff(30);
            assert!(b9 >= Duration::from_millis(250) && b9 <= Duration::from_millis(500));
        }
    }

    #[test]
    fn endpoints_are_validated() {
        let o = ConnectOptions::default();
        assert!(endpoint("127.0.0.1:2379", &o).is_ok());
        assert!(endpoint("http://localhost:2379", &o).is_ok());
        for bad in ["localhost", "ftp://x:1", "http://:12", "http://a b:1"] {
            let e = endpoint(bad, &o).unwrap_err();
            assert!(
                matches!(e, Error::InvalidEndpoint { ref endpoint, .. } if endpoint == bad),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            split_endpoints(["a:1, b:2", "", "c:3"]),
            ["a:1", "b:2", "c:3"]
        );
    }

    #[test]
    fn connect_errors_count_as_not_sent() {
        assert!(not_sent(&tonic::Status::unavailable(
            "tcp connect error: Connection refused"
        )));
        assert!(!not_sent(&tonic::Status::unavailable(
            "etcdserver: leader changed"
        )));
        assert!(is_invalid_token(&tonic::Status::unauthenticated(
            "etcdserver: invalid auth token"
        )));
    }
}
