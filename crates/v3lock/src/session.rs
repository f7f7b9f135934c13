//! clientv3 concurrency's `Session` as v3lock/v3election use it, and the cleanup a waiter
//! owes when its caller goes away.
//!
//! Invariants:
//! - A session with lease 0 grants a lease of [`DEFAULT_SESSION_TTL`] seconds; any other
//!   lease is used as given (the servers pass -1 for read-only calls). etcd's servers orphan
//!   the session at once, so its keep-alive never matters and none is sent here.
//! - A [`Cleanup`] that is dropped armed (the request future was cancelled: the client went
//!   away or its deadline passed) runs its cleanup on a spawned task, as clientv3 does with
//!   `client.Ctx()` after the request's context is done.

use std::future::Future;
use std::pin::Pin;

use crate::client::V3Client;
use crate::error::Result;

/// clientv3 concurrency's `defaultSessionTTL`, in seconds.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// The lease a recipe's keys are bound to.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub lease: i64,
}

impl Session {
    /// `concurrency.NewSession(c, WithLease(lease))` followed by `Orphan()`.
    pub async fn new(client: &V3Client, lease: i64) -> Result<Session> {
        if lease != 0 {
            return Ok(Session { lease });
        }
        let resp = client.grant(DEFAULT_SESSION_TTL).await?;
        Ok(Session { lease: resp.id })
    }
}

type CleanupFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A cleanup step that must run even if the request is abandoned.
pub struct Cleanup(Option<CleanupFuture>);

impl Cleanup {
    pub fn new(f: impl Future<Output = ()> + Send + 'static) -> Cleanup {
        Cleanup(Some(Box::pin(f)))
    }

    /// The step is no longer owed.
    pub fn disarm(mut self) {
        self.0 = None;
    }

    /// Runs the step now (an error path that still has its caller).
    pub async fn run(mut self) {
        if let Some(f) = self.0.take() {
            f.await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(f);
                }
                Err(_) => tracing::warn!("no runtime to clean up an abandoned lock/election key"),
            }
        }
    }
}
