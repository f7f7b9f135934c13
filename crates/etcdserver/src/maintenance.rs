//! Maintenance operations (etcd's `maintenance.go` server half): Status, alarms,
//! MoveLeader, and AuthStatus.
//!
//! Invariants: MoveLeader answers only once the target leads (waiting on the leader
//! watch, not polling) or with etcd's timeout error; only the leader may hand over, and
//! only to a voting member.

use std::sync::atomic::Ordering;

use oxcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxcd_api::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, AuthStatusResponse, DowngradeInfo,
    StatusResponse,
};
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::{EtcdError, ETCD_API_VERSION};

use crate::apply::Applied;
use crate::server::EtcdServer;

/// The storage schema version Status reports (etcd 3.6's `storageVersion`; oxcd's backend
/// holds etcd 3.5's data).
pub(crate) const STORAGE_VERSION: &str = "3.5.0";

impl EtcdServer {
    /// This member's Status (etcd's `Maintenance.Status`); `errors` names a missing leader
    /// and every active alarm, as etcd's.
    pub fn status(&self) -> StatusResponse {
        let mut errors = Vec::new();
        if self.status.leader() == 0 {
            errors.push(EtcdError::NoLeader.to_string());
        }
        errors.extend(self.alarms().iter().map(crate::alarm::describe));
        StatusResponse {
            header: Some(self.header(self.store.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size: self.backend.size() as i64,
            leader: self.status.leader(),
            raft_index: self.status.commit(),
            raft_term: self.status.term(),
            raft_applied_index: self.applied.load(Ordering::Acquire),
            errors,
            db_size_in_use: self.backend.size_in_use() as i64,
            is_learner: self.status.is_learner.load(Ordering::Acquire),
            storage_version: STORAGE_VERSION.to_string(),
            db_size_quota: self.settings.quota_bytes.min(i64::MAX as u64) as i64,
            downgrade_info: Some(DowngradeInfo::default()),
        }
    }

    /// Every active alarm.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.get(AlarmType::None as i32)
    }

    /// etcd's `Maintenance.Alarm`: GET answers locally; ACTIVATE and DEACTIVATE go through
    /// Raft and answer the alarms they changed.
    pub async fn alarm(&self, r: AlarmRequest) -> Result<AlarmResponse, EtcdError> {
        let alarms = if r.action() == AlarmAction::Get {
            self.alarms.get(r.alarm)
        } else {
            self.check_not_learner()?;
            match self.propose(Request::Alarm(r)).await? {
                Applied::Alarm(a) => a,
                _ => {
                    return Err(EtcdError::Internal(
                        "apply returned a response of another kind".into(),
                    ))
                }
            }
        };
        Ok(AlarmResponse {
            header: Some(self.header(self.store.current_revision())),
            alarms,
        })
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

/// etcd 3.6's `Maintenance.Downgrade`. oxcd's backend holds etcd 3.5's data and there is
/// no older storage format it can hand over to (etcd supports downgrading one minor
/// version, and only from 3.6), so every well-formed target is refused with etcd's
/// "invalid downgrade target version", and CANCEL finds no downgrade in flight.
pub fn downgrade(
    action: oxcd_api::etcdserverpb::downgrade_request::DowngradeAction,
    version: &str,
) -> Result<String, EtcdError> {
    use oxcd_api::etcdserverpb::downgrade_request::DowngradeAction;
    if action == DowngradeAction::Cancel {
        return Err(EtcdError::NoInflightDowngrade);
    }
    // etcd's convertToClusterVersion: "major.minor" or "major.minor.patch".
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return Err(EtcdError::WrongDowngradeVersionFormat);
    }
    Err(EtcdError::InvalidDowngradeTargetVersion)
}

#[cfg(test)]
mod downgrade_tests {
    use super::downgrade;
    use oxcd_api::etcdserverpb::downgrade_request::DowngradeAction;
    use oxcd_api::EtcdError;

    #[test]
    fn every_target_is_refused_with_etcds_errors() {
        for a in [DowngradeAction::Validate, DowngradeAction::Enable] {
            assert_eq!(
                downgrade(a, "3.4"),
                Err(EtcdError::InvalidDowngradeTargetVersion)
            );
            assert_eq!(
                downgrade(a, "3.4.0"),
                Err(EtcdError::InvalidDowngradeTargetVersion)
            );
            for bad in ["", "3", "3.x", "v3.4", "3.4.0.1"] {
                assert_eq!(
                    downgrade(a, bad),
                    Err(EtcdError::WrongDowngradeVersionFormat),
                    "{bad}"
                );
            }
        }
        assert_eq!(
            downgrade(DowngradeAction::Cancel, ""),
            Err(EtcdError::NoInflightDowngrade)
        );
    }
}
