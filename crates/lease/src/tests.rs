//! Lessor unit tests: expiry, renew, promote/demote and checkpoints on a manual clock (no
//! sleeps), persistence on a real backend in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use oxcd_api::mvccpb::{event::EventType, Event, KeyValue};
use oxcd_storage::{Backend, BackendConfig, WriteTx};

use super::*;
use crate::clock::ManualClock;

struct Fixture {
    _dir: tempfile::TempDir,
    backend: Backend,
    clock: ManualClock,
    lessor: Lessor,
}

fn fixture(cfg: LessorConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
    let clock = ManualClock::new();
    let lessor = Lessor::new(cfg, Arc::new(clock.clone()));
    Fixture {
        _dir: dir,
        backend,
        clock,
        lessor,
    }
}

impl Fixture {
    fn grant(&self, id: LeaseId, ttl: i64) -> Result<i64, LeaseError> {
        let mut tx = self.backend.write_tx().unwrap();
        let r = self.lessor.grant(&mut tx, id, ttl);
        self.backend.commit(tx).unwrap();
        r
    }

    fn checkpoint(&self, id: LeaseId, remaining: i64) {
        let mut tx = self.backend.write_tx().unwrap();
        self.lessor.checkpoint(&mut tx, id, remaining).unwrap();
        self.backend.commit(tx).unwrap();
    }

    fn revoke(&self, id: LeaseId) -> Result<Vec<Vec<u8>>, LeaseError> {
        let mut d = FakeDeleter {
            tx: self.backend.write_tx().unwrap(),
            deleted: Vec::new(),
        };
        let r = self.lessor.revoke(id, &mut d);
        self.backend.commit(d.tx).unwrap();
        r
    }

    fn advance(&self, secs: f64) {
        self.clock.advance(Duration::from_secs_f64(secs));
    }
}

struct FakeDeleter {
    tx: WriteTx,
    deleted: Vec<Vec<u8>>,
}

impl RangeDeleter for FakeDeleter {
    type Error = String;
    fn delete_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), String> {
        self.deleted.extend_from_slice(keys);
        Ok(())
    }
    fn backend_tx(&mut self) -> &mut WriteTx {
        &mut self.tx
    }
}

fn put(key: &str, lease: LeaseId) -> Event {
    Event {
        r#type: EventType::Put as i32,
        kv: Some(KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: 1,
            lease,
            ..Default::default()
        }),
        prev_kv: None,
    }
}

fn del(key: &str) -> Event {
    Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        }),
        prev_kv: None,
    }
}

#[test]
fn min_ttl_follows_etcd_formula() {
    assert_eq!(min_lease_ttl(10, Duration::from_millis(100)), 2);
    assert_eq!(min_lease_ttl(5, Duration::from_millis(100)), 1);
    assert_eq!(min_lease_ttl(10, Duration::from_millis(300)), 5);
}

#[test]
fn grant_rules() {
    let f = fixture(LessorConfig::default());
    assert_eq!(f.grant(1, 1).unwrap(), 2, "raised to the minimum TTL");
    assert_eq!(f.grant(2, -5).unwrap(), 2);
    assert_eq!(f.grant(3, 100).unwrap(), 100);
    assert!(matches!(f.grant(3, 10), Err(LeaseError::Exists)));
    assert!(matches!(
        f.grant(4, MAX_LEASE_TTL + 1),
        Err(LeaseError::TtlTooLarge)
    ));
    assert_eq!(f.grant(5, MAX_LEASE_TTL).unwrap(), MAX_LEASE_TTL);
    assert!(matches!(f.grant(0, 10), Err(LeaseError::NotFound)));
    assert_eq!(f.lessor.len(), 4);
}

