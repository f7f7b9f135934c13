//! A session: one lease kept alive in the background for as long as the session lives.
//!
//! Invariants:
//! - The keep-alive task refreshes the lease every TTL/3 and re-opens its stream (on the next
//!   endpoint) when it breaks; it stops when the lease is gone or the session is closed.
//! - [`Session::is_done`] turns true exactly when the task stopped: from then on, keys held
//!   under the lease must be assumed lost.
//! - Dropping a session stops the keep-alive (the lease then expires after its TTL);
//!   [`Session::close`] revokes it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Client, Error, Result};

/// Settings of a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Lease TTL in seconds (clientv3's default: 60).
    pub ttl: i64,
    /// Use this existing lease instead of granting one.
    pub lease: Option<i64>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ttl: 60,
            lease: None,
        }
    }
}

/// A lease with a background keep-alive.
#[derive(Debug)]
pub struct Session {
    client: Client,
    lease: i64,
    done: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Session {
    /// Grant a lease (or adopt `opts.lease`) and start keeping it alive.
    pub async fn new(client: &Client, opts: SessionOptions) -> Result<Session> {
        if opts.ttl <= 0 {
            return Err(Error::InvalidArgument(format!(
                "session ttl {} <= 0",
                opts.ttl
            )));
        }
        let (lease, ttl) = match opts.lease {
            Some(id) => (id, opts.ttl),
            None => {
                let r = client.lease_grant(opts.ttl, 0).await?;
                (r.id, r.ttl)
            }
        };
        let ka = client.lease_keep_alive(lease).await?;
        let (tx, done) = watch::channel(false);
        let c = client.clone();
        let tx = Arc::new(tx);
        let task = tokio::spawn(async move {
            keep_alive_loop(c, lease, ttl, ka).await;
            let _ = tx.send(true);
        });
        Ok(Session {
            client: client.clone(),
            lease,
            done,
            task,
        })
    }

    /// The session's lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The client the session was made with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the keep-alive stopped (lease expired or revoked).
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Wait until the session ends.
    pub async fn done(&self) {
        let mut d = self.done.clone();
        let _ = d.wait_for(|v| *v).await;
    }

    /// Stop the keep-alive and revoke the lease (deleting every key attached to it).
    pub async fn close(self) -> Result<()> {
        self.task.abort();
        match self.client.lease_revoke(self.lease).await {
            Ok(_) => Ok(()),
            // Already gone: the session is over either way.
            Err(e) if e.message().is_some_and(|m| m.contains("lease not found")) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep_alive_loop(c: Client, lease: i64, ttl: i64, mut ka: crate::LeaseKeepAlive) {
    let period =
        Duration::from_millis((ttl.max(1) as u64 * 1000) / 3).max(Duration::from_millis(200));
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(period).await;
        match ka.keep_alive().await {
            Ok(_) => failures = 0,
            Err(Error::LeaseExpired(_)) => return,
            Err(_) => {
                // The stream broke: reopen it elsewhere while the lease may still live.
                c.fail_over();
                failures += 1;
                if u64::from(failures) * period.as_secs().max(1) > ttl as u64 + 1 {
                    return;
                }
                match c.lease_keep_alive(lease).await {
                    Ok(k) => ka = k,
                    Err(Error::LeaseExpired(_)) => return,
                    Err(_) => {}
                }
            }
        }
    }
}
