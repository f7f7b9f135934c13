//! clientv3 concurrency's `Mutex`: the lock on `name` is held by the key `name/<lease hex>`
//! with the lowest create revision under `name/`.
//!
//! Invariants:
//! - A lease holds at most one key per lock: locking again with the same lease reuses the
//!   key (the txn's create_revision == 0 compare) and keeps its place in the queue.
//! - A waiter whose wait fails or is abandoned deletes its own key, so it never holds a lock
//!   nobody is waiting for; a waiter whose key vanished (lease expired) gets
//!   `mutex: session is expired`.

use oxcd_api::etcdserverpb::{ResponseHeader, TxnRequest};

use crate::client::{
    create_rev_is, key_range, lease_key, op_get, op_get_key, op_put, range_at, range_by_create,
    V3Client,
};
use crate::error::{Error, Result};
use crate::key::wait_deletes;
use crate::session::{Cleanup, Session};

/// A held lock.
#[derive(Debug)]
pub struct Locked {
    pub key: Vec<u8>,
    pub header: Option<ResponseHeader>,
}

/// `NewMutex(s, name).Lock(ctx)`: blocks until `session` holds the lock on `name`.
pub async fn lock(client: &V3Client, session: Session, name: &[u8]) -> Result<Locked> {
    let mut pfx = name.to_vec();
    pfx.push(b'/');
    let my_key = lease_key(&pfx, session.lease);

    // tryAcquire: enqueue (or find our key) and read the owner in one txn.
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_rev_is(&my_key, 0)],
            success: vec![
                op_put(&my_key, b"", session.lease),
                op_get(range_by_create(&pfx, true)),
            ],
            failure: vec![op_get_key(&my_key), op_get(range_by_create(&pfx, true))],
        })
        .await?;
    let mut my_rev = resp.header.as_ref().map_or(0, |h| h.revision);
    if !resp.succeeded {
        let mine = range_at(&resp, 0)?
            .kvs
            .first()
            .ok_or(Error::Malformed("txn"))?;
        my_rev = mine.create_revision;
    }
    let owner = &range_at(&resp, 1)?.kvs;
    if owner.first().is_none_or(|kv| kv.create_revision == my_rev) {
        return Ok(Locked {
            key: my_key,
            header: resp.header,
        });
    }

    // Wait for every earlier waiter; give our key back if we stop waiting.
    let cleanup = {
        let (c, k) = (client.clone(), my_key.clone());
        Cleanup::new(async move {
            if let Err(e) = c.delete(k).await {
                tracing::warn!(error = %e, "deleting an abandoned lock key");
            }
        })
    };
    if let Err(e) = wait_deletes(client, &pfx, my_rev - 1).await {
        cleanup.run().await;
        return Err(e);
    }
    // Make sure the session has not expired: our key must still exist.
    let got = match client.range(key_range(&my_key)).await {
        Ok(g) => g,
        Err(e) => {
            cleanup.run().await;
            return Err(e);
        }
    };
    cleanup.disarm();
    if got.kvs.is_empty() {
        return Err(Error::SessionExpired);
    }
    Ok(Locked {
        key: my_key,
        header: got.header,
    })
}
