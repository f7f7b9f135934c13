//! clientv3 concurrency's `Election`: candidates of election `name` are the keys
//! `name/<lease hex>`; the leader is the one with the lowest create revision, and a leader
//! is identified by (key, create revision) so a re-created key is not the old leader.
//!
//! Invariants:
//! - Campaign returns only once every candidate created before ours is gone; a campaign
//!   abandoned while waiting resigns (deletes its key if it is still the same key).
//! - Proclaim and Resign act only on the exact (key, create revision) they are given.
//! - Observe reports the current leader, then every value it proclaims, then the next leader
//!   after it goes, in revision order.

use oxcd_api::etcdserverpb::{ResponseHeader, TxnRequest, WatchCreateRequest};
use oxcd_api::mvccpb::event::EventType;
use oxcd_api::mvccpb::KeyValue;
use tokio::sync::mpsc;

use crate::client::{
    create_rev_is, lease_key, op_delete, op_get_key, op_put, prefix_end, range_at, range_by_create,
    V3Client,
};
use crate::error::{Error, Result};
use crate::key::wait_deletes;
use crate::session::{Cleanup, Session};

/// A leader's identity (v3electionpb's LeaderKey without the name).
#[derive(Clone, Debug)]
pub struct Leadership {
    pub key: Vec<u8>,
    pub rev: i64,
    pub lease: i64,
}

fn prefix(name: &[u8]) -> Vec<u8> {
    let mut pfx = name.to_vec();
    pfx.push(b'/');
    pfx
}

/// `NewElection(s, name).Campaign(ctx, val)`: blocks until `session` leads `name`; returns
/// the leadership and the header of the txn that entered the campaign.
pub async fn campaign(
    client: &V3Client,
    session: Session,
    name: &[u8],
    val: &[u8],
) -> Result<(Leadership, Option<ResponseHeader>)> {
    let pfx = prefix(name);
    let k = lease_key(&pfx, session.lease);
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_rev_is(&k, 0)],
            success: vec![op_put(&k, val, session.lease)],
            failure: vec![op_get_key(&k)],
        })
        .await?;
    let mut me = Leadership {
        key: k,
        rev: resp.header.as_ref().map_or(0, |h| h.revision),
        lease: session.lease,
    };
    if !resp.succeeded {
        let kv = range_at(&resp, 0)?
            .kvs
            .first()
            .ok_or(Error::Malformed("txn"))?;
        me.rev = kv.create_revision;
        if kv.value != val {
            if let Err(e) = proclaim(client, &me, val).await {
                // Resign's own result is dropped, as in clientv3.
                let _ = resign(client, &me).await;
                return Err(e);
            }
        }
    }

    let cleanup = {
        let (c, l) = (client.clone(), me.clone());
        Cleanup::new(async move {
            if let Err(e) = resign(&c, &l).await {
                tracing::warn!(error = %e, "resigning an abandoned campaign");
            }
        })
    };
    let waited = wait_deletes(client, &pfx, me.rev - 1).await;
    // Only a cancelled campaign resigns; a failed wait leaves the key (clientv3).
    cleanup.disarm();
    waited?;
    Ok((me, resp.header))
}

/// `Proclaim`: puts `val` on the leader key if it is still `leader`'s.
pub async fn proclaim(
    client: &V3Client,
    leader: &Leadership,
    val: &[u8],
) -> Result<Option<ResponseHeader>> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_rev_is(&leader.key, leader.rev)],
            success: vec![op_put(&leader.key, val, leader.lease)],
            failure: vec![],
        })
        .await?;
    if !resp.succeeded {
        return Err(Error::ElectionNotLeader);
    }
    Ok(resp.header)
}

/// `Resign`: deletes the leader key if it is still `leader`'s.
pub async fn resign(client: &V3Client, leader: &Leadership) -> Result<Option<ResponseHeader>> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_rev_is(&leader.key, leader.rev)],
            success: vec![op_delete(&leader.key)],
            failure: vec![],
        })
        .await?;
    Ok(resp.header)
}

/// `Leader`: the current leader's key-value and the read's header.
pub async fn leader(client: &V3Client, name: &[u8]) -> Result<(Option<ResponseHeader>, KeyValue)> {
    let mut resp = client.range(range_by_create(&prefix(name), true)).await?;
    if resp.kvs.is_empty() {
        return Err(Error::ElectionNoLeader);
    }
    Ok((resp.header, resp.kvs.swap_remove(0)))
}

/// One observation: a header and the leader's key-value at that revision.
pub type Observation = (Option<ResponseHeader>, KeyValue);

/// `observe`: sends every leader change of `name` to `tx` until a read or watch fails, the
/// watch ends, or the receiver is dropped. Errors end it silently, as in clientv3.
pub async fn observe(client: &V3Client, name: &[u8], tx: &mpsc::Sender<Observation>) {
    let pfx = prefix(name);
    // Every pass handles one leader; bounded so a misbehaving server cannot spin forever.
    for _ in 0..u64::MAX {
        let Ok(resp) = client.range(range_by_create(&pfx, true)).await else {
            return;
        };
        let (hdr, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => {
                // Wait for the first put on the prefix (a delete would make this spin).
                let start = resp.header.as_ref().map_or(0, |h| h.revision);
                let Ok(mut w) = client
                    .watch(WatchCreateRequest {
                        key: pfx.clone(),
                        range_end: prefix_end(&pfx),
                        start_revision: start,
                        ..Default::default()
                    })
                    .await
                else {
                    return;
                };
                loop {
                    let Ok(Some(wr)) = w.next().await else {
                        return;
                    };
                    let put = wr
                        .events
                        .into_iter()
                        .find(|ev| ev.r#type == EventType::Put as i32)
                        .and_then(|ev| ev.kv);
                    if let Some(kv) = put {
                        let mut hdr = wr.header.unwrap_or_default();
                        // The batch may hold several revisions; report the put's own.
                        hdr.revision = kv.mod_revision;
                        break (Some(hdr), kv);
                    }
                }
            }
        };
        if tx.send((hdr, kv.clone())).await.is_err() {
            return;
        }

        // Follow this leader's proclamations until its key is deleted.
        let from = hdr.map_or(0, |h| h.revision) + 1;
        let Ok(mut w) = client
            .watch(WatchCreateRequest {
                key: kv.key.clone(),
                start_revision: from,
                ..Default::default()
            })
            .await
        else {
            return;
        };
        'leader: loop {
            let wr = match w.next().await {
                Ok(Some(wr)) => wr,
                // clientv3 skips error responses here and ends only when the channel closes.
                Ok(None) | Err(_) => return,
            };
            for ev in wr.events {
                if ev.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let Some(kv) = ev.kv else { continue };
                if tx.send((wr.header, kv)).await.is_err() {
                    return;
                }
            }
        }
    }
}
