//! The peer transport (etcd's rafthttp): raft messages travel between members over our own
//! gRPC service (`oxcdpb.RaftPeer`) on the peer URLs, as protobuf bytes.
//!
//! Invariants:
//! - The Raft thread never blocks on the network: it hands messages to a per-peer task
//!   through a bounded queue; a full queue drops the message (Raft retransmits) and reports
//!   the peer unreachable, which is etcd's back-pressure rule too.
//! - Each peer task keeps one ordered stream open, batching whatever is queued into one
//!   frame, and reconnects with backoff when the stream breaks.
//! - A snapshot message is sent on its own call together with the backend's rows; its
//!   outcome is reported to Raft (`report_snapshot`).
//! - `https://` peer URLs are dialled with the peer TLS connector (`crate::dial`).
//! - Every call carries our cluster id and member id, so a member of another cluster is
//!   refused by the receiver.

use std::collections::HashMap;
use std::sync::mpsc::Sender as StdSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::oxcdpb::raft_peer_client::RaftPeerClient;
use oxcd_api::oxcdpb::{RaftBatch, SnapshotChunk};
use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::raft_node::RaftMsg;
use crate::snapshot;

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// Largest number of messages sent in one frame.
const MAX_BATCH: usize = 512;

/// Metadata keys identifying the sender.
pub const CLUSTER_ID_HEADER: &str = "x-oxcd-cluster-id";
pub const MEMBER_ID_HEADER: &str = "x-oxcd-member-id";

struct Peer {
    urls: Vec<String>,
    tx: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// Sends raft messages to the other members.
pub struct Transport {
    rt: tokio::runtime::Handle,
    cluster_id: u64,
    local_id: u64,
    raft_tx: StdSender<RaftMsg>,
    backend: Arc<oxcd_storage::Backend>,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Since when each peer's stream has been up (etcd's rafthttp `ActiveSince`).
    active_since: Mutex<HashMap<u64, Instant>>,
    /// Dials `https://` peer URLs (our certificate is presented, theirs verified).
    tls: Option<oxcd_tls::TlsConnector>,
}

impl Transport {
    pub fn new(
        rt: tokio::runtime::Handle,
        cluster_id: u64,
        local_id: u64,
        raft_tx: StdSender<RaftMsg>,
        backend: Arc<oxcd_storage::Backend>,
        tls: Option<oxcd_tls::TlsConnector>,
    ) -> Arc<Transport> {
        Arc::new(Transport {
            rt,
            cluster_id,
            local_id,
            raft_tx,
            backend,
            peers: Mutex::new(HashMap::new()),
            active_since: Mutex::new(HashMap::new()),
            tls,
        })
    }

    /// Starts (or re-targets) the sender for member `id` at `urls`.
    pub fn add_peer(self: &Arc<Self>, id: u64, urls: Vec<String>) {
        if id == self.local_id || urls.is_empty() {
            return;
        }
        let mut peers = self.peers.lock();
        if peers.get(&id).is_some_and(|p| p.urls == urls) {
            return;
        }
        if let Some(old) = peers.remove(&id) {
            old.task.abort();
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let me = Arc::clone(self);
        let task_urls = urls.clone();
        let task = self
            .rt
            .spawn(async move { me.run_peer(id, task_urls, rx).await });
        peers.insert(id, Peer { urls, tx, task });
    }

    /// Since when member `id` has been connected, if it is.
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        self.active_since.lock().get(&id).copied()
    }

    /// Stops sending to member `id`.
    pub fn remove_peer(&self, id: u64) {
        self.active_since.lock().remove(&id);
        if let Some(p) = self.peers.lock().remove(&id) {
            p.task.abort();
        }
    }

