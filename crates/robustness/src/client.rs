//! A recording KV/lease/maintenance client of one member, over the raw etcd v3 gRPC API
//! (`oxcd_api::etcdserverpb`), so that requests and responses are recorded exactly.
//!
//! Invariants:
//! - Every call is bounded by [`OP_TIMEOUT`] and recorded in the [`Recorder`] exactly once,
//!   with `inv` taken before sending and `ret` after the response (or [`NEVER`] when a
//!   write's outcome is unknown).
//! - Write errors are [`Outcome::Unknown`] unless the gRPC code says the request was
//!   rejected before it could take effect (InvalidArgument, NotFound, OutOfRange,
//!   FailedPrecondition); read errors are [`Outcome::Fail`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb as pb;
use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxcd_api::etcdserverpb::request_op::Request as ReqOp;
use oxcd_api::etcdserverpb::response_op::Response as RespOp;
use oxcd_api::mvccpb::KeyValue;
use tonic::transport::Channel;

use crate::history::{Cmp, Kv, Op, Outcome, Recorder, Request, Response, TxnOp, TxnResult, NEVER};

/// Bound on one RPC.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Data generations of the member slots, shared with the harness.
pub type Gens = Arc<Vec<AtomicU32>>;

pub fn kv_of(k: &KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(&k.key).into_owned(),
        value: String::from_utf8_lossy(&k.value).into_owned(),
        create: k.create_revision,
        modr: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

/// A client bound to one member.
pub struct RecClient {
    pub id: usize,
    pub member: usize,
    kv: pb::kv_client::KvClient<Channel>,
    lease: pb::lease_client::LeaseClient<Channel>,
    maint: pb::maintenance_client::MaintenanceClient<Channel>,
    rec: Recorder,
    gens: Gens,
}

fn range_req(
    key: &str,
    end: &Option<String>,
    serializable: bool,
    revision: i64,
) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end
            .as_ref()
            .map(|e| e.as_bytes().to_vec())
            .unwrap_or_default(),
        serializable,
        revision,
        ..Default::default()
    }
}

fn txn_op(op: &TxnOp) -> pb::RequestOp {
    let r = match op {
        TxnOp::Get { key } => ReqOp::RequestRange(range_req(key, &None, false, 0)),
        TxnOp::Put { key, value, lease } => ReqOp::RequestPut(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease: *lease,
            ..Default::default()
        }),
        TxnOp::Delete { key } => ReqOp::RequestDeleteRange(pb::DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        }),
    };
    pb::RequestOp { request: Some(r) }
}

fn cmp(c: &Cmp) -> pb::Compare {
    match c {
        Cmp::ModRev { key, rev } => pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::ModRevision(*rev)),
            range_end: vec![],
        },
        Cmp::Value { key, value } => pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Value(value.as_bytes().to_vec())),
            range_end: vec![],
        },
    }
}

fn rev_of(h: &Option<pb::ResponseHeader>) -> i64 {
    h.as_ref().map(|h| h.revision).unwrap_or(0)
}

impl RecClient {
    pub fn new(
        id: usize,
        member: usize,
        url: &str,
        rec: Recorder,
        gens: Gens,
    ) -> Result<Self, String> {
        let ch = crate::cluster::channel(url)?;
        Ok(RecClient {
            id,
            member,
            kv: pb::kv_client::KvClient::new(ch.clone()),
            lease: pb::lease_client::LeaseClient::new(ch.clone()),
            maint: pb::maintenance_client::MaintenanceClient::new(ch),
            rec,
            gens,
        })
    }

