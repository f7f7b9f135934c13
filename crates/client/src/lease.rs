//! Lease keep-alive over one bidirectional gRPC stream.
//!
//! Invariants:
//! - A [`LeaseKeepAlive`] belongs to exactly one lease id; every request it sends names it.
//! - Responses come back in request order on one stream, so [`LeaseKeepAlive::keep_alive`]
//!   (send one, read one) pairs them up as long as it is the only user of the stream.
//! - A response with TTL <= 0 means the lease is gone: [`Error::LeaseExpired`].

use oxcd_api::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// A keep-alive stream for one lease.
pub struct LeaseKeepAlive {
    pub(crate) id: i64,
    pub(crate) tx: mpsc::Sender<LeaseKeepAliveRequest>,
    pub(crate) rx: tonic::Streaming<LeaseKeepAliveResponse>,
}

impl LeaseKeepAlive {
    /// The lease this stream keeps alive.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Send one keep-alive request without waiting for its answer.
    pub async fn send(&self) -> Result<()> {
        self.tx
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Error::StreamClosed("lease keep-alive"))
    }

    /// Read the next keep-alive answer and return the lease's new TTL in seconds.
    pub async fn recv(&mut self) -> Result<i64> {
        match self.rx.message().await? {
            Some(resp) if resp.ttl > 0 => Ok(resp.ttl),
            Some(_) => Err(Error::LeaseExpired(self.id)),
            None => Err(Error::StreamClosed("lease keep-alive")),
        }
    }

    /// Refresh the lease once (send, then wait for the answer); returns the new TTL.
    pub async fn keep_alive(&mut self) -> Result<i64> {
        self.send().await?;
        self.recv().await
    }
}

impl std::fmt::Debug for LeaseKeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeepAlive")
            .field("id", &self.id)
            .finish()
    }
}
