//! clientv3 concurrency's `waitDelete`/`waitDeletes`: block until every key under a prefix
//! created at or below a revision is gone.
//!
//! Invariant: each wait watches from the revision of the read that found the key, so a
//! delete between the read and the watch is still seen.

use oxcd_api::etcdserverpb::{RangeRequest, ResponseHeader, WatchCreateRequest};
use oxcd_api::mvccpb::event::EventType;

use crate::client::{range_by_create, V3Client};
use crate::error::{Error, Result};

/// Waits for a DELETE of `key` at or after revision `rev`.
pub async fn wait_delete(client: &V3Client, key: &[u8], rev: i64) -> Result<()> {
    let mut w = client
        .watch(WatchCreateRequest {
            key: key.to_vec(),
            start_revision: rev,
            ..Default::default()
        })
        .await?;
    while let Some(wr) = w.next().await? {
        if wr
            .events
            .iter()
            .any(|ev| ev.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
    Err(Error::LostWatcher)
}

/// Waits until no key under `pfx` has a create revision `<= max_create_rev`; returns the
/// header of the read that found none.
pub async fn wait_deletes(
    client: &V3Client,
    pfx: &[u8],
    max_create_rev: i64,
) -> Result<Option<ResponseHeader>> {
    loop {
        let resp = client
            .range(RangeRequest {
                max_create_revision: max_create_rev,
                ..range_by_create(pfx, false)
            })
            .await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(resp.header);
        };
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        wait_delete(client, &last.key, rev).await?;
    }
}
