//! The Raft node: one OS thread owns the raft-rs `RawNode` and drives it (etcd's `raftNode`).
//!
//! Each loop iteration: take every queued request (proposals, read-index requests, peer
//! messages), tick on the heartbeat interval, then handle one `Ready`:
//! 1. send messages the leader may send before persisting;
//! 2. persist entries and hard state with one fsync (group commit of everything queued);
//! 3. hand committed entries to the apply loop (another thread) in log order;
//! 4. answer read-index requests whose `ReadState` arrived.
//!
//! Invariants: an entry reaches the apply loop only after raft-rs reports it committed, and
//! raft-rs learns an entry is persisted only after `RaftLog::persist` returned (fsync done).
//! The log is compacted only up to what the backend holds durably. A failed log write stops
//! the process: nothing is acknowledged that was not persisted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::oxcdpb::BackendRow;
use oxcd_api::EtcdError;
use oxcd_storage::RaftLog;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Entry, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use crate::apply::ApplyResult;
use crate::error::Result;
use crate::snapshot::SnapshotInbox;
use crate::transport::Transport;
use crate::wait::Wait;

/// Requests to the Raft thread.
pub enum RaftMsg {
    /// Propose `data` (an encoded `InternalRequest`); a refusal is answered through the
    /// wait registry under `id`, the proposal's one reply path.
    Propose { data: Vec<u8>, id: u64 },
    /// Propose a membership change; `context` is an encoded `ConfChangeContext`.
    ProposeConfChange {
        cc: ConfChange,
        context: Vec<u8>,
        id: u64,
    },
    /// Ask for a read index (linearizable read); answered with the index to wait for.
    ReadIndex(oneshot::Sender<Result<u64, EtcdError>>),
    /// A message from a peer.
    Step(Message),
    /// The transport could not deliver to this member.
    Unreachable(u64),
    /// The outcome of sending a snapshot to a member.
    SnapshotStatus(u64, bool),
    /// From the apply loop: apply a committed conf change to Raft (and start or stop the
    /// peer's transport), answering with the new membership.
    ApplyConfChange {
        cc: ConfChange,
        peer_urls: Vec<String>,
        done: std::sync::mpsc::Sender<ConfState>,
    },
    /// A member's peer URLs changed.
    UpdatePeer(u64, Vec<String>),
    /// Hand leadership to this member (Maintenance.MoveLeader).
    TransferLeader(u64),
    /// Stopping: if leader, hand leadership to the most up-to-date voter; answers with it.
    TransferToBest(oneshot::Sender<Option<u64>>),
    /// The backend holds everything up to this index durably; the log may be compacted.
    Compact(u64),
    /// Stop the thread (after handing over what is committed).
    Shutdown,
}

/// Raft state published for Status, headers and health (read without locking); leader
/// changes are also published on a watch channel, so waiters need no poll loop.
pub struct RaftStatus {
    pub leader: AtomicU64,
    /// The current leader (0: none), for waiters ([`RaftStatus::subscribe_leader`]).
    leader_watch: tokio::sync::watch::Sender<u64>,
    pub term: AtomicU64,
    pub commit: AtomicU64,
    pub is_leader: AtomicBool,
    pub is_learner: AtomicBool,
}

impl Default for RaftStatus {
    fn default() -> Self {
        RaftStatus {
            leader: AtomicU64::new(0),
            leader_watch: tokio::sync::watch::Sender::new(0),
            term: AtomicU64::new(0),
            commit: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            is_learner: AtomicBool::new(false),
        }
    }
}

impl RaftStatus {
    /// A receiver that sees every leader change.
    pub fn subscribe_leader(&self) -> tokio::sync::watch::Receiver<u64> {
        self.leader_watch.subscribe()
    }

    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }
    pub fn commit(&self) -> u64 {
        self.commit.load(Ordering::Acquire)
    }
}

/// Work for the apply loop, in log order.
pub enum ApplyBatch {
    /// Committed entries.
    Entries(Vec<Entry>),
    /// A snapshot from the leader: replace the backend with `rows`.
    Snapshot { index: u64, rows: Vec<BackendRow> },
}

/// Settings of the Raft thread.
pub struct RaftNodeConfig {
    pub id: u64,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub applied: u64,
    /// Entries kept behind a compaction point for slow followers (etcd: 5000).
    pub catchup_entries: u64,
    /// Campaign at once: this member is the only voter.
    pub campaign_now: bool,
    pub pre_vote: bool,
    pub logger: slog::Logger,
}

