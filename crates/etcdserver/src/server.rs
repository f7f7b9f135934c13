//! `EtcdServer`: what the gRPC services call (etcd's `v3_server.go`). Writes are proposed
//! to Raft and answered once applied; linearizable reads wait for a read index and for the
//! apply loop to reach it; serializable reads are answered from local state at once.
//!
//! Invariants:
//! - A write's response is sent only after its entry was fsynced, committed and applied.
//! - A proposal that cannot be answered within the request timeout gets etcd's
//!   "request timed out"; its waiter is removed so a late apply is a no-op.
//! - Requests whose encoding exceeds `--max-request-bytes` are refused before Raft sees them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::{
    request_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::{InternalRequest, RequestHeader};
use oxcd_api::EtcdError;
use oxcd_auth::AuthInfo;
use oxcd_mvcc::watch::WatchableStore;
use oxcd_mvcc::Store;
use oxcd_storage::Backend;
use parking_lot::RwLock;
use prost::Message;
use tokio::sync::{oneshot, watch};

use crate::apply::{Applied, ApplyResult};
use crate::membership::RaftCluster;
use crate::raft_node::{RaftMsg, RaftStatus};
use crate::snapshot::SnapshotInbox;
use crate::transport::Transport;
use crate::wait::Wait;

/// etcd refuses new proposals when the apply loop lags this far behind the commit index.
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT: u64 = 5000;
/// Proposals waiting for the Raft thread beyond this are refused with "too many requests"
/// (the queue is bounded so a stalled Raft thread cannot grow memory without limit).
const MAX_QUEUED_PROPOSALS: usize = 10_000;

/// Limits and identity the request path needs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub client_urls: Vec<String>,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub request_timeout: Duration,
    pub strict_reconfig_check: bool,
    /// Dials the leader's `https://` client URLs when forwarding (see `NodeConfig`).
    pub client_tls: Option<oxcd_tls::TlsConnector>,
    /// The backend quota in bytes (`--quota-backend-bytes`, resolved).
    pub quota_bytes: u64,
    /// `--election-timeout` (require-leader's watch monitor ticks at it).
    pub election_timeout: Duration,
    /// `--data-dir`, whose free space is checked before growing writes are proposed.
    pub data_dir: std::path::PathBuf,
    /// Free space the data dir keeps (`oxcd_storage::quota::disk_reserve_bytes`).
    pub disk_reserve_bytes: u64,
}

/// The server state shared by every front. Fields are the core's own; fronts use methods.
pub struct EtcdServer {
    pub(crate) settings: ServerSettings,
    pub(crate) member_id: u64,
    pub(crate) cluster: Arc<RwLock<RaftCluster>>,
    pub(crate) backend: Arc<Backend>,
    pub(crate) store: Arc<Store>,
    pub(crate) watchable: Arc<WatchableStore>,
    pub(crate) auth: Arc<oxcd_auth::AuthStore>,
    pub(crate) status: Arc<RaftStatus>,
    pub(crate) applied: Arc<AtomicU64>,
    pub(crate) applied_rx: watch::Receiver<u64>,
    pub(crate) wait: Arc<Wait<ApplyResult>>,
    pub(crate) snapshot_inbox: Arc<SnapshotInbox>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) leader_channel: crate::forward::LeaderChannel,
    pub(crate) cluster_token: String,
    pub(crate) leases: crate::lease_server::LeaseHub,
    pub(crate) raft_tx: Sender<RaftMsg>,
    pub(crate) next_id: AtomicU64,
    pub(crate) queued_proposals: Arc<AtomicUsize>,
    pub(crate) alarms: Arc<crate::alarm::AlarmStore>,
    /// The revision of the last finished physical compaction.
    pub(crate) compacted_rx: watch::Receiver<i64>,
}

