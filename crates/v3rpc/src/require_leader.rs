//! etcd's require-leader (clientv3's `WithRequireLeader`): a request whose gRPC metadata
//! has `hasleader: true` fails at once with `Unavailable` "etcdserver: no leader" while this
//! member knows no leader, instead of waiting for one; a watch stream opened so is ended
//! with that error after three election timeouts without a leader (see `services::watch`).
//!
//! Invariant: a request without the metadata is never touched.

use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use oxcd_api::EtcdError;
use oxcd_etcdserver::EtcdServer;
use tonic::Status;

/// The metadata key (`rpctypes.MetadataRequireLeaderKey`).
pub const METADATA_KEY: &str = "hasleader";

/// Whether request headers ask for require-leader.
pub fn requested(headers: &http::HeaderMap) -> bool {
    headers
        .get(METADATA_KEY)
        .is_some_and(|v| v.as_bytes() == b"true")
}

#[derive(Clone)]
pub struct RequireLeaderLayer(pub Arc<EtcdServer>);

impl<S> tower::Layer<S> for RequireLeaderLayer {
    type Service = RequireLeader<S>;
    fn layer(&self, inner: S) -> RequireLeader<S> {
        RequireLeader {
            inner,
            server: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequireLeader<S> {
    inner: S,
    server: Arc<EtcdServer>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RequireLeader<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if requested(req.headers()) && !self.server.has_leader() {
            let st = Status::from(EtcdError::NoLeader);
            return Either::Left(ready(Ok(st.into_http())));
        }
        Either::Right(self.inner.call(req))
    }
}

/// Resolves once this member has gone three election timeouts in a row without a leader
/// (etcd's `monitorLeader`, `maxNoLeaderCnt = 3`).
pub async fn leader_lost(server: Arc<EtcdServer>) {
    let tick = server.settings().election_timeout;
    let mut misses = 0;
    loop {
        tokio::time::sleep(tick).await;
        if server.has_leader() {
            misses = 0;
        } else {
            misses += 1;
            if misses >= 3 {
                return;
            }
        }
    }
}
