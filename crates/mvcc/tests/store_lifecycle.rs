//! The store end to end on a real backend: writes, txns, compaction, reopen, and the
//! published-revision isolation of readers. Expected values follow etcd's rules.

use std::sync::Arc;

use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use oxcd_api::{mvccpb::KeyValue, EtcdError};
use oxcd_mvcc::{kv_apply, validate, Error, Store};
use oxcd_storage::{Backend, BackendConfig};

struct Node {
    backend: Arc<Backend>,
    store: Store,
}

impl Node {
    fn open(path: &std::path::Path) -> Node {
        let backend = Arc::new(Backend::open(path, BackendConfig::default()).unwrap());
        let store = Store::open(Arc::clone(&backend)).unwrap();
        Node { backend, store }
    }

    /// One apply batch: each closure is one raft entry's write txn.
    fn apply<T>(&self, f: impl FnOnce(&mut oxcd_mvcc::WriteTxn<'_>) -> T) -> T {
        let mut wtx = self.backend.write_tx().unwrap();
        let out = {
            let mut w = self.store.write(&mut wtx).unwrap();
            let out = f(&mut w);
            w.end();
            out
        };
        self.backend.commit(wtx).unwrap();
        self.store.publish();
        out
    }

    fn put(&self, k: &str, v: &str) -> i64 {
        let req = PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        };
        validate::check_put_request(&req).unwrap();
        let resp = self.apply(|w| kv_apply::put(w, &req)).unwrap();
        resp.header.unwrap().revision
    }

    fn delete(&self, k: &str, end: &str) -> (i64, i64) {
        let req = DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        };
        let resp = self.apply(|w| kv_apply::delete_range(w, &req)).unwrap();
        (resp.deleted, resp.header.unwrap().revision)
    }

    fn get_at(&self, k: &str, rev: i64) -> Result<Option<KeyValue>, Error> {
        let req = RangeRequest {
            key: k.into(),
            revision: rev,
            ..Default::default()
        };
        Ok(kv_apply::range(&self.store, &req)?.kvs.into_iter().next())
    }

    fn compact(&self, rev: i64) -> Result<i64, Error> {
        let mut wtx = self.backend.write_tx().unwrap();
        let resp = kv_apply::compaction(
            &self.store,
            &mut wtx,
            &CompactionRequest {
                revision: rev,
                physical: true,
            },
        )?;
        self.backend.commit_durable(wtx).unwrap();
        Ok(resp.header.unwrap().revision)
    }
}

fn meta(kv: &KeyValue) -> (i64, i64, i64) {
    (kv.create_revision, kv.mod_revision, kv.version)
}