impl EtcdServer {
    /// The first request id of this member (etcd's idutil: 2 bytes of member id, then
    /// milliseconds since the epoch, then a counter), unique across restarts and members.
    pub fn first_request_id(member_id: u64) -> AtomicU64 {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let prefix = (member_id & 0xffff) << 48;
        AtomicU64::new(prefix | ((ms << 8) & ((1 << 48) - 1)))
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The limits and identity this server was started with.
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Whether this member knows a leader now (etcd's `Leader() != None`).
    pub fn has_leader(&self) -> bool {
        self.status.leader() != 0
    }

    /// A receiver that sees every leader change (the leader's id; 0: none).
    pub fn subscribe_leader(&self) -> tokio::sync::watch::Receiver<u64> {
        self.status.subscribe_leader()
    }

    /// The store's current revision (applied, possibly not yet published).
    pub fn current_revision(&self) -> i64 {
        self.store.current_revision()
    }

    /// The newest revision readers and watchers can see.
    pub fn published_revision(&self) -> i64 {
        self.store.published_revision()
    }

    /// The watchable store (etcd's `watchableStore`), built once at bootstrap.
    pub fn watchable(&self) -> &Arc<WatchableStore> {
        &self.watchable
    }

    /// The lease half of the server (keep-alive streams and their stop signal).
    pub fn leases(&self) -> &crate::lease_server::LeaseHub {
        &self.leases
    }

    /// etcd's watch sendLoop: every event that is not a creation gets the key's kv at
    /// `mod_revision - 1`, when that revision can still be read (absent once compacted).
    pub fn fill_prev_kvs(&self, events: &mut [oxcd_api::mvccpb::Event]) {
        use oxcd_api::mvccpb::event::EventType;
        use oxcd_mvcc::ReadView;
        let Ok(view) = self.store.read() else {
            return;
        };
        for ev in events.iter_mut() {
            let Some(kv) = ev.kv.as_ref() else { continue };
            let create =
                ev.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
            if create {
                continue;
            }
            let opts = oxcd_mvcc::RangeOptions {
                rev: kv.mod_revision - 1,
                limit: 1,
                count_only: false,
            };
            if let Ok(rr) = view.range(&kv.key, &[], opts) {
                ev.prev_kv = rr.kvs.into_iter().next();
            }
        }
    }

    /// A response header at `revision` (etcd fills cluster, member and term on every reply).
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster.read().cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.status.term(),
        }
    }

    fn fill(&self, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map(|h| h.revision).unwrap_or(0);
        *h = Some(self.header(rev));
    }

    /// etcd serves a learner only serializable reads, Status and the member list.
    pub fn check_not_learner(&self) -> Result<(), EtcdError> {
        if self.status.is_learner.load(Ordering::Acquire) {
            return Err(EtcdError::NotSupportedForLearner);
        }
        Ok(())
    }

    pub async fn range(
        &self,
        info: &AuthInfo,
        req: RangeRequest,
    ) -> Result<RangeResponse, EtcdError> {
        oxcd_mvcc::validate::check_range_request(&req)?;
        if !req.serializable {
            self.check_not_learner()?;
            self.linearizable_read_notify().await?;
        }
        self.auth.check_range(info, &req)?;
        let view = self.store.read().map_err(EtcdError::from)?;
        let mut resp = oxcd_mvcc::kv_apply::range(&view, &req)?;
        self.fill(&mut resp.header);
        Ok(resp)
    }

