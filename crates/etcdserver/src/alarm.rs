//! Alarms (etcd's `alarmStore`): which member raised which alarm. Raised and cleared
//! only through Raft (`InternalRequest::Alarm`), kept in the backend's alarm table, and
//! mirrored in memory so every request's guard reads them without a transaction.
//!
//! Invariants:
//! - The in-memory set equals the alarm table as of the last applied entry (rebuilt on
//!   open and after a snapshot install), so every member refuses the same requests.
//! - Activating an alarm that is already active, or deactivating one that is not, changes
//!   nothing and answers no alarm (etcd answers an empty list then).

use std::collections::BTreeSet;

use oxcd_api::etcdserverpb::{AlarmMember, AlarmType};
use oxcd_storage::{Backend, WriteTx};
use parking_lot::RwLock;

use crate::error::{Error, Result};

/// The active alarms: (member id, alarm type). The table itself is storage's
/// (`oxcd_storage::alarm`); this is its in-memory mirror.
#[derive(Debug, Default)]
pub struct AlarmStore {
    active: RwLock<BTreeSet<(u64, i32)>>,
}

impl AlarmStore {
    /// Loads the alarms stored in the backend.
    pub fn open(backend: &Backend) -> Result<AlarmStore> {
        let s = AlarmStore::default();
        s.reload(backend)?;
        Ok(s)
    }

    /// Re-reads the alarm table (after a snapshot replaced the backend).
    pub fn reload(&self, backend: &Backend) -> Result<()> {
        let set = oxcd_storage::alarm::list(backend)?
            .into_iter()
            .map(|m| (m.member_id, m.alarm))
            .collect();
        *self.active.write() = set;
        Ok(())
    }

    /// Raises `alarm` for `member_id`; the alarm if it was not active yet.
    pub fn activate(
        &self,
        wtx: &mut WriteTx,
        member_id: u64,
        alarm: i32,
    ) -> Result<Option<AlarmMember>> {
        let Ok(kind) = AlarmType::try_from(alarm) else {
            return Err(Error::Etcd(oxcd_api::EtcdError::InvalidArgument(format!(
                "unknown alarm type {alarm}"
            ))));
        };
        if kind == AlarmType::None || self.active.read().contains(&(member_id, alarm)) {
            return Ok(None);
        }
        oxcd_storage::alarm::activate(wtx, member_id, kind)?;
        self.active.write().insert((member_id, alarm));
        Ok(Some(AlarmMember { member_id, alarm }))
    }

    /// Clears `alarm` for `member_id`; the alarm if it was active.
    pub fn deactivate(
        &self,
        wtx: &mut WriteTx,
        member_id: u64,
        alarm: i32,
    ) -> Result<Option<AlarmMember>> {
        let Ok(kind) = AlarmType::try_from(alarm) else {
            return Ok(None);
        };
        if !self.active.read().contains(&(member_id, alarm)) {
            return Ok(None);
        }
        oxcd_storage::alarm::deactivate(wtx, member_id, kind)?;
        self.active.write().remove(&(member_id, alarm));
        Ok(Some(AlarmMember { member_id, alarm }))
    }

    /// Active alarms of type `alarm` (`NONE`: all of them), ordered by member then type.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .filter(|(_, a)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether any member raised `alarm`.
    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.read().iter().any(|(_, a)| *a == alarm as i32)
    }
}

/// etcd's text form of an alarm in `Status.errors` (gogoproto's compact text).
pub fn describe(m: &AlarmMember) -> String {
    let name = AlarmType::try_from(m.alarm)
        .map(|a| a.as_str_name())
        .unwrap_or("NONE");
    format!("memberID:{} alarm:{name} ", m.member_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_storage::BackendConfig;

    #[test]
    fn alarms_persist_and_filter_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = Backend::open(&path, BackendConfig::default()).unwrap();
        let s = AlarmStore::open(&b).unwrap();
        let mut tx = b.write_tx().unwrap();
        let nospace = AlarmType::Nospace as i32;
        assert!(s.activate(&mut tx, 7, nospace).unwrap().is_some());
        assert!(
            s.activate(&mut tx, 7, nospace).unwrap().is_none(),
            "already active"
        );
        assert!(s
            .activate(&mut tx, 9, AlarmType::Corrupt as i32)
            .unwrap()
            .is_some());
        assert!(s
            .activate(&mut tx, 9, AlarmType::None as i32)
            .unwrap()
            .is_none());
        b.commit_durable(tx).unwrap();
        assert_eq!(s.get(AlarmType::None as i32).len(), 2);
        assert_eq!(
            s.get(nospace),
            vec![AlarmMember {
                member_id: 7,
                alarm: nospace
            }]
        );
        assert!(s.is_active(AlarmType::Corrupt));
        drop(b);

        let b = Backend::open(&path, BackendConfig::default()).unwrap();
        let s = AlarmStore::open(&b).unwrap();
        assert_eq!(
            s.get(AlarmType::None as i32).len(),
            2,
            "reloaded from the table"
        );
        let mut tx = b.write_tx().unwrap();
        assert!(s.deactivate(&mut tx, 7, nospace).unwrap().is_some());
        assert!(s.deactivate(&mut tx, 7, nospace).unwrap().is_none());
        b.commit_durable(tx).unwrap();
        assert!(!s.is_active(AlarmType::Nospace));
        assert_eq!(
            describe(&AlarmMember {
                member_id: 9,
                alarm: AlarmType::Corrupt as i32
            }),
            "memberID:9 alarm:CORRUPT "
        );
    }
}
