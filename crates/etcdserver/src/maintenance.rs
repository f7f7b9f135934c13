//! Maintenance operations (etcd's `maintenance.go` server half): Status, the alarm list,
//! MoveLeader, and AuthStatus.
//!
//! Invariants: MoveLeader answers only once the target leads (waiting on the leader
//! watch, not polling) or with etcd's timeout error; only the leader may hand over, and
//! only to a voting member.

use std::sync::atomic::Ordering;

use oxcd_api::etcdserverpb::{AlarmMember, AuthStatusResponse, StatusResponse};
use oxcd_api::{EtcdError, ETCD_API_VERSION};

use crate::server::EtcdServer;

impl EtcdServer {
    /// This member's Status (etcd's `Maintenance.Status`).
    pub fn status(&self) -> StatusResponse {
        StatusResponse {
            header: Some(self.header(self.store.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size: self.backend.size() as i64,
            leader: self.status.leader(),
            raft_index: self.status.commit(),
            raft_term: self.status.term(),
            raft_applied_index: self.applied.load(Ordering::Acquire),
            errors: vec![],
            db_size_in_use: self.backend.size_in_use() as i64,
            is_learner: self.status.is_learner.load(Ordering::Acquire),
        }
    }

    /// Active alarms. No alarm can be raised until quotas exist, so this is empty.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        Vec::new()
    }

    /// Hands leadership to `target` and waits until it leads.
    pub async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        if self.status.leader() != self.member_id {
            return Err(EtcdError::NotLeader);
        }
        let voter = self
            .cluster
            .read()
            .members
            .get(&target)
            .is_some_and(|m| !m.is_learner);
        if !voter {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if target == self.member_id {
            return Ok(());
        }
        let mut leader = self.status.subscribe_leader();
        self.transfer_leader(target)?;
        tokio::time::timeout(
            self.settings.request_timeout,
            leader.wait_for(|l| *l == target),
        )
        .await
        .map_err(|_| EtcdError::TimeoutDueToLeaderFail)?
        .map_err(|_| EtcdError::Stopped)?;
        Ok(())
    }

    /// Auth's status (auth is disabled until the auth store is wired in).
    pub fn auth_status(&self) -> AuthStatusResponse {
        let st = self.auth.status();
        AuthStatusResponse {
            header: Some(self.header(0)),
            enabled: st.enabled,
            auth_revision: st.revision,
        }
    }
}
