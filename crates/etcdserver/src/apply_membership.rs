//! The apply loop's membership work: conf change entries, member updates and installing a
//! snapshot received from the leader.
//!
//! Invariants:
//! - A conf change is applied to Raft (and the transport) for every committed entry, even
//!   one whose data a snapshot already brought; the member list in the backend changes in
//!   the same transaction as the entry's consistent index.
//! - Installing a snapshot replaces the backend's tables durably, then rebuilds the MVCC
//!   index and the member list from them; `applied` becomes the snapshot's consistent index.

use std::sync::atomic::Ordering;

use oxcd_api::oxcdpb::{BackendRow, ConfChangeContext, MemberAttributes};
use oxcd_api::EtcdError;
use oxcd_storage::WriteTx;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry};

use crate::apply::{Applied, Applier, ApplyResult};
use crate::membership::RaftCluster;
use crate::raft_node::{fatal, RaftMsg};

impl Applier {
    /// Applies the conf change in `e`. With `wtx`, the member list is updated in the
    /// backend too; returns the waiting request's id and result.
    pub(crate) fn apply_conf_change(
        &self,
        wtx: Option<&mut WriteTx>,
        e: &Entry,
    ) -> Option<(u64, ApplyResult)> {
        let cc = match ConfChange::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => fatal(&format!("undecodable conf change at {}: {err}", e.index)),
        };
        let ctx = ConfChangeContext::decode(cc.get_context()).unwrap_or_default();
        let member = ctx.member.clone().unwrap_or_default();
        if let Some(wtx) = wtx {
            let mut cluster = self.cluster.write();
            match cc.get_change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    let learner = cc.get_change_type() == ConfChangeType::AddLearnerNode;
                    let entry =
                        cluster
                            .members
                            .entry(cc.node_id)
                            .or_insert_with(|| MemberAttributes {
                                id: cc.node_id,
                                ..member.clone()
                            });
                    entry.is_learner = learner;
                }
                ConfChangeType::RemoveNode => {
                    cluster.members.remove(&cc.node_id);
                    if let Err(err) = RaftCluster::delete(wtx, cc.node_id) {
                        fatal(&format!("removing member: {err}"));
                    }
                }
            }
            if let Err(err) = cluster.save(wtx) {
                fatal(&format!("saving members: {err}"));
            }
        }
        let peer_urls = self
            .cluster
            .read()
            .members
            .get(&cc.node_id)
            .map(|m| m.peer_urls.clone())
            .unwrap_or(member.peer_urls);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let removed_self =
            cc.get_change_type() == ConfChangeType::RemoveNode && cc.node_id == self.member_id;
        if self
            .raft_tx
            .send(RaftMsg::ApplyConfChange {
                cc,
                peer_urls,
                done: done_tx,
            })
            .is_err()
            || done_rx.recv().is_err()
        {
            fatal("raft thread is gone while applying a conf change");
        }
        let result = if removed_self {
            Applied::RemovedSelf
        } else {
            Applied::Membership
        };
        Some((ctx.id, Ok(result)))
    }

    /// Applies a member update: new peer URLs (MemberUpdate), or the name and client URLs a
    /// member publishes when it starts (etcd's attribute publish).
    pub(crate) fn apply_member_update(
        &self,
        wtx: &mut WriteTx,
        m: MemberAttributes,
    ) -> ApplyResult {
        let mut cluster = self.cluster.write();
        let Some(existing) = cluster.members.get_mut(&m.id) else {
            return Err(EtcdError::MemberNotFound);
        };
        let peers_changed = !m.peer_urls.is_empty() && existing.peer_urls != m.peer_urls;
        if !m.peer_urls.is_empty() {
            existing.peer_urls = m.peer_urls.clone();
        }
        if !m.name.is_empty() {
            existing.name = m.name;
        }
        if !m.client_urls.is_empty() {
            existing.client_urls = m.client_urls;
        }
        if let Err(err) = cluster.save(wtx) {
            fatal(&format!("saving members: {err}"));
        }
        if peers_changed {
            let _ = self.raft_tx.send(RaftMsg::UpdatePeer(m.id, m.peer_urls));
        }
        Ok(Applied::Membership)
    }

    /// Replaces the backend with a leader's snapshot and reloads what depends on it.
    pub(crate) fn apply_snapshot(&mut self, index: u64, rows: Vec<BackendRow>) {
        fail::fail_point!("applyBeforeOpenSnapshot");
        if let Err(e) = crate::snapshot::install(&self.backend, &rows) {
            fatal(&format!("installing snapshot at {index}: {e}"));
        }
        fail::fail_point!("applyAfterOpenSnapshot");
        if let Err(e) = crate::pending_snapshot::remove(&self.snap_dir, index) {
            // Harmless if left: bootstrap installs only a file above the consistent index.
            tracing::warn!(index, error = %e, "removing the installed snapshot's pending file");
        }
        self.compaction_state.epoch.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.store.reload() {
            fatal(&format!("reloading the MVCC store from a snapshot: {e}"));
        }
        self.reload_leases();
        if let Err(e) = self.auth.recover(&self.backend) {
            fatal(&format!("reloading the auth store from a snapshot: {e}"));
        }
        if let Err(e) = self.alarms.reload(&self.backend) {
            fatal(&format!("reloading alarms from a snapshot: {e}"));
        }
        match RaftCluster::load(&self.backend) {
            Ok(c) => *self.cluster.write() = c,
            Err(e) => fatal(&format!("reloading members from a snapshot: {e}")),
        }
        let ci = self.backend.durable_index().max(index);
        tracing::info!(
            index,
            consistent_index = ci,
            rows = rows.len(),
            "installed snapshot"
        );
        self.snapshot_index = ci;
        self.applied.store(ci, Ordering::Release);
        let _ = self.applied_tx.send(ci);
    }
}
