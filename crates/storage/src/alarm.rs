//! The alarm table (etcd's `alarm` bucket, `server/storage/schema/alarm.go`): which member
//! raised which alarm (NOSPACE, CORRUPT).
//!
//! Invariants:
//! - A row's key is the encoded `etcdserverpb.AlarmMember`, its value empty (etcd's
//!   layout), so activating twice stores one row.
//! - Changes are written in the caller's [`WriteTx`] (the apply path's), so an alarm is
//!   durable exactly when the raft entry that raised it is.

use oxcd_api::etcdserverpb::{AlarmMember, AlarmType};
use prost::Message;
use redb::ReadableTable;

use crate::backend::{Backend, WriteTx};
use crate::schema::ALARM_TABLE;
use crate::{Error, Result};

fn key(member_id: u64, alarm: AlarmType) -> Vec<u8> {
    AlarmMember {
        member_id,
        alarm: alarm as i32,
    }
    .encode_to_vec()
}

/// Raises `alarm` for `member_id`; returns whether it was not raised before.
pub fn activate(wtx: &mut WriteTx, member_id: u64, alarm: AlarmType) -> Result<bool> {
    let mut t = wtx.tx.open_table(ALARM_TABLE)?;
    let fresh = t
        .insert(key(member_id, alarm).as_slice(), [].as_slice())?
        .is_none();
    Ok(fresh)
}

/// Clears `alarm` for `member_id`; returns whether it was raised.
pub fn deactivate(wtx: &mut WriteTx, member_id: u64, alarm: AlarmType) -> Result<bool> {
    let mut t = wtx.tx.open_table(ALARM_TABLE)?;
    let was = t.remove(key(member_id, alarm).as_slice())?.is_some();
    Ok(was)
}

/// Every raised alarm, as of the last commit.
pub fn list(backend: &Backend) -> Result<Vec<AlarmMember>> {
    let rtx = backend.read_tx()?;
    let t = rtx.open_table(ALARM_TABLE)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let m = AlarmMember::decode(k.value())
            .map_err(|e| Error::Corrupt(format!("alarm row {:?}: {e}", k.value())))?;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendConfig;

    #[test]
    fn alarms_are_activated_once_deactivated_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let b = Backend::open(&path, BackendConfig::default()).unwrap();
            let mut tx = b.write_tx().unwrap();
            assert!(activate(&mut tx, 1, AlarmType::Nospace).unwrap());
            assert!(!activate(&mut tx, 1, AlarmType::Nospace).unwrap());
            assert!(activate(&mut tx, 2, AlarmType::Corrupt).unwrap());
            assert!(activate(&mut tx, 3, AlarmType::Nospace).unwrap());
            b.commit(tx).unwrap();
            let mut tx = b.write_tx().unwrap();
            assert!(deactivate(&mut tx, 3, AlarmType::Nospace).unwrap());
            assert!(!deactivate(&mut tx, 3, AlarmType::Nospace).unwrap());
            b.commit_durable(tx).unwrap();
        }
        let b = Backend::open(&path, BackendConfig::default()).unwrap();
        let mut got: Vec<_> = list(&b)
            .unwrap()
            .into_iter()
            .map(|m| (m.member_id, m.alarm))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (1, AlarmType::Nospace as i32),
                (2, AlarmType::Corrupt as i32)
            ]
        );
    }
}