    /// Queues `msgs` for their destinations (called on the Raft thread; never blocks).
    pub fn send(self: &Arc<Self>, msgs: Vec<Message>) {
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(m);
                continue;
            }
            let to = m.to;
            let full = {
                let peers = self.peers.lock();
                match peers.get(&to) {
                    Some(p) => p.tx.try_send(m).is_err(),
                    None => {
                        tracing::debug!(to = format!("{to:x}"), "no transport for member");
                        true
                    }
                }
            };
            if full {
                let _ = self.raft_tx.send(RaftMsg::Unreachable(to));
            }
        }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(format!("{:x}", self.cluster_id)) {
            md.insert(CLUSTER_ID_HEADER, v);
        }
        if let Ok(v) = MetadataValue::try_from(format!("{:x}", self.local_id)) {
            md.insert(MEMBER_ID_HEADER, v);
        }
        req
    }

    /// A member's HashKV at `revision` over the peer service (the corruption checks);
    /// `Err` says why it could not be had (unreachable, behind, compacted).
    pub(crate) async fn peer_hash_kv(
        &self,
        urls: &[String],
        revision: i64,
    ) -> Result<oxcd_api::etcdserverpb::HashKvResponse, String> {
        let mut c = self
            .connect(urls)
            .await
            .ok_or_else(|| format!("cannot connect to {urls:?}"))?;
        let req = self.request(oxcd_api::etcdserverpb::HashKvRequest { revision });
        match tokio::time::timeout(Duration::from_secs(5), c.hash_kv(req)).await {
            Err(_) => Err("timed out".into()),
            Ok(Err(st)) => Err(st.message().to_string()),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    async fn connect(&self, urls: &[String]) -> Option<RaftPeerClient<Channel>> {
        for u in urls {
            let ch = crate::dial::connect(u, self.tls.as_ref(), Duration::from_secs(1), |e| {
                e.tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5))
            });
            match ch.await {
                Ok(ch) => {
                    return Some(RaftPeerClient::new(ch).max_decoding_message_size(usize::MAX))
                }
                Err(e) => tracing::debug!(error = %e, "cannot connect to peer"),
            }
        }
        None
    }

    /// One peer's sender: an ordered stream of batches, reconnecting with backoff.
    async fn run_peer(
        self: Arc<Self>,
        id: u64,
        urls: Vec<String>,
        mut rx: mpsc::Receiver<Message>,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(client) = self.connect(&urls).await else {
                self.active_since.lock().remove(&id);
                let _ = self.raft_tx.send(RaftMsg::Unreachable(id));
                // Drain what queued up meanwhile: Raft resends what matters.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            };
            backoff = Duration::from_millis(50);
            self.active_since
                .lock()
                .entry(id)
                .or_insert_with(Instant::now);
            let (frame_tx, frame_rx) = mpsc::channel::<RaftBatch>(64);
            let call = {
                let req = self.request(tokio_stream::wrappers::ReceiverStream::new(frame_rx));
                let mut c = client.clone();
                tokio::spawn(async move { c.send(req).await })
            };
            loop {
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let frame = RaftBatch {
                    messages: batch
                        .iter()
                        .filter_map(|m| m.write_to_bytes().ok())
                        .collect(),
                };
                if frame_tx.send(frame).await.is_err() {
                    break;
                }
            }
            drop(frame_tx);
            if let Ok(Err(e)) = call.await {
                let e = crate::dial::chain(&e);
                tracing::debug!(peer = format!("{id:x}"), error = %e, "peer stream ended");
            }
            self.active_since.lock().remove(&id);
            let _ = self.raft_tx.send(RaftMsg::Unreachable(id));
            drop(client);
            client_backoff(&mut backoff).await;
        }
    }

    fn send_snapshot(self: &Arc<Self>, m: Message) {
        let to = m.to;
        let urls = match self.peers.lock().get(&to) {
            Some(p) => p.urls.clone(),
            None => return,
        };
        let me = Arc::clone(self);
        self.rt.spawn(async move {
            let ok = me.stream_snapshot(&urls, m).await;
            if let Err(e) = &ok {
                tracing::warn!(to = format!("{to:x}"), error = %e, "sending snapshot failed");
            } else {
                tracing::info!(to = format!("{to:x}"), "snapshot sent");
            }
            let _ = me.raft_tx.send(RaftMsg::SnapshotStatus(to, ok.is_ok()));
        });
    }

    async fn stream_snapshot(&self, urls: &[String], m: Message) -> Result<(), String> {
        let mut client = self
            .connect(urls)
            .await
            .ok_or_else(|| "peer unreachable".to_string())?;
        let head = m.write_to_bytes().map_err(|e| e.to_string())?;
        let chunks = snapshot::dump_backend(&self.backend).map_err(|e| e.to_string())?;
        let mut first = true;
        let stream = tokio_stream::iter(chunks.into_iter().map(move |rows| {
            let message = if first { head.clone() } else { Vec::new() };
            first = false;
            SnapshotChunk { message, rows }
        }));
        client
            .send_snapshot(self.request(stream))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

async fn client_backoff(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(1));
}