fn put_op(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

/// Checks the whole history of the scenario below; `compacted` is the compaction revision.
fn check_history(n: &Node, compacted: Option<i64>) {
    assert_eq!(n.store.current_revision(), 7);
    assert_eq!(n.store.published_revision(), 7);
    let c = compacted.unwrap_or(0);
    let at = |rev: i64| n.get_at("a", rev);
    let expect = |rev: i64, want: Option<(i64, i64, i64)>| {
        if rev < c {
            assert!(matches!(at(rev), Err(Error::Compacted)), "a@{rev}");
        } else {
            assert_eq!(at(rev).unwrap().as_ref().map(meta), want, "a@{rev}");
        }
    };
    expect(1, None);
    expect(2, Some((2, 2, 1)));
    expect(3, Some((2, 3, 2)));
    expect(4, None);
    expect(5, Some((5, 5, 1)));
    expect(6, Some((5, 6, 2)));
    expect(7, Some((5, 6, 2)));
    assert_eq!(at(0).unwrap().unwrap().value, b"a6");
    assert!(matches!(at(8), Err(Error::FutureRev)));

    let b = n.get_at("b", 0).unwrap().unwrap();
    assert_eq!(meta(&b), (6, 6, 1));
    let c7 = n.get_at("c", 0).unwrap().unwrap();
    assert_eq!(meta(&c7), (7, 7, 1));
    if c <= 6 {
        assert_eq!(n.get_at("c", 6).unwrap(), None);
    }
}

/// rev 2: put a; 3: put a; 4: delete a; 5: put a; 6: txn (a version 1 -> put a, put b);
/// 7: txn in the same batch as a failed compare (put c).
fn build_history(n: &Node) {
    assert_eq!(
        n.store.current_revision(),
        1,
        "an empty store is at revision 1"
    );
    assert_eq!(n.put("a", "a2"), 2);
    assert_eq!(n.put("a", "a3"), 3);
    assert_eq!(n.delete("a", ""), (1, 4));
    assert_eq!(
        n.delete("a", ""),
        (0, 4),
        "deleting nothing keeps the revision"
    );
    assert_eq!(n.put("a", "a5"), 5);

    let t = TxnRequest {
        compare: vec![Compare {
            key: b"a".to_vec(),
            target: CompareTarget::Version as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(TargetUnion::Version(1)),
            range_end: vec![],
        }],
        success: vec![put_op("a", "a6"), put_op("b", "b6")],
        failure: vec![],
    };
    validate::check_txn(&t, validate::DEFAULT_MAX_TXN_OPS).unwrap();
    let resp = n.apply(|w| kv_apply::txn(w, &t)).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 6);

    // Two raft entries in one backend transaction: a txn whose compare fails (no write)
    // and one that puts c; the second gets revision 7.
    let mut wtx = n.backend.write_tx().unwrap();
    for (i, t) in [
        t.clone(),
        TxnRequest {
            compare: vec![],
            success: vec![put_op("c", "c7")],
            failure: vec![],
        },
    ]
    .iter()
    .enumerate()
    {
        let mut w = n.store.write(&mut wtx).unwrap();
        let resp = kv_apply::txn(&mut w, t).unwrap();
        w.end();
        let want = if i == 0 { (false, 6) } else { (true, 7) };
        assert_eq!((resp.succeeded, resp.header.unwrap().revision), want);
    }
    n.backend.commit(wtx).unwrap();
    n.store.publish();
}

#[test]
fn history_survives_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("member/snap/db");
    {
        let n = Node::open(&path);
        build_history(&n);
        check_history(&n, None);
    }
    {
        let n = Node::open(&path);
        check_history(&n, None);
        assert_eq!(n.store.compact_revision(), -1);
        // Compact at 4 (a's tombstone): 3 is gone, 4 shows nothing for a.
        assert_eq!(n.compact(4).unwrap(), 7);
        check_history(&n, Some(4));
        let e: EtcdError = n.compact(4).unwrap_err().into();
        assert_eq!(e, EtcdError::Compacted);
        let e: EtcdError = n.compact(8).unwrap_err().into();
        assert_eq!(e, EtcdError::FutureRev);
    }
    {
        let n = Node::open(&path);
        assert_eq!(n.store.compact_revision(), 4);
        check_history(&n, Some(4));
        assert_eq!(n.compact(6).unwrap(), 7);
        check_history(&n, Some(6));
    }
    let n = Node::open(&path);
    check_history(&n, Some(6));
    assert_eq!(n.put("a", "a8"), 8);
    assert_eq!(meta(&n.get_at("a", 0).unwrap().unwrap()), (5, 8, 3));
}

#[test]
fn readers_do_not_see_unpublished_writes() {
    let dir = tempfile::tempdir().unwrap();
    let n = Node::open(&dir.path().join("db"));
    n.put("k", "v1");

    let mut wtx = n.backend.write_tx().unwrap();
    let mut w = n.store.write(&mut wtx).unwrap();
    kv_apply::put(
        &mut w,
        &PutRequest {
            key: b"k".to_vec(),
            value: b"v2".to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
    w.end();

    // Another thread reads while the batch is neither committed nor published.
    std::thread::scope(|s| {
        s.spawn(|| {
            let kv = n.get_at("k", 0).unwrap().unwrap();
            assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v1"[..], 2));
            assert!(matches!(n.get_at("k", 3), Err(Error::FutureRev)));
        });
    });
    n.backend.commit(wtx).unwrap();
    assert_eq!(n.get_at("k", 0).unwrap().unwrap().value, b"v1");
    n.store.publish();
    let kv = n.get_at("k", 0).unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.version),
        (&b"v2"[..], 3, 2)
    );
}
