//! clientv3's `concurrency` recipes built from KV, Watch and Lease alone, so they work on
//! any etcd v3 server: [`Session`] (a lease kept alive in the background), [`Mutex`],
//! [`Election`] and software transactional memory ([`stm`]).
//!
//! Invariants (shared by the recipes, as in clientv3):
//! - A waiter's key is `<prefix>/<lease id in hex>`, attached to its session's lease, so a
//!   crashed holder's key disappears when its lease expires.
//! - Waiters are ordered by the create revision of their keys: the owner is the key with the
//!   lowest one; each waiter waits only for the deletion of keys created before its own
//!   (no thundering herd), then re-checks.

mod election;
mod mutex;
mod session;
pub mod stm;

pub use election::Election;
pub use mutex::Mutex;
pub use session::{Session, SessionOptions};
pub use stm::{run_stm, Isolation, Stm, StmOptions};

use crate::{pb, Client, Error, EventType, Result, WatchOptions};

/// Wait until every key under `prefix` created at or before `max_create_rev` is deleted.
pub(crate) async fn wait_deletes(
    client: &Client,
    prefix: &[u8],
    max_create_rev: i64,
) -> Result<()> {
    loop {
        let req = pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: crate::prefix_end(prefix),
            limit: 1,
            sort_order: pb::range_request::SortOrder::Descend as i32,
            sort_target: pb::range_request::SortTarget::Create as i32,
            max_create_revision: max_create_rev,
            ..Default::default()
        };
        let resp = client.range_raw(req).await?;
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Ok(());
        };
        let rev = resp.header.map(|h| h.revision).unwrap_or(0);
        wait_delete(client, &kv.key, rev).await?;
    }
}

/// Wait until `key` is deleted (watching from `rev + 1`).
pub(crate) async fn wait_delete(client: &Client, key: &[u8], rev: i64) -> Result<()> {
    let opts = WatchOptions {
        start_revision: rev + 1,
        ..Default::default()
    };
    let (_w, mut stream) = client.watch(key.to_vec(), &opts).await?;
    loop {
        let Some(resp) = stream.message().await? else {
            return Err(Error::StreamClosed("watch"));
        };
        if resp.canceled {
            return Err(Error::WatchCanceled(resp.cancel_reason));
        }
        if resp
            .events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
}

/// The key with the lowest create revision under `prefix`, if any.
pub(crate) async fn first_created(
    client: &Client,
    prefix: &[u8],
) -> Result<Option<crate::KeyValue>> {
    let req = pb::RangeRequest {
        key: prefix.to_vec(),
        range_end: crate::prefix_end(prefix),
        limit: 1,
        sort_order: pb::range_request::SortOrder::Ascend as i32,
        sort_target: pb::range_request::SortTarget::Create as i32,
        ..Default::default()
    };
    Ok(client.range_raw(req).await?.kvs.into_iter().next())
}