    /// Sends `req`, records it, returns the outcome.
    pub async fn run(&mut self, req: Request) -> Outcome {
        let data_gen = self.gens[self.member].load(Ordering::SeqCst);
        let inv = self.rec.now();
        let res = tokio::time::timeout(OP_TIMEOUT, self.send(&req)).await;
        let ret = self.rec.now();
        let out = match res {
            Ok(Ok(r)) => Outcome::Ok(r),
            Ok(Err(st)) => {
                let definite = matches!(
                    st.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::NotFound
                        | tonic::Code::OutOfRange
                        | tonic::Code::FailedPrecondition
                );
                if req.is_write() && !definite {
                    Outcome::Unknown(format!("{:?}: {}", st.code(), st.message()))
                } else {
                    Outcome::Fail(format!("{:?}: {}", st.code(), st.message()))
                }
            }
            Err(_) if req.is_write() => Outcome::Unknown("timeout".into()),
            Err(_) => Outcome::Fail("timeout".into()),
        };
        let ret = if matches!(out, Outcome::Unknown(_)) {
            NEVER
        } else {
            ret
        };
        self.rec.record(Op {
            id: 0,
            client: self.id,
            member: self.member,
            data_gen,
            inv,
            ret,
            req,
            out: out.clone(),
        });
        out
    }

    async fn send(&mut self, req: &Request) -> Result<Response, tonic::Status> {
        Ok(match req {
            Request::Get {
                key,
                end,
                serializable,
                revision,
            } => {
                let r = self
                    .kv
                    .range(range_req(key, end, *serializable, *revision))
                    .await?
                    .into_inner();
                Response::Get {
                    rev: rev_of(&r.header),
                    kvs: r.kvs.iter().map(kv_of).collect(),
                    count: r.count,
                }
            }
            Request::Put { key, value, lease } => {
                let r = self
                    .kv
                    .put(pb::PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: value.as_bytes().to_vec(),
                        lease: *lease,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Response::Put {
                    rev: rev_of(&r.header),
                }
            }
            Request::Delete { key, end } => {
                let r = self
                    .kv
                    .delete_range(pb::DeleteRangeRequest {
                        key: key.as_bytes().to_vec(),
                        range_end: end
                            .as_ref()
                            .map(|e| e.as_bytes().to_vec())
                            .unwrap_or_default(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Response::Delete {
                    rev: rev_of(&r.header),
                    deleted: r.deleted,
                }
            }
            Request::Txn { cmps, then, els } => {
                let r = self
                    .kv
                    .txn(pb::TxnRequest {
                        compare: cmps.iter().map(cmp).collect(),
                        success: then.iter().map(txn_op).collect(),
                        failure: els.iter().map(txn_op).collect(),
                    })
                    .await?
                    .into_inner();
                let results = r
                    .responses
                    .iter()
                    .map(|x| match &x.response {
                        Some(RespOp::ResponseRange(g)) => {
                            TxnResult::Get(g.kvs.iter().map(kv_of).collect())
                        }
                        Some(RespOp::ResponseDeleteRange(d)) => TxnResult::Delete(d.deleted),
                        _ => TxnResult::Put,
                    })
                    .collect();
                Response::Txn {
                    rev: rev_of(&r.header),
                    succeeded: r.succeeded,
                    results,
                }
            }
            Request::LeaseGrant { ttl } => {
                let r = self
                    .lease
                    .lease_grant(pb::LeaseGrantRequest { ttl: *ttl, id: 0 })
                    .await?
                    .into_inner();
                Response::LeaseGrant {
                    rev: rev_of(&r.header),
                    id: r.id,
                }
            }
            Request::LeaseRevoke { id } => {
                let r = self
                    .lease
                    .lease_revoke(pb::LeaseRevokeRequest { id: *id })
                    .await?
                    .into_inner();
                Response::LeaseRevoke {
                    rev: rev_of(&r.header),
                }
            }
            Request::Compact { revision } => {
                let r = self
                    .kv
                    .compact(pb::CompactionRequest {
                        revision: *revision,
                        physical: false,
                    })
                    .await?
                    .into_inner();
                Response::Compact {
                    rev: rev_of(&r.header),
                }
            }
            Request::Defrag => {
                self.maint.defragment(pb::DefragmentRequest {}).await?;
                Response::Defrag
            }
        })
    }
}
