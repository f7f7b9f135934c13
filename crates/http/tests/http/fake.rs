//! Small in-memory fakes of etcd's services, enough to drive the gateway: a KV with revisions
//! and an event feed, a lessor, a watch hub, a maintenance service with a settable leader
//! and alarms. They answer etcd's errors for the cases the tests exercise.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;
use oxcd_api::etcdserverpb::{
    self as pb, kv_server::Kv, lease_server::Lease, maintenance_server::Maintenance,
    watch_server::Watch,
};
use oxcd_api::mvccpb::{self, KeyValue};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status, Streaming};

pub const CLUSTER_ID: u64 = 15118495548433857066;
pub const MEMBER_ID: u64 = 13668033151171901709;

#[derive(Default)]
pub struct State {
    pub rev: i64,
    pub kvs: BTreeMap<Vec<u8>, KeyValue>,
    pub leases: BTreeMap<i64, i64>,
    pub alarms: Vec<pb::AlarmMember>,
    pub leader: u64,
    /// The last `token` metadata seen.
    pub last_token: Option<String>,
    /// The peer address of the last Range (from the connection's info).
    pub last_remote: Option<std::net::SocketAddr>,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    events: broadcast::Sender<(i64, mvccpb::Event)>,
    next_lease: Arc<AtomicU64>,
    /// Watch streams whose server task is still running.
    pub open_watches: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a running watch task; uncounts it however the task ends.
struct OpenWatch(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

impl Fake {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        let state = State {
            rev: 1,
            leader: MEMBER_ID,
            ..Default::default()
        };
        Fake {
            state: Arc::new(Mutex::new(state)),
            events,
            next_lease: Arc::new(AtomicU64::new(7587_8817_4001_0000)),
            open_watches: Default::default(),
        }
    }

    fn header(&self, rev: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: CLUSTER_ID,
            member_id: MEMBER_ID,
            revision: rev,
            raft_term: 2,
        })
    }

    fn see_token<T>(&self, r: &Request<T>) {
        let t = r
            .metadata()
            .get("token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.state.lock().unwrap().last_token = t;
    }

    fn put_locked(&self, st: &mut State, key: Vec<u8>, value: Vec<u8>, lease: i64) -> i64 {
        st.rev += 1;
        let rev = st.rev;
        let kv = match st.kvs.get(&key) {
            Some(old) => KeyValue {
                mod_revision: rev,
                version: old.version + 1,
                value,
                lease,
                ..old.clone()
            },
            None => KeyValue {
                key: key.clone(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                value,
                lease,
            },
        };
        st.kvs.insert(key, kv.clone());
        let _ = self.events.send((
            rev,
            mvccpb::Event {
                r#type: 0,
                kv: Some(kv),
                prev_kv: None,
            },
        ));
        rev
    }

    fn range_locked(st: &State, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        if range_end.is_empty() {
            st.kvs.get(key).cloned().into_iter().collect()
        } else {
            st.kvs
                .range(key.to_vec()..)
                .take_while(|(k, _)| range_end == [0] || k.as_slice() < range_end)
                .map(|(_, v)| v.clone())
                .collect()
        }
    }
}

#[tonic::async_trait]
impl Kv for Fake {
    type RangeStreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::RangeStreamResponse, Status>> + Send>,
    >;
    async fn range_stream(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("KV.RangeStream"))
    }

    async fn range(
        &self,
        r: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.see_token(&r);
        self.state.lock().unwrap().last_remote = r.remote_addr();
        let r = r.into_inner();
        let st = self.state.lock().unwrap();
        if r.revision > st.rev {
            return Err(Status::out_of_range(
                "etcdserver: mvcc: required revision is a future revision",
            ));
        }
        let kvs = Self::range_locked(&st, &r.key, &r.range_end);
        let count = kvs.len() as i64;
        Ok(Response::new(pb::RangeResponse {
            header: self.header(st.rev),
            kvs: if r.count_only { vec![] } else { kvs },
            more: false,
            count,
        }))
    }

    async fn put(&self, r: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        self.see_token(&r);
        let r = r.into_inner();
        let mut st = self.state.lock().unwrap();
        if r.lease != 0 && !st.leases.contains_key(&r.lease) {
            return Err(Status::not_found("etcdserver: requested lease not found"));
        }
        let rev = self.put_locked(&mut st, r.key, r.value, r.lease);
        Ok(Response::new(pb::PutResponse {
            header: self.header(rev),
            prev_kv: None,
        }))
    }

    async fn delete_range(
        &self,
        r: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock().unwrap();
        let gone = Self::range_locked(&st, &r.key, &r.range_end);
        if !gone.is_empty() {
            st.rev += 1;
        }
        for kv in &gone {
            st.kvs.remove(&kv.key);
            let tomb = KeyValue {
                key: kv.key.clone(),
                mod_revision: st.rev,
                ..Default::default()
            };
            let _ = self.events.send((
                st.rev,
                mvccpb::Event {
                    r#type: 1,
                    kv: Some(tomb),
                    prev_kv: None,
                },
            ));
        }
        Ok(Response::new(pb::DeleteRangeResponse {
            header: self.header(st.rev),
            deleted: gone.len() as i64,
            prev_kvs: vec![],
        }))
    }

    async fn txn(&self, r: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        use pb::compare::{CompareResult, CompareTarget, TargetUnion};
        let r = r.into_inner();
        let mut st = self.state.lock().unwrap();
        let ok = r.compare.iter().all(|c| {
            let kv = st.kvs.get(&c.key);
            let (have, want) = match (CompareTarget::try_from(c.target), &c.target_union) {
                (Ok(CompareTarget::Create), Some(TargetUnion::CreateRevision(w))) => {
                    (kv.map_or(0, |k| k.create_revision), *w)
                }
                (Ok(CompareTarget::Version), Some(TargetUnion::Version(w))) => {
                    (kv.map_or(0, |k| k.version), *w)
                }
                (Ok(CompareTarget::Mod), Some(TargetUnion::ModRevision(w))) => {
                    (kv.map_or(0, |k| k.mod_revision), *w)
                }
                _ => return false,
            };
            match CompareResult::try_from(c.result) {
                Ok(CompareResult::Equal) => have == want,
                Ok(CompareResult::Greater) => have > want,
                Ok(CompareResult::Less) => have < want,
                _ => have != want,
            }
        });
        let ops = if ok { &r.success } else { &r.failure };
        let mut responses = Vec::new();
        for op in ops {
            use pb::request_op::Request as Op;
            use pb::response_op::Response as Res;
            let res = match &op.request {
                Some(Op::RequestPut(p)) => {
                    let rev = self.put_locked(&mut st, p.key.clone(), p.value.clone(), p.lease);
                    Res::ResponsePut(pb::PutResponse {
                        header: Some(pb::ResponseHeader {
                            revision: rev,
                            ..Default::default()
                        }),
                        prev_kv: None,
                    })
                }
                Some(Op::RequestRange(q)) => {
                    let kvs = Self::range_locked(&st, &q.key, &q.range_end);
                    Res::ResponseRange(pb::RangeResponse {
                        header: Some(pb::ResponseHeader {
                            revision: st.rev,
                            ..Default::default()
                        }),
                        count: kvs.len() as i64,
                        kvs,
                        more: false,
                    })
                }
                _ => return Err(Status::unimplemented("fake: op")),
            };
            responses.push(pb::ResponseOp {
                response: Some(res),
            });
        }
        Ok(Response::new(pb::TxnResponse {
            header: self.header(st.rev),
            succeeded: ok,
            responses,
        }))
    }

    async fn compact(
        &self,
        r: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let st = self.state.lock().unwrap();
        if r.get_ref().revision > st.rev {
            return Err(Status::out_of_range(
                "etcdserver: mvcc: required revision is a future revision",
            ));
        }
        Ok(Response::new(pb::CompactionResponse {
            header: self.header(st.rev),
        }))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for Fake {
    async fn lease_grant(
        &self,
        r: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = r.into_inner();
        let id = if r.id != 0 {
            r.id
        } else {
            self.next_lease.fetch_add(6, Ordering::Relaxed) as i64
        };
        let mut st = self.state.lock().unwrap();
        st.leases.insert(id, r.ttl);
        Ok(Response::new(pb::LeaseGrantResponse {
            header: self.header(st.rev),
            id,
            ttl: r.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        r: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let mut st = self.state.lock().unwrap();
        if st.leases.remove(&r.get_ref().id).is_none() {
            return Err(Status::not_found("etcdserver: requested lease not found"));
        }
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.header(st.rev),
        }))
    }

    type LeaseKeepAliveStream = BoxStream<pb::LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        r: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut reqs = r.into_inner();
        let me = self.clone();
        let s = async_stream(move |tx| async move {
            while let Ok(Some(req)) = reqs.message().await {
                if req.id < 0 {
                    let _ = tx
                        .send(Err(Status::not_found(
                            "etcdserver: requested lease not found",
                        )))
                        .await;
                    return;
                }
                let (rev, ttl) = {
                    let st = me.state.lock().unwrap();
                    (st.rev, st.leases.get(&req.id).copied().unwrap_or(0))
                };
                let resp = pb::LeaseKeepAliveResponse {
                    header: me.header(rev),
                    id: req.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(s))
    }

    async fn lease_time_to_live(
        &self,
        r: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let st = self.state.lock().unwrap();
        let id = r.get_ref().id;
        let ttl = st.leases.get(&id).copied();
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: self.header(st.rev),
            id,
            ttl: ttl.map_or(-1, |t| t - 1),
            granted_ttl: ttl.unwrap_or(0),
            keys: vec![],
        }))
    }

    async fn lease_leases(
        &self,
        _: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let st = self.state.lock().unwrap();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.header(st.rev),
            leases: st
                .leases
                .keys()
                .map(|id| pb::LeaseStatus { id: *id })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl Watch for Fake {
    type WatchStream = BoxStream<pb::WatchResponse>;

    /// One watcher per stream (id 0), from the current revision on; the stream ends only
    /// when the client goes away.
    async fn watch(
        &self,
        r: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut reqs = r.into_inner();
        let me = self.clone();
        let s = async_stream(move |tx| async move {
            use pb::watch_request::RequestUnion;
            me.open_watches.fetch_add(1, Ordering::SeqCst);
            let _open = OpenWatch(me.open_watches.clone());
            let mut events = me.events.subscribe();
            let mut watching: Option<(Vec<u8>, Vec<u8>)> = None;
            loop {
                tokio::select! {
                    req = reqs.message(), if watching.is_none() => match req {
                        Ok(Some(pb::WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) })) => {
                            let rev = me.state.lock().unwrap().rev;
                            watching = Some((c.key, c.range_end));
                            let created = pb::WatchResponse { header: me.header(rev), created: true, ..Default::default() };
                            if tx.send(Ok(created)).await.is_err() { return; }
                        }
                        Ok(Some(_)) => {}
                        _ => return,
                    },
                    ev = events.recv(), if watching.is_some() => {
                        let Ok((rev, ev)) = ev else { return };
                        let (key, end) = watching.as_ref().unwrap();
                        let k = &ev.kv.as_ref().unwrap().key;
                        let hit = if end.is_empty() { k == key } else { k >= key && (end == &[0] || k < end) };
                        if hit {
                            let resp = pb::WatchResponse { header: me.header(rev), events: vec![ev], ..Default::default() };
                            if tx.send(Ok(resp)).await.is_err() { return; }
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(s))
    }
}

#[tonic::async_trait]
impl Maintenance for Fake {
    async fn alarm(
        &self,
        _: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let st = self.state.lock().unwrap();
        Ok(Response::new(pb::AlarmResponse {
            header: self.header(st.rev),
            alarms: st.alarms.clone(),
        }))
    }
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let st = self.state.lock().unwrap();
        Ok(Response::new(pb::StatusResponse {
            header: self.header(st.rev),
            version: "3.5.17".into(),
            db_size: 20480,
            leader: st.leader,
            raft_index: 15,
            raft_term: 2,
            raft_applied_index: 15,
            db_size_in_use: 16384,
            ..Default::default()
        }))
    }
    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(Status::unimplemented("fake: defragment"))
    }
    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let st = self.state.lock().unwrap();
        Ok(Response::new(pb::HashResponse {
            header: self.header(st.rev),
            hash: 1629872488,
        }))
    }
    async fn hash_kv(
        &self,
        _: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(Status::unimplemented("fake: hashkv"))
    }
    type SnapshotStream = BoxStream<pb::SnapshotResponse>;
    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("fake: snapshot"))
    }
    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("fake: move leader"))
    }
    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented("fake: downgrade"))
    }
}

/// A response stream fed by `f` through a channel.
fn async_stream<T, F, Fut>(f: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The client Routes over one fake: KV, Lease, Watch, Maintenance (others Unimplemented).
pub fn routes(f: &Fake) -> tonic::service::Routes {
    let mut b = tonic::service::Routes::builder();
    b.add_service(pb::kv_server::KvServer::new(f.clone()));
    b.add_service(pb::lease_server::LeaseServer::new(f.clone()));
    b.add_service(pb::watch_server::WatchServer::new(f.clone()));
    b.add_service(pb::maintenance_server::MaintenanceServer::new(f.clone()));
    b.routes()
}
