//! In-process tests of the lease apply path over a real backend and MVCC store, with a
//! manual clock: expiry found by the lessor, revoke deleting every key in one revision,
//! attachments rebuilt from the store, txn lease checks. No sleeps.

use std::time::Duration;

use oxcd_api::etcdserverpb::{Compare, RequestOp};
use oxcd_api::mvccpb::event::EventType;
use oxcd_lease::{LessorConfig, ManualClock};
use oxcd_storage::schema::LEASE_TABLE;
use oxcd_storage::redb::ReadableTableMetadata;
use oxcd_storage::{Backend, BackendConfig};

use super::*;

struct Fx {
    _dir: tempfile::TempDir,
    backend: Arc<Backend>,
    store: Store,
    lessor: Lessor,
    clock: ManualClock,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        Arc::new(Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap());
    let store = Store::open(backend.clone()).unwrap();
    let clock = ManualClock::new();
    let lessor = Lessor::new(LessorConfig::default(), Arc::new(clock.clone()));
    Fx {
        _dir: dir,
        backend,
        store,
        lessor,
        clock,
    }
}

impl Fx {
    fn grant(&self, id: i64, ttl: i64) {
        let mut wtx = self.backend.write_tx().unwrap();
        self.lessor.grant(&mut wtx, id, ttl).unwrap();
        self.backend.commit(wtx).unwrap();
    }

    fn put(&self, key: &str, lease: i64) {
        let mut wtx = self.backend.write_tx().unwrap();
        let mut txn = self.store.write(&mut wtx).unwrap();
        txn.put(key.as_bytes(), b"v", lease).unwrap();
        self.lessor.apply_events(&txn.end());
        self.backend.commit(wtx).unwrap();
        self.store.publish();
    }

    fn revoke(&self, id: i64) -> Vec<Event> {
        let mut wtx = self.backend.write_tx().unwrap();
        let mut d = KvDeleter {
            store: &self.store,
            wtx: &mut wtx,
            events: Vec::new(),
        };
        self.lessor.revoke(id, &mut d).unwrap();
        let events = std::mem::take(&mut d.events);
        self.backend.commit(wtx).unwrap();
        self.store.publish();
        events
    }

    fn exists(&self, key: &str) -> bool {
        !self
            .store
            .range(key.as_bytes(), b"", RangeOptions::default())
            .unwrap()
            .kvs
            .is_empty()
    }

    fn lease_records(&self) -> u64 {
        let rtx = self.backend.read_tx().unwrap();
        rtx.open_table(LEASE_TABLE).unwrap().len().unwrap()
    }
}

#[test]
fn expired_lease_is_revoked_in_one_revision() {
    let f = fx();
    f.lessor.promote(Duration::from_secs(1));
    f.grant(7, 5);
    f.grant(8, 50);
    for k in ["c", "a", "b"] {
        f.put(k, 7);
    }
    f.put("other", 8);
    assert_eq!(f.lease_records(), 2);
    // Granted on the primary: expires TTL after the grant.
    f.clock.advance(Duration::from_millis(4900));
    assert!(f.lessor.find_expired(1000).is_empty());
    f.clock.advance(Duration::from_millis(200));
    assert_eq!(f.lessor.find_expired(1000), vec![7]);
    let rev = f.store.current_revision();
    let events = f.revoke(7);
    assert_eq!(f.store.current_revision(), rev + 1, "one revision");
    let keys: Vec<&[u8]> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().key.as_slice())
        .collect();
    assert_eq!(keys, vec![&b"a"[..], b"b", b"c"], "sorted");
    assert!(events
        .iter()
        .all(|e| e.r#type == EventType::Delete as i32
            && e.kv.as_ref().unwrap().mod_revision == rev + 1));
    assert!(!f.exists("a") && !f.exists("b") && !f.exists("c"));
    assert!(f.exists("other"));
    assert_eq!(f.lease_records(), 1);
    assert!(!f.lessor.exists(7));
}

#[test]
fn attachments_are_rebuilt_from_the_store() {
    let f = fx();
    f.grant(1, 100);
    f.grant(2, 100);
    f.put("x", 1);
    f.put("y", 2);
    f.put("y", 1);
    f.put("z", 0);
    let fresh = Lessor::new(LessorConfig::default(), Arc::new(f.clock.clone()));
    assert_eq!(fresh.recover(&f.backend).unwrap(), 2);
    assert_eq!(restore_attachments(&f.store, &fresh).unwrap(), 2);
    assert_eq!(fresh.lease_of(b"x"), Some(1));
    assert_eq!(fresh.lease_of(b"y"), Some(1));
    assert_eq!(fresh.lease_of(b"z"), None);
    assert!(fresh.time_to_live(2, true).unwrap().keys.is_empty());
}

#[test]
fn txn_lease_check_follows_the_compares() {
    use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
    let f = fx();
    f.grant(1, 100);
    f.put("k", 0);
    let put_op = |lease: i64| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b"p".to_vec(),
            lease,
            ..Default::default()
        })),
    };
    let exists = Compare {
        result: CompareResult::Greater as i32,
        target: CompareTarget::Version as i32,
        key: b"k".to_vec(),
        target_union: Some(TargetUnion::Version(0)),
        range_end: vec![],
    };
    let txn = |success: i64, failure: i64| TxnRequest {
        compare: vec![exists.clone()],
        success: vec![put_op(success)],
        failure: vec![put_op(failure)],
    };
    let mut wtx = f.backend.write_tx().unwrap();
    let view = f.store.write(&mut wtx).unwrap();
    assert_eq!(check_txn(&f.lessor, &view, &txn(1, 99)), Ok(()));
    assert_eq!(
        check_txn(&f.lessor, &view, &txn(99, 1)),
        Err(EtcdError::LeaseNotFound)
    );
    assert!(txn_has_lease(&txn(0, 99)) && !txn_has_lease(&txn(0, 0)));
}
