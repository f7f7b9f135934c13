//! `KV.RangeStream` (etcd 3.7): a Range answered in chunks, so neither side holds the whole
//! result.
//!
//! Invariants:
//! - The revision is pinned at the first chunk (the request's revision, else the store's
//!   at that moment); every chunk reads at it, so the merged chunks equal the unary Range
//!   at that revision. A compaction that overtakes it ends the stream with `Compacted`.
//! - The first chunk holds at most [`FIRST_CHUNK_KEYS`] keys; later chunks double while a
//!   chunk's encoded size stays under half of `--max-request-bytes` and halve above twice
//!   it. Only the last chunk carries the header, `more` and `count`.
//! - Memory is bounded by the channel: at most [`CHANNEL_CHUNKS`] chunks wait for a slow
//!   client, and a store view lives only while one chunk is read.
//! - Auth is checked once, on the whole requested range, before the first chunk.
//! - A non-default sort or any min/max revision filter is `Unimplemented`, as in etcd.

use std::sync::Arc;

use oxcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxcd_api::etcdserverpb::{RangeRequest, RangeResponse};
use oxcd_api::EtcdError;
use oxcd_auth::AuthInfo;
use prost::Message;
use tokio::sync::mpsc;

use crate::server::EtcdServer;

/// etcd 3.7's first chunk size.
pub const FIRST_CHUNK_KEYS: i64 = 10;
/// Chunks read ahead of a slow client.
const CHANNEL_CHUNKS: usize = 2;

/// Where a stream is: the pinned revision and what is left to send.
struct Cursor {
    req: RangeRequest,
    next_key: Vec<u8>,
    /// The keys to send in all (the count, capped by the request's limit).
    to_send: i64,
    sent: i64,
    count: i64,
    chunk: i64,
    /// The store's revision at the first chunk, for the final header.
    header_rev: i64,
}

impl EtcdServer {
    /// Validates, waits for a linearizable read point (unless serializable), checks auth and
    /// reads the first chunk; the rest is read by a task as the client takes chunks.
    pub async fn range_stream(
        self: &Arc<Self>,
        info: &AuthInfo,
        req: RangeRequest,
    ) -> Result<mpsc::Receiver<Result<RangeResponse, EtcdError>>, EtcdError> {
        oxcd_mvcc::validate::check_range_request(&req)?;
        let sorted =
            req.sort_order != SortOrder::None as i32 || req.sort_target != SortTarget::Key as i32;
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        if sorted || filtered {
            return Err(EtcdError::Unimplemented(
                "KV.RangeStream with a sort order or a revision filter",
            ));
        }
        if !req.serializable {
            self.check_not_learner()?;
            self.linearizable_read_notify().await?;
        }
        self.auth.check_range(info, &req)?;

        // The first chunk: pins the revision and learns the count.
        let (first, header_rev) = {
            let view = self.store.read().map_err(EtcdError::from)?;
            let header_rev = oxcd_mvcc::ReadView::rev(&view);
            let mut first_req = req.clone();
            first_req.limit = if req.limit > 0 {
                req.limit.min(FIRST_CHUNK_KEYS)
            } else {
                FIRST_CHUNK_KEYS
            };
            if req.count_only {
                first_req.limit = 0;
            }
            (oxcd_mvcc::kv_apply::range(&view, &first_req)?, header_rev)
        };
        let pinned = if req.revision > 0 {
            req.revision
        } else {
            header_rev
        };
        let count = first.count;
        let mut cur = Cursor {
            to_send: if req.count_only {
                0
            } else if req.limit > 0 {
                req.limit.min(count)
            } else {
                count
            },
            next_key: req.key.clone(),
            req: RangeRequest {
                revision: pinned,
                serializable: true,
                ..req
            },
            sent: 0,
            count,
            chunk: FIRST_CHUNK_KEYS,
            header_rev,
        };
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let first = cur.take(first.kvs, self.settings.max_request_bytes);
        let done = first.header.is_some();
        let first = self.finish(first);
        if tx.send(Ok(first)).await.is_err() || done {
            return Ok(rx);
        }
        let server = self.clone();
        tokio::spawn(async move {
            loop {
                let r = server.next_chunk(&mut cur);
                let last = matches!(&r, Ok(c) if c.header.is_some()) || r.is_err();
                if tx.send(r.map(|c| server.finish(c))).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(rx)
    }

    fn next_chunk(&self, cur: &mut Cursor) -> Result<RangeResponse, EtcdError> {
        let view = self.store.read().map_err(EtcdError::from)?;
        let req = RangeRequest {
            key: cur.next_key.clone(),
            limit: cur.chunk.min(cur.to_send - cur.sent).max(1),
            ..cur.req.clone()
        };
        let r = oxcd_mvcc::kv_apply::range(&view, &req)?;
        drop(view);
        Ok(cur.take(r.kvs, self.settings.max_request_bytes))
    }

    fn finish(&self, mut chunk: RangeResponse) -> RangeResponse {
        if let Some(h) = chunk.header.as_mut() {
            *h = self.header(h.revision);
        }
        chunk
    }
}

impl Cursor {
    /// Turns the kvs just read into the next chunk (the last one gets header, more and
    /// count) and sizes the chunk after it.
    fn take(
        &mut self,
        kvs: Vec<oxcd_api::mvccpb::KeyValue>,
        max_request_bytes: usize,
    ) -> RangeResponse {
        let kvs: Vec<_> = kvs
            .into_iter()
            .take((self.to_send - self.sent).max(0) as usize)
            .collect();
        self.sent += kvs.len() as i64;
        if let Some(kv) = kvs.last() {
            self.next_key = [kv.key.as_slice(), &[0]].concat();
        }
        let bytes: usize = kvs.iter().map(|kv| kv.encoded_len()).sum();
        if bytes < max_request_bytes / 2 {
            self.chunk = self.chunk.saturating_mul(2);
        } else if bytes > max_request_bytes.saturating_mul(2) {
            self.chunk = (self.chunk / 2).max(1);
        }
        let last = self.sent >= self.to_send || kvs.is_empty();
        RangeResponse {
            header: last.then(|| oxcd_api::etcdserverpb::ResponseHeader {
                revision: self.header_rev,
                ..Default::default()
            }),
            kvs,
            // As the unary Range: only a limit leaves keys unsent.
            more: last && self.req.limit > 0 && self.count > self.req.limit,
            count: if last { self.count } else { 0 },
        }
    }
}