    pub async fn put(&self, info: &AuthInfo, req: PutRequest) -> Result<PutResponse, EtcdError> {
        self.check_not_learner()?;
        oxcd_mvcc::validate::check_put_request(&req)?;
        match self.propose_as(info, Request::Put(req)).await? {
            Applied::Put(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn delete_range(
        &self,
        info: &AuthInfo,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        self.check_not_learner()?;
        oxcd_mvcc::validate::check_delete_request(&req)?;
        match self.propose_as(info, Request::DeleteRange(req)).await? {
            Applied::DeleteRange(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn txn(&self, info: &AuthInfo, req: TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.check_not_learner()?;
        oxcd_mvcc::validate::check_txn(&req, self.settings.max_txn_ops)?;
        if oxcd_mvcc::kv_apply::is_txn_readonly(&req) {
            // etcd answers read-only txns without Raft (linearizable unless all serializable).
            if !is_txn_serializable(&req) {
                self.linearizable_read_notify().await?;
            }
            self.auth
                .check_txn(info, &req, &crate::apply_auth::LessorKeys(self.lessor()))?;
            let mut r = oxcd_mvcc::kv_apply::txn_read(&self.store, &req)?;
            self.fill(&mut r.header);
            return Ok(r);
        }
        match self.propose_as(info, Request::Txn(req)).await? {
            Applied::Txn(mut r) => {
                self.fill(&mut r.header);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    /// etcd 3.5 checks no permission for Compact (the front still resolves the caller's
    /// identity, so a bad token is refused there).
    pub async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        self.check_not_learner()?;
        // The apply compacts logically; `physical` waits for the compaction thread.
        let (rev, physical) = (req.revision, req.physical);
        match self.propose(Request::Compaction(req)).await? {
            Applied::Compaction => {
                if physical {
                    let mut done = self.compacted_rx.clone();
                    tokio::time::timeout(
                        self.settings.request_timeout,
                        done.wait_for(|r| *r >= rev),
                    )
                    .await
                    .map_err(|_| EtcdError::Timeout)?
                    .map_err(|_| EtcdError::Stopped)?;
                }
                Ok(CompactionResponse {
                    header: Some(self.header(self.store.current_revision())),
                })
            }
            _ => Err(unexpected()),
        }
    }

    /// Proposes an internal `request` (etcd's `WithRoot`: expired-lease revokes,
    /// checkpoints, member attributes) and waits for its apply result.
    /// Retried (bounded) when the auth store moved between proposing and applying, as
    /// etcd's `raftRequest` does.
    pub(crate) async fn propose(&self, request: Request) -> Result<Applied, EtcdError> {
        let mut attempts = 0;
        loop {
            let r = self
                .propose_as(&self.auth.root_auth_info(), request.clone())
                .await;
            attempts += 1;
            if attempts >= 5 || !matches!(r, Err(EtcdError::AuthOldRevision)) {
                return r;
            }
        }
    }

    /// Proposes a client's `request`, carrying its identity for the apply-time checks
    /// (`apply_auth::AuthGuard`), and waits for its apply result.
    pub(crate) async fn propose_as(
        &self,
        info: &AuthInfo,
        request: Request,
    ) -> Result<Applied, EtcdError> {
        let applied = self.applied.load(Ordering::Acquire);
        if self.status.commit().saturating_sub(applied) > MAX_GAP_BETWEEN_APPLY_AND_COMMIT {
            return Err(EtcdError::TooManyRequests);
        }
        if crate::quota::cost(&request) > 0 && crate::quota::disk_low(self) {
            // The monitor raises NOSPACE at its next check (every member then refuses).
            return Err(EtcdError::NoSpace);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let data = InternalRequest {
            id: 0,
            header: Some(RequestHeader {
                id,
                username: info.username.clone(),
                auth_revision: info.revision,
            }),
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() > self.settings.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        self.send_proposal(id, RaftMsg::Propose { data, id }).await
    }

    /// Hands a proposal to the Raft thread through the bounded queue and waits for its one
    /// reply (applied, refused by Raft, or timed out).
    async fn send_proposal(&self, id: u64, msg: RaftMsg) -> Result<Applied, EtcdError> {
        if self.queued_proposals.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_PROPOSALS {
            self.queued_proposals.fetch_sub(1, Ordering::AcqRel);
            return Err(EtcdError::TooManyRequests);
        }
        let rx = self.wait.register(id);
        if self.raft_tx.send(msg).is_err() {
            self.queued_proposals.fetch_sub(1, Ordering::AcqRel);
            self.wait.cancel(id);
            return Err(EtcdError::Stopped);
        }
        crate::metrics::PROPOSALS_PENDING.inc();
        let outcome = tokio::time::timeout(self.settings.request_timeout, rx).await;
        crate::metrics::PROPOSALS_PENDING.dec();
        let r = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => {
                self.wait.cancel(id);
                Err(EtcdError::Timeout)
            }
        };
        if matches!(
            r,
            Err(EtcdError::Timeout
                | EtcdError::Stopped
                | EtcdError::NoLeader
                | EtcdError::LeaderChanged)
        ) {
            crate::metrics::PROPOSALS_FAILED.inc();
        }
        r
    }

    /// Waits until this member has applied everything committed when the read began
    /// (etcd's ReadIndex-based `linearizableReadNotify`).
    pub async fn linearizable_read_notify(&self) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.raft_tx
            .send(RaftMsg::ReadIndex(tx))
            .map_err(|_| EtcdError::Stopped)?;
        let mut applied_rx = self.applied_rx.clone();
        tokio::time::timeout(self.settings.request_timeout, async move {
            let index = rx.await.map_err(|_| EtcdError::Stopped)??;
            applied_rx
                .wait_for(|a| *a >= index)
                .await
                .map_err(|_| EtcdError::Stopped)?;
            Ok(())
        })
        .await
        .map_err(|_| EtcdError::Timeout)?
    }

    /// Hands a peer's raft message to the Raft thread.
    pub fn step(&self, m: raft::eraftpb::Message) -> Result<(), tonic::Status> {
        self.raft_tx
            .send(RaftMsg::Step(m))
            .map_err(|_| tonic::Status::unavailable("etcdserver: server stopped"))
    }

    /// A new request id (unique across members and restarts).
    pub fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Proposes a membership change and waits until it is applied.
    pub async fn propose_conf_change(
        &self,
        cc: raft::eraftpb::ConfChange,
        id: u64,
        context: Vec<u8>,
    ) -> Result<Applied, EtcdError> {
        self.send_proposal(id, RaftMsg::ProposeConfChange { cc, context, id })
            .await
    }

    /// Publishes this member's name and client URLs through Raft (etcd's `publishV3`), so
    /// every member lists them; retried until it succeeds or the server stops.
    pub async fn publish_attributes(&self, name: String) {
        let attrs = oxcd_api::oxcdpb::MemberAttributes {
            id: self.member_id,
            name,
            client_urls: self.settings.client_urls.clone(),
            ..Default::default()
        };
        loop {
            match self.propose(Request::MemberUpdate(attrs.clone())).await {
                Ok(_) => {
                    tracing::info!("published local member attributes to the cluster");
                    return;
                }
                Err(EtcdError::Stopped) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "publishing member attributes; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// On stop, a leader hands leadership to its most up-to-date follower (as etcd's
    /// `TransferLeadership` on stop) and waits, bounded, until another member leads.
    pub async fn transfer_leadership_on_stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.raft_tx.send(RaftMsg::TransferToBest(tx)).is_err() {
            return;
        }
        let Ok(Some(target)) = rx.await else { return };
        tracing::info!(
            target = format!("{target:x}"),
            "leader stopping: transferring leadership"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.status.leader() == self.member_id && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks the Raft thread to hand leadership to `target`.
    pub fn transfer_leader(&self, target: u64) -> Result<(), EtcdError> {
        self.raft_tx
            .send(RaftMsg::TransferLeader(target))
            .map_err(|_| EtcdError::Stopped)
    }

    /// Asks the Raft thread to stop.
    pub fn stop_raft(&self) {
        let _ = self.raft_tx.send(RaftMsg::Shutdown);
    }
}

fn unexpected() -> EtcdError {
    EtcdError::Internal("apply returned a response of another kind".into())
}

/// etcd's `isTxnSerializable`: every op of both branches is a serializable range.
fn is_txn_serializable(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(
        |op| matches!(&op.request, Some(request_op::Request::RequestRange(rr)) if rr.serializable),
    )
}
