//! The in-process etcd client the recipes run on (etcd's `v3client`): tonic's generated
//! KV/Lease/Watch clients whose transport is a [`Routes`] holding the server's own services,
//! so a request takes the same path (auth, quotas, Raft) as one from the network.
//!
//! Invariants: every call carries the `token` metadata of the request that caused it, so
//! the caller's identity applies to the inner calls; a [`Watcher`] cancels its watch by
//! closing its request stream when dropped.

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::watch_client::WatchClient;
use oxcd_api::etcdserverpb::{
    compare, range_request, request_op, response_op, watch_request, Compare, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use oxcd_api::EtcdError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Routes;
use tonic::{Request, Status, Streaming};

use crate::error::{Error, Result};

/// The metadata key etcd reads the auth token from (`rpctypes.TokenFieldNameGRPC`).
pub const TOKEN_METADATA_KEY: &str = "token";

/// KV/Lease/Watch clients over the server's own services.
#[derive(Clone)]
pub struct V3Client {
    kv: KvClient<Routes>,
    lease: LeaseClient<Routes>,
    watch: WatchClient<Routes>,
    token: Option<AsciiMetadataValue>,
}

impl V3Client {
    /// Clients over `routes`, which must hold the KV, Lease and Watch services.
    pub fn new(routes: Routes) -> V3Client {
        V3Client {
            kv: KvClient::new(routes.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            lease: LeaseClient::new(routes.clone()),
            watch: WatchClient::new(routes)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            token: None,
        }
    }

    /// This client acting for a request with `metadata` (its auth token, if any).
    pub fn for_request(&self, metadata: &MetadataMap) -> V3Client {
        let mut c = self.clone();
        c.token = metadata.get(TOKEN_METADATA_KEY).cloned();
        c
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert(TOKEN_METADATA_KEY, t.clone());
        }
        r
    }

    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse> {
        let r = self.request(txn);
        Ok(self.kv.clone().txn(r).await?.into_inner())
    }

    pub async fn range(&self, range: RangeRequest) -> Result<RangeResponse> {
        let r = self.request(range);
        Ok(self.kv.clone().range(r).await?.into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse> {
        let r = self.request(DeleteRangeRequest {
            key,
            ..Default::default()
        });
        Ok(self.kv.clone().delete_range(r).await?.into_inner())
    }

    pub async fn grant(&self, ttl: i64) -> Result<LeaseGrantResponse> {
        let r = self.request(LeaseGrantRequest { ttl, id: 0 });
        Ok(self.lease.clone().lease_grant(r).await?.into_inner())
    }

    /// Opens a watch (clientv3's `Watch`), waiting for nothing but the stream itself.
    pub async fn watch(&self, create: WatchCreateRequest) -> Result<Watcher> {
        let (tx, rx) = mpsc::channel(1);
        let first = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        };
        // The receiver is alive right here, so the send cannot fail.
        let _ = tx.try_send(first);
        let r = self.request(ReceiverStream::new(rx));
        let stream = self.watch.clone().watch(r).await?.into_inner();
        Ok(Watcher { _tx: tx, stream })
    }
}

/// One watch, read the way clientv3's watch channel delivers it.
pub struct Watcher {
    /// Held so the request stream stays open; dropping it ends the watch.
    _tx: mpsc::Sender<WatchRequest>,
    stream: Streaming<WatchResponse>,
}

impl Watcher {
    /// The next response with events (or a progress notification); `Ok(None)` when the
    /// stream ends; an error when the server cancelled the watch (clientv3's `wr.Err()`).
    /// The creation acknowledgement is skipped, as clientv3 does without `WithCreatedNotify`.
    pub async fn next(&mut self) -> Result<Option<WatchResponse>> {
        for _ in 0..u32::MAX {
            let Some(wr) = self.stream.message().await? else {
                return Ok(None);
            };
            if wr.compact_revision != 0 {
                return Err(Status::from(EtcdError::Compacted).into());
            }
            if wr.canceled {
                if wr.cancel_reason.is_empty() {
                    return Err(Status::from(EtcdError::FutureRev).into());
                }
                return Err(Status::failed_precondition(wr.cancel_reason).into());
            }
            if wr.created && wr.events.is_empty() {
                continue;
            }
            return Ok(Some(wr));
        }
        Ok(None)
    }
}

/// clientv3's `getPrefix`: the range end covering every key that starts with `key`.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// clientv3's `Get(pfx, WithFirstCreate()...)` / `WithLastCreate()`: the key under `pfx` with
/// the lowest (or highest) create revision.
pub fn range_by_create(pfx: &[u8], ascend: bool) -> RangeRequest {
    let order = if ascend {
        range_request::SortOrder::Ascend
    } else {
        range_request::SortOrder::Descend
    };
    RangeRequest {
        key: pfx.to_vec(),
        range_end: prefix_end(pfx),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

/// `Compare(CreateRevision(key), "=", rev)`.
pub fn create_rev_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        range_end: Vec::new(),
    }
}

pub fn op_put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

pub fn op_get(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

/// `Get(key)`: the single key.
pub fn key_range(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

pub fn op_get_key(key: &[u8]) -> RequestOp {
    op_get(key_range(key))
}

pub fn op_delete(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The range response of a txn's `i`th op (`resp.Responses[i].GetResponseRange()`).
pub fn range_at(resp: &TxnResponse, i: usize) -> Result<&RangeResponse> {
    match resp.responses.get(i) {
        Some(ResponseOp {
            response: Some(response_op::Response::ResponseRange(r)),
        }) => Ok(r),
        _ => Err(Error::Malformed("txn")),
    }
}

/// Go's `fmt.Sprintf("%s%x", pfx, id)` for a lease ID (signed hex, as Go prints an int64).
pub fn lease_key(pfx: &[u8], id: i64) -> Vec<u8> {
    let hex = if id < 0 {
        format!("-{:x}", id.unsigned_abs())
    } else {
        format!("{id:x}")
    };
    let mut k = pfx.to_vec();
    k.extend_from_slice(hex.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_clientv3s() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn lease_key_is_go_hex() {
        assert_eq!(lease_key(b"n/", 0x694d7a), b"n/694d7a");
        assert_eq!(lease_key(b"n/", -1), b"n/-1");
        assert_eq!(lease_key(b"n/", i64::MIN), b"n/-8000000000000000");
    }
}