#[test]
fn expiry_only_on_primary_and_rate_limited() {
    let f = fixture(LessorConfig::default());
    for id in 1..=10 {
        f.grant(id, 5).unwrap();
    }
    f.advance(100.0);
    assert!(f.lessor.find_expired(100).is_empty(), "not primary: never");
    f.lessor.promote(Duration::from_secs(1));
    f.advance(5.5);
    assert!(f.lessor.find_expired(100).is_empty(), "extended by 1s");
    f.advance(0.6);
    let first = f.lessor.find_expired(4);
    assert_eq!(first.len(), 4, "limited");
    let rest = f.lessor.find_expired(100);
    assert_eq!(rest.len(), 6);
    // Not reported again until the retry interval passes.
    assert!(f.lessor.find_expired(100).is_empty());
    f.advance(3.1);
    assert_eq!(f.lessor.find_expired(100).len(), 10, "retried");
    for id in 1..=10 {
        f.revoke(id).unwrap();
    }
    f.advance(10.0);
    assert!(f.lessor.find_expired(100).is_empty());
}

#[test]
fn renew_keeps_alive_and_expired_waits_for_revoke() {
    let f = fixture(LessorConfig::default());
    f.lessor.promote(Duration::from_secs(1));
    f.grant(7, 10).unwrap();
    assert_eq!(f.lessor.renew(8), Err(RenewError::NotFound));
    for _ in 0..20 {
        f.advance(6.0);
        assert_eq!(f.lessor.renew(7), Ok(10));
        assert!(f.lessor.find_expired(10).is_empty());
    }
    let t = f.lessor.time_to_live(7, false).unwrap();
    assert_eq!((t.ttl, t.granted_ttl), (10, 10));
    f.advance(4.5);
    assert_eq!(f.lessor.time_to_live(7, false).unwrap().ttl, 5, "truncated");
    f.advance(6.0);
    assert_eq!(f.lessor.renew(7), Err(RenewError::Expired));
    assert_eq!(f.lessor.find_expired(10), vec![7]);
    f.revoke(7).unwrap();
    assert_eq!(f.lessor.renew(7), Err(RenewError::NotFound));
    assert!(f.lessor.time_to_live(7, false).is_none());
    // Renewals do not grow the queue without bound.
    f.grant(9, 10).unwrap();
    for _ in 0..10_000 {
        f.lessor.renew(9).unwrap();
    }
    assert!(f.lessor.expiry_queue_len() < 3000);
}

#[test]
fn demote_stops_expiry_and_renew() {
    let f = fixture(LessorConfig::default());
    f.lessor.promote(Duration::ZERO);
    f.grant(1, 5).unwrap();
    f.lessor.demote();
    assert_eq!(f.lessor.renew(1), Err(RenewError::NotPrimary));
    f.advance(60.0);
    assert!(f.lessor.find_expired(10).is_empty());
    assert_eq!(f.lessor.time_to_live(1, false).unwrap().ttl, FOREVER_SECS);
    f.lessor.promote(Duration::from_secs(1));
    assert_eq!(f.lessor.time_to_live(1, false).unwrap().ttl, 6);
}

#[test]
fn attach_detach_from_events_and_revoke_deletes_sorted_keys() {
    let f = fixture(LessorConfig::default());
    f.grant(1, 10).unwrap();
    f.grant(2, 10).unwrap();
    f.lessor
        .apply_events(&[put("b", 1), put("a", 1), put("c", 2), put("d", 0)]);
    assert_eq!(f.lessor.lease_of(b"a"), Some(1));
    assert_eq!(f.lessor.lease_of(b"d"), None);
    // Re-put "c" with lease 1 moves it; deleting "b" detaches it.
    f.lessor.apply_events(&[put("c", 1), del("b")]);
    assert!(f.lessor.time_to_live(2, true).unwrap().keys.is_empty());
    let ttl = f.lessor.time_to_live(1, true).unwrap();
    assert_eq!(ttl.keys, vec![b"a".to_vec(), b"c".to_vec()]);
    // A put without lease detaches.
    f.lessor.apply_events(&[put("c", 0)]);
    assert_eq!(f.lessor.lease_of(b"c"), None);
    f.lessor.apply_events(&[put("z", 1), put("c", 1)]);
    let mut d = FakeDeleter {
        tx: f.backend.write_tx().unwrap(),
        deleted: Vec::new(),
    };
    let keys = f.lessor.revoke(1, &mut d).unwrap();
    f.backend.commit(d.tx).unwrap();
    assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec(), b"z".to_vec()]);
    assert_eq!(d.deleted, keys);
    assert_eq!(f.lessor.lease_of(b"a"), None);
    assert!(matches!(f.revoke(1), Err(LeaseError::NotFound)));
}

