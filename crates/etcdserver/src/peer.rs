//! The peer service (`oxcdpb.RaftPeer`) served on `--listen-peer-urls`: raft messages and
//! snapshots from the other members, and the member list for a member that joins.
//!
//! Invariants (raft-rs parses peer messages with protobuf 2.28, RUSTSEC-2024-0437):
//! - A call must name our cluster id; another cluster's member is refused with etcd's
//!   "request cluster ID mismatch".
//! - Over peer TLS with client certificates, the peer is identified by its certificate
//!   (verified in the handshake against the trusted CA and the allowed CN/hostname, so an
//!   unauthenticated connection never reaches this service). Otherwise messages are
//!   parsed only from connections whose remote address is one of the configured members'
//!   peer hosts (when those are IP addresses), and only messages
//!   addressed to us from a known member are stepped into Raft.

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use oxcd_api::oxcdpb::raft_peer_server::RaftPeer;
use oxcd_api::oxcdpb::{MembersRequest, MembersResponse, PeerAck, RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tonic::{Request, Response, Status, Streaming};

use crate::server::EtcdServer;
use crate::transport::{CLUSTER_ID_HEADER, MEMBER_ID_HEADER};

/// Serves the other members.
/// The peer side of the Raft transport (the `oxcdpb.RaftPeer` gRPC service).
pub struct PeerService(Arc<EtcdServer>);

impl PeerService {
    pub fn new(server: Arc<EtcdServer>) -> PeerService {
        PeerService(server)
    }

    /// Checks the caller's cluster id and address; returns its member id.
    fn admit<T>(&self, req: &Request<T>) -> Result<u64, Status> {
        let header = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| u64::from_str_radix(v, 16).ok())
        };
        let cluster_id = self.0.cluster.read().cluster_id;
        match header(CLUSTER_ID_HEADER) {
            Some(c) if c == cluster_id || cluster_id == 0 => {}
            Some(c) => {
                tracing::warn!(
                    local = format!("{cluster_id:x}"),
                    remote = format!("{c:x}"),
                    "request cluster ID mismatch"
                );
                return Err(Status::failed_precondition("request cluster ID mismatch"));
            }
            None => return Err(Status::permission_denied("missing cluster id")),
        }
        let from = header(MEMBER_ID_HEADER).unwrap_or(0);
        let tls = req.extensions().get::<oxcd_tls::TlsConnectInfo>();
        if tls.is_some_and(|t| t.peer.is_some()) {
            return Ok(from);
        }
        let remote = tls
            .and_then(|t| t.remote_addr)
            .or_else(|| req.remote_addr());
        if let Some(addr) = remote {
            if !self.is_peer_address(addr.ip()) {
                tracing::warn!(remote = %addr, "refusing peer traffic from an unknown address");
                return Err(Status::permission_denied("not a member's address"));
            }
        }
        Ok(from)
    }

    /// Whether `ip` is a configured member's peer host (true if any member is named by a
    /// host name we cannot check without resolving it).
    fn is_peer_address(&self, ip: IpAddr) -> bool {
        let cluster = self.0.cluster.read();
        let mut unknown_host = false;
        for m in cluster.members.values() {
            for u in &m.peer_urls {
                match url::Url::parse(u)
                    .ok()
                    .and_then(|u| u.host().map(|h| h.to_owned()))
                {
                    Some(url::Host::Ipv4(a)) if IpAddr::V4(a) == ip => return true,
                    Some(url::Host::Ipv6(a)) if IpAddr::V6(a) == ip => return true,
                    Some(url::Host::Domain(_)) => unknown_host = true,
                    _ => {}
                }
            }
        }
        unknown_host
    }

    fn step(&self, bytes: &[u8]) -> Result<(), Status> {
        let cluster = self.0.cluster.read();
        let m = decode_message(bytes, self.0.member_id, |id| {
            cluster.members.contains_key(&id)
        })?;
        drop(cluster);
        match m {
            Some(m) => self.0.step(m),
            None => Ok(()),
        }
    }
}

/// One raft message from a peer's batch: `Some` if it is to be stepped into Raft, `None` if
/// it is dropped (a removed member, or one this member has not learned of yet), an error if
/// it does not parse or is addressed to another member.
pub(crate) fn decode_message(
    bytes: &[u8],
    member_id: u64,
    is_member: impl Fn(u64) -> bool,
) -> Result<Option<Message>, Status> {
    let m = Message::parse_from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
    if m.to != member_id {
        return Err(Status::invalid_argument("raft message for another member"));
    }
    Ok(is_member(m.from).then_some(m))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn send(&self, req: Request<Streaming<RaftBatch>>) -> Result<Response<PeerAck>, Status> {
        self.admit(&req)?;
        let mut stream = req.into_inner();
        while let Some(batch) = stream.next().await {
            for bytes in batch?.messages {
                self.step(&bytes)?;
            }
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn send_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        self.admit(&req)?;
        let mut stream = req.into_inner();
        let mut head = None;
        let mut rows = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if head.is_none() {
                head = Some(chunk.message);
            }
            rows.extend(chunk.rows);
        }
        let head = head.ok_or_else(|| Status::invalid_argument("empty snapshot"))?;
        let m = Message::parse_from_bytes(&head)
            .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
        if m.get_msg_type() != MessageType::MsgSnapshot || m.to != self.0.member_id {
            return Err(Status::invalid_argument("not a snapshot for this member"));
        }
        let index = m.get_snapshot().get_metadata().index;
        tracing::info!(
            index,
            rows = rows.len(),
            from = format!("{:x}", m.from),
            "received snapshot"
        );
        self.0.snapshot_inbox.put(index, rows);
        self.0.step(m)?;
        Ok(Response::new(PeerAck {}))
    }

    async fn hash_kv(
        &self,
        req: Request<oxcd_api::etcdserverpb::HashKvRequest>,
    ) -> Result<Response<oxcd_api::etcdserverpb::HashKvResponse>, Status> {
        self.admit(&req)?;
        let r = self.0.hash_kv(req.into_inner().revision).await?;
        Ok(Response::new(r))
    }

    async fn members(
        &self,
        req: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        // A joining member does not know the cluster id yet: no admission check here.
        drop(req);
        let c = self.0.cluster.read();
        Ok(Response::new(MembersResponse {
            cluster_id: c.cluster_id,
            members: c.members.values().cloned().collect(),
        }))
    }
}