/// What the Raft thread shares with the rest of the core.
pub struct RaftLinks {
    pub transport: Arc<Transport>,
    pub inbox: Arc<SnapshotInbox>,
    /// `member/snap`: where a snapshot's rows wait on disk until the backend holds them.
    pub snap_dir: std::path::PathBuf,
    pub rx: Receiver<RaftMsg>,
    pub apply_tx: Sender<ApplyBatch>,
    pub status: Arc<RaftStatus>,
    pub applied: Arc<AtomicU64>,
    /// The proposals' reply registry: a refused proposal is answered here.
    pub wait: Arc<Wait<ApplyResult>>,
    /// Proposals sent to the Raft thread and not yet handled (the bounded queue's fill).
    pub queued_proposals: Arc<AtomicUsize>,
}

/// The Raft thread's state.
pub struct RaftNode {
    node: RawNode<RaftLog>,
    id: u64,
    links: RaftLinks,
    heartbeat: Duration,
    catchup_entries: u64,
    /// Commit index learned from a LightReady, persisted with the next hard state write.
    unsaved_commit: u64,
    next_read_ctx: u64,
    pending_reads: Vec<oneshot::Sender<Result<u64, EtcdError>>>,
    inflight_reads: HashMap<u64, Vec<oneshot::Sender<Result<u64, EtcdError>>>>,
}