#[test]
fn leases_survive_recovery_with_checkpointed_ttl() {
    let f = fixture(LessorConfig::default());
    f.grant(1, 100).unwrap();
    f.grant(2, 50).unwrap();
    f.grant(3, 20).unwrap();
    f.checkpoint(2, 30);
    f.revoke(3).unwrap();
    f.backend.force_commit().unwrap();
    let clock = ManualClock::new();
    let l2 = Lessor::new(LessorConfig::default(), Arc::new(clock.clone()));
    assert_eq!(l2.recover(&f.backend).unwrap(), 2);
    assert!(!l2.exists(3));
    l2.promote(Duration::from_secs(1));
    assert_eq!(l2.time_to_live(1, false).unwrap().ttl, 101);
    let t2 = l2.time_to_live(2, false).unwrap();
    assert_eq!((t2.ttl, t2.granted_ttl), (31, 50));
}

#[test]
fn checkpoints_keep_remaining_ttl_across_leader_change() {
    let cfg = LessorConfig {
        checkpoint_interval: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let f = fixture(cfg);
    f.lessor.promote(Duration::ZERO);
    f.grant(1, 100).unwrap();
    f.grant(2, 4).unwrap(); // shorter than the interval: never checkpointed
    f.advance(4.0);
    assert!(f.lessor.find_due_checkpoints(10).is_empty());
    f.advance(1.5);
    let cps = f.lessor.find_due_checkpoints(10);
    assert_eq!(
        cps,
        vec![LeaseCheckpoint {
            id: 1,
            remaining_ttl: 95
        }]
    );
    f.checkpoint(1, 95); // applied: schedules the next one
    f.advance(5.0);
    assert_eq!(f.lessor.find_due_checkpoints(10)[0].remaining_ttl, 90);
    f.checkpoint(1, 90);
    // Leader change: the new leader starts from the checkpoint, not the full TTL.
    f.lessor.demote();
    f.advance(2.0);
    f.lessor.promote(Duration::from_secs(1));
    assert_eq!(f.lessor.time_to_live(1, false).unwrap().ttl, 91);
    // A renew first needs the checkpoint cleared through Raft.
    assert_eq!(f.lessor.renew(1), Err(RenewError::ClearCheckpoint));
    f.checkpoint(1, 0);
    assert_eq!(f.lessor.renew(1), Ok(100));
    assert_eq!(f.lessor.time_to_live(1, false).unwrap().ttl, 100);
}

#[test]
fn promote_spreads_mass_expiry() {
    let f = fixture(LessorConfig::default());
    for id in 1..=3000 {
        f.grant(id, 10).unwrap();
    }
    f.lessor.promote(Duration::ZERO);
    let mut per_second = Vec::new();
    let mut total = 0;
    for _ in 0..20 {
        f.advance(1.0);
        let expired = f.lessor.find_expired(100_000);
        for id in &expired {
            f.revoke(*id).unwrap();
        }
        total += expired.len();
        per_second.push(expired.len());
    }
    assert_eq!(total, 3000, "{per_second:?}");
    assert!(
        per_second.iter().all(|&n| n <= 1000),
        "spread out: {per_second:?}"
    );
}

#[test]
fn leases_lists_soonest_first() {
    let f = fixture(LessorConfig::default());
    f.lessor.promote(Duration::ZERO);
    f.grant(5, 30).unwrap();
    f.grant(6, 10).unwrap();
    f.grant(7, 20).unwrap();
    assert_eq!(f.lessor.leases(), vec![6, 7, 5]);
}