impl RaftNode {
    /// Builds the node over `log`. `cfg.applied` is the backend's consistent index.
    pub fn new(cfg: RaftNodeConfig, mut log: RaftLog, links: RaftLinks) -> Result<RaftNode> {
        // Entries applied to the backend were committed; make the hard state say so, as
        // raft-rs requires applied <= commit.
        let last = raft::Storage::last_index(&log)?;
        let applied_idx = cfg.applied.max(log.snapshot_index()).min(last);
        log.set_commit(applied_idx)?;
        log.set_applied(applied_idx);
        let rcfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: 1,
            applied: applied_idx,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 512,
            check_quorum: true,
            max_committed_size_per_ready: 64 << 20,
            pre_vote: cfg.pre_vote,
            ..Default::default()
        };
        rcfg.validate()?;
        let logger = cfg.logger.clone();
        let mut node = RawNode::new(&rcfg, log, &logger)?;
        if cfg.campaign_now {
            node.campaign()?;
        }
        links.applied.store(applied_idx, Ordering::Release);
        Ok(RaftNode {
            node,
            id: cfg.id,
            links,
            heartbeat: cfg.heartbeat,
            catchup_entries: cfg.catchup_entries,
            unsaved_commit: 0,
            next_read_ctx: 1,
            pending_reads: Vec::new(),
            inflight_reads: HashMap::new(),
        })
    }

    /// Runs until `Shutdown` or until every sender is gone.
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + self.heartbeat;
        // A single member campaigned in `new`; become leader without waiting for a tick.
        self.on_ready();
        self.publish_status();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match self.links.rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stop = false;
            if let Some(m) = first {
                stop |= self.handle(m);
                while let Ok(m) = self.links.rx.try_recv() {
                    stop |= self.handle(m);
                }
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick = Instant::now() + self.heartbeat;
            }
            self.issue_reads();
            self.sync_applied();
            self.on_ready();
            self.publish_status();
            if stop {
                break;
            }
        }
        for tx in self.pending_reads.drain(..) {
            let _ = tx.send(Err(EtcdError::Stopped));
        }
        for (_, txs) in self.inflight_reads.drain() {
            for tx in txs {
                let _ = tx.send(Err(EtcdError::Stopped));
            }
        }
        tracing::info!("raft node stopped");
    }

    /// Handles one request; returns true on shutdown.
    fn handle(&mut self, m: RaftMsg) -> bool {
        match m {
            RaftMsg::Propose { data, id } => {
                self.links.queued_proposals.fetch_sub(1, Ordering::AcqRel);
                if let Err(e) = self.node.propose(vec![], data) {
                    let e = proposal_error(&self.node, e);
                    self.links.wait.trigger(id, Err(e));
                }
            }
            RaftMsg::ProposeConfChange { cc, context, id } => {
                // The previous change may have been answered before raft-rs learned it was
                // applied; raft-rs would silently turn this proposal into an empty entry.
                self.sync_applied();
                let r = self.check_conf_change(&cc).and_then(|()| {
                    self.node
                        .propose_conf_change(context, cc)
                        .map_err(|e| proposal_error(&self.node, e))
                });
                if let Err(e) = r {
                    self.links.wait.trigger(id, Err(e));
                }
            }
            RaftMsg::ReadIndex(tx) => self.pending_reads.push(tx),
            RaftMsg::Step(msg) => {
                if let Err(e) = step_peer_message(&mut self.node, msg) {
                    tracing::debug!(error = %e, "dropping raft message");
                }
            }
            RaftMsg::Unreachable(id) => self.node.report_unreachable(id),
            RaftMsg::SnapshotStatus(id, ok) => {
                let st = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(id, st);
            }
            RaftMsg::ApplyConfChange {
                cc,
                peer_urls,
                done,
            } => {
                let cs = match self.node.apply_conf_change(&cc) {
                    Ok(cs) => cs,
                    Err(e) => fatal(&format!("applying conf change: {e}")),
                };
                if let Err(e) = self.node.mut_store().set_conf_state(cs.clone()) {
                    fatal(&format!("saving conf state: {e}"));
                }
                match cc.get_change_type() {
                    ConfChangeType::RemoveNode => self.links.transport.remove_peer(cc.node_id),
                    _ => self.links.transport.add_peer(cc.node_id, peer_urls),
                }
                self.links
                    .status
                    .is_learner
                    .store(cs.learners.contains(&self.id), Ordering::Release);
                let _ = done.send(cs);
            }
            RaftMsg::UpdatePeer(id, urls) => self.links.transport.add_peer(id, urls),
            RaftMsg::TransferLeader(to) => self.node.transfer_leader(to),
            RaftMsg::TransferToBest(done) => {
                let mut best = None;
                if self.node.raft.state == StateRole::Leader {
                    let voters: Vec<u64> =
                        self.node.raft.prs().conf().voters().ids().iter().collect();
                    best = voters
                        .into_iter()
                        .filter(|id| *id != self.id)
                        .filter_map(|id| self.node.raft.prs().get(id).map(|p| (p.matched, id)))
                        .max()
                        .map(|(_, id)| id);
                    if let Some(to) = best {
                        self.node.transfer_leader(to);
                    }
                }
                let _ = done.send(best);
            }
            RaftMsg::Compact(durable) => {
                let idx = durable.saturating_sub(self.catchup_entries);
                if let Err(e) = self.node.mut_store().compact(idx) {
                    fatal(&format!("compacting raft log to {idx}: {e}"));
                }
            }
            RaftMsg::Shutdown => return true,
        }
        false
    }

    /// Tells raft-rs how far the apply loop got (it refuses a new conf change while an
    /// earlier one is not applied, and needs `applied` for snapshots).
    fn sync_applied(&mut self) {
        let applied = self
            .links
            .applied
            .load(Ordering::Acquire)
            .min(self.node.raft.raft_log.committed)
            // An installed snapshot's data may run past its raft index (the leader read
            // its backend after taking the snapshot); raft-rs only accepts up to persisted.
            .min(self.node.raft.raft_log.persisted);
        if applied > self.node.raft.raft_log.applied {
            self.node.advance_apply_to(applied);
            self.node.mut_store().set_applied(applied);
        }
    }

    /// Batches every waiting linearizable read into one read-index request.
    fn issue_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        if self.node.raft.leader_id == raft::INVALID_ID {
            // etcd keeps waiting for a leader until the request times out.
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        // The leader keys pending reads by context: include our id so contexts of different
        // members never collide.
        let mut rctx = self.id.to_be_bytes().to_vec();
        rctx.extend_from_slice(&ctx.to_be_bytes());
        let waiters = std::mem::take(&mut self.pending_reads);
        self.inflight_reads.insert(ctx, waiters);
        self.node.read_index(rctx);
    }

    fn on_ready(&mut self) {
        if !self.node.has_ready() {
            return;
        }
        let mut ready = self.node.ready();
        if let Some(ss) = ready.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            let index = snap.get_metadata().index;
            let Some(rows) = self.links.inbox.take(index) else {
                fatal(&format!(
                    "raft snapshot at {index} arrived without its data"
                ));
            };
            // On disk before the log drops the entries the snapshot covers.
            if let Err(e) = crate::pending_snapshot::save(&self.links.snap_dir, index, &rows) {
                fatal(&format!("saving raft snapshot {index}'s rows: {e}"));
            }
            fail::fail_point!("raftBeforeApplySnap");
            if let Err(e) = self.node.mut_store().apply_snapshot(&snap) {
                fatal(&format!("applying raft snapshot: {e}"));
            }
            fail::fail_point!("raftAfterApplySnap");
            self.links.status.is_learner.store(
                snap.get_metadata()
                    .get_conf_state()
                    .learners
                    .contains(&self.id),
                Ordering::Release,
            );
            if self
                .links
                .apply_tx
                .send(ApplyBatch::Snapshot { index, rows })
                .is_err()
            {
                fatal("apply loop is gone");
            }
        }
        self.forward_committed(ready.take_committed_entries());
        let mut hs = ready.hs().cloned();
        if !ready.must_sync() {
            // Only the commit index moved (etcd's `MustSync`). Raft needs no durable commit:
            // a quorum re-teaches it and bootstrap raises it to the consistent index. It rides
            // along with the next write that must be synced, instead of costing an fsync that
            // the next proposal would wait behind.
            if let Some(h) = hs.take() {
                self.unsaved_commit = self.unsaved_commit.max(h.commit);
            }
        }
        if hs.is_some() || !ready.entries().is_empty() {
            if self.unsaved_commit > 0 {
                let base = hs.get_or_insert_with(|| self.node.store().hard_state().clone());
                base.commit = base.commit.max(self.unsaved_commit);
                self.unsaved_commit = 0;
            }
            if let Err(e) = self.node.mut_store().persist(ready.entries(), hs.as_ref()) {
                let hint = if is_disk_full(&e) {
                    " (the data dir's disk is full: free space and restart; nothing that was \
                     not written was acknowledged)"
                } else {
                    ""
                };
                fatal(&format!("writing raft log: {e}{hint}"));
            }
        }
        self.answer_reads(ready.take_read_states());
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance_append(ready);
        if let Some(commit) = light.commit_index() {
            self.unsaved_commit = self.unsaved_commit.max(commit);
        }
        self.send(light.take_messages());
        self.forward_committed(light.take_committed_entries());
    }

    fn answer_reads(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            let mut ctx = [0u8; 8];
            if rs.request_ctx.len() != 16 || rs.request_ctx[..8] != self.id.to_be_bytes() {
                continue;
            }
            ctx.copy_from_slice(&rs.request_ctx[8..]);
            if let Some(txs) = self.inflight_reads.remove(&u64::from_be_bytes(ctx)) {
                for tx in txs {
                    let _ = tx.send(Ok(rs.index));
                }
            }
        }
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        let was_leader = self.links.status.is_leader.load(Ordering::Acquire);
        let is_leader = role == StateRole::Leader;
        if leader != self.links.status.leader() {
            if leader != 0 {
                crate::metrics::LEADER_CHANGES.inc();
            }
            tracing::info!(
                leader = format!("{leader:x}"),
                term = self.node.raft.term,
                "raft leader changed"
            );
        }
        if was_leader && !is_leader {
            // Reads waiting on the old leadership cannot complete.
            for (_, txs) in self.inflight_reads.drain() {
                for tx in txs {
                    let _ = tx.send(Err(EtcdError::LeaderChanged));
                }
            }
        }
        crate::metrics::HAS_LEADER.set(if leader != 0 { 1.0 } else { 0.0 });
        crate::metrics::IS_LEADER.set(if is_leader { 1.0 } else { 0.0 });
        self.links.status.leader.store(leader, Ordering::Release);
        self.links
            .status
            .is_leader
            .store(is_leader, Ordering::Release);
        self.links.status.leader_watch.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        });
    }

    fn publish_status(&self) {
        self.links
            .status
            .term
            .store(self.node.raft.term, Ordering::Release);
        self.links
            .status
            .commit
            .store(self.node.raft.raft_log.committed, Ordering::Release);
        crate::metrics::PROPOSALS_COMMITTED.set(self.node.raft.raft_log.committed as f64);
    }

    fn forward_committed(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        if self
            .links
            .apply_tx
            .send(ApplyBatch::Entries(entries))
            .is_err()
        {
            fatal("apply loop is gone");
        }
    }

    fn send(&self, msgs: Vec<Message>) {
        fail::fail_point!("beforeSendMessage", |_| ());
        if !msgs.is_empty() {
            self.links.transport.send(msgs);
        }
    }

    /// etcd's checks before a membership change: promoting a learner needs the learner to
    /// have caught up (match >= 90% of the leader's commit index); only the leader knows.
    fn check_conf_change(&self, cc: &ConfChange) -> Result<(), EtcdError> {
        let learners = self.node.raft.prs().conf().learners();
        if cc.get_change_type() == ConfChangeType::AddNode && learners.contains(&cc.node_id) {
            if self.node.raft.state != StateRole::Leader {
                return Err(EtcdError::NotLeader);
            }
            let matched = self
                .node
                .raft
                .prs()
                .get(cc.node_id)
                .map(|p| p.matched)
                .unwrap_or(0);
            let committed = self.node.raft.raft_log.committed;
            if (matched as f64) < (committed as f64) * 0.9 {
                return Err(EtcdError::LearnerNotReady);
            }
        }
        Ok(())
    }
}

/// Steps a message from a peer into Raft. raft-rs trusts its peers and panics on some
/// messages no correct peer sends (found by the `raft_message` fuzz target); those are
/// refused here instead of stopping the member:
/// - a term on a forwarded proposal or read index request, or none on anything else;
/// - a heartbeat committing past our last index (a leader sends at most what we matched);
/// - an append after a non-zero index at term 0, or whose entries are not consecutive from
///   `index + 1` with terms from `log_term` (at least 1) up to the message's term;
/// - a leader transfer request while not the leader (forwarding it would panic);
/// - a forwarded proposal without entries;
/// - a read index request without exactly one entry (its context; the leader reads
///   `entries[0]`);
/// - a snapshot at term 0 or past the message's term, or whose conf state raft-rs cannot
///   restore as it is.
pub(crate) fn step_peer_message<S: raft::Storage>(
    node: &mut RawNode<S>,
    m: Message,
) -> raft::Result<()> {
    let refuse = |why: String| Err(raft::Error::ConfigInvalid(format!("peer message: {why}")));
    // raft's wire rule: forwarded proposals and read index requests carry no term, every
    // other message does (raft-rs panics forwarding or answering one that breaks it).
    let forwarded = matches!(
        m.get_msg_type(),
        MessageType::MsgPropose | MessageType::MsgReadIndex
    );
    if forwarded != (m.term == 0) {
        return refuse(format!("{:?} with term {}", m.get_msg_type(), m.term));
    }
    match m.get_msg_type() {
        MessageType::MsgHeartbeat if m.commit > node.raft.raft_log.last_index() => {
            return refuse(format!(
                "heartbeat commit {} past the last index {}",
                m.commit,
                node.raft.raft_log.last_index()
            ));
        }
        MessageType::MsgAppend => {
            // raft-rs answers term 0 for an index past its log, so an append "after" such
            // an index at term 0 would be taken, leaving a gap in the log.
            if m.index > 0 && m.log_term == 0 {
                return refuse(format!("append after index {} at term 0", m.index));
            }
            let (mut want, mut term) = (m.index.checked_add(1), m.log_term);
            for e in m.get_entries() {
                if Some(e.index) != want || e.term < term.max(1) || e.term > m.term {
                    return refuse(format!(
                        "append entry {} at term {} after {} at term {} (message term {})",
                        e.index, e.term, m.index, m.log_term, m.term
                    ));
                }
                (want, term) = (e.index.checked_add(1), e.term);
            }
        }
        // A follower forwards it to the leader as it is, term included, which raft-rs
        // refuses with a panic: only the leader takes one from a peer.
        MessageType::MsgTransferLeader if node.raft.state != StateRole::Leader => {
            return refuse("leader transfer request to a member that is not the leader".into());
        }
        MessageType::MsgPropose if m.get_entries().is_empty() => {
            return refuse("forwarded proposal without entries".into());
        }
        MessageType::MsgReadIndex if m.get_entries().len() != 1 => {
            return refuse(format!("read index with {} entries", m.get_entries().len()));
        }
        MessageType::MsgSnapshot => {
            // raft-rs takes a snapshot at term 0 for one it already has (term 0 is what it
            // answers for an index past its log) and commits up to it, past its log.
            let meta = m.get_snapshot().get_metadata();
            if meta.term == 0 || meta.term > m.term {
                return refuse(format!(
                    "snapshot at term {} in a message of term {}",
                    meta.term, m.term
                ));
            }
            oxcd_storage::raft_log::check_conf_state(
                m.get_snapshot().get_metadata().get_conf_state(),
            )
            .or_else(refuse)?;
        }
        _ => {}
    }
    node.step(m)
}

fn proposal_error(node: &RawNode<RaftLog>, e: raft::Error) -> EtcdError {
    match e {
        raft::Error::ProposalDropped => {
            if node.raft.leader_id == raft::INVALID_ID {
                EtcdError::NoLeader
            } else {
                EtcdError::LeaderChanged
            }
        }
        other => EtcdError::Internal(other.to_string()),
    }
}

/// Stops the process after a storage failure: acknowledging anything further could lose it.
/// Whether a storage error is the disk being full (ENOSPC, or EDQUOT for a quota).
fn is_disk_full(e: &oxcd_storage::Error) -> bool {
    matches!(e, oxcd_storage::Error::Io(io)
        if matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
}

pub fn fatal(msg: &str) -> ! {
    tracing::error!("fatal: {msg}");
    eprintln!("oxcd: fatal: {msg}");
    std::process::exit(1);
}
