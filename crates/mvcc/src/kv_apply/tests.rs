//! Unit tests of the applier, against etcd 3.5's semantics.

use oxcd_api::etcdserverpb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};

use super::*;
use crate::test_util::{new_store, write};

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn range_req(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn rev(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(-1, |h| h.revision)
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put_req(k, v))),
    }
}

fn op_range(k: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(range_req(k, ""))),
    }
}

fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })),
    }
}

fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(t)),
    }
}

fn cmp(k: &str, target: T, result: R, u: U) -> Compare {
    Compare {
        key: k.into(),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
        range_end: vec![],
    }
}

/// a (create 2, mod 2, v1, value "3"), b (2, 5, v2, "1"), c (3, 3, v1, "2"),
/// d (4, 4, v1, "1", lease 9); current revision 5.
fn populated() -> (
    tempfile::TempDir,
    std::sync::Arc<oxcd_storage::Backend>,
    Store,
) {
    let (d, b, s) = new_store();
    write(&b, &s, |w| {
        w.put(b"a", b"3", 0).unwrap();
        w.put(b"b", b"2", 0).unwrap();
    });
    write(&b, &s, |w| w.put(b"c", b"2", 0).unwrap());
    write(&b, &s, |w| w.put(b"d", b"1", 9).unwrap());
    write(&b, &s, |w| w.put(b"b", b"1", 0).unwrap());
    (d, b, s)
}

fn apply<T>(
    b: &oxcd_storage::Backend,
    s: &Store,
    f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T>,
) -> Result<T> {
    write(b, s, f)
}

#[test]
fn range_basics() {
    let (_d, _b, s) = populated();
    let resp = range(&s, &range_req("a", "\0")).unwrap();
    assert_eq!(keys(&resp), ["a", "b", "c", "d"]);
    assert_eq!((rev(&resp.header), resp.count, resp.more), (5, 4, false));

    let mut r = range_req("a", "\0");
    r.limit = 2;
    let resp = range(&s, &r).unwrap();
    assert_eq!(keys(&resp), ["a", "b"]);
    assert_eq!((resp.count, resp.more), (4, true));
    r.limit = 4;
    assert!(!range(&s, &r).unwrap().more);

    let mut r = range_req("b", "d");
    r.keys_only = true;
    let resp = range(&s, &r).unwrap();
    assert_eq!(keys(&resp), ["b", "c"]);
    assert!(resp
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version > 0));

    let mut r = range_req("a", "\0");
    r.count_only = true;
    let resp = range(&s, &r).unwrap();
    assert_eq!((resp.kvs.len(), resp.count, resp.more), (0, 4, false));

    let mut r = range_req("b", "");
    r.revision = 4;
    let resp = range(&s, &r).unwrap();
    assert_eq!(resp.kvs[0].value, b"2");
    assert_eq!(
        rev(&resp.header),
        5,
        "the header carries the current revision"
    );
    r.revision = 6;
    assert!(matches!(range(&s, &r), Err(Error::FutureRev)));
    r.revision = 0;
    r.sort_target = 42;
    assert!(matches!(range(&s, &r), Err(Error::InvalidSortOption)));
}

#[test]
fn range_sorts_stably() {
    let (_d, _b, s) = populated();
    let sorted = |order: SortOrder, target: SortTarget, limit| {
        let mut r = range_req("a", "\0");
        r.sort_order = order as i32;
        r.sort_target = target as i32;
        r.limit = limit;
        let resp = range(&s, &r).unwrap();
        (keys(&resp), resp.more, resp.count)
    };
    use SortOrder::*;
    use SortTarget::*;
    assert_eq!(sorted(Descend, Key, 0).0, ["d", "c", "b", "a"]);
    assert_eq!(sorted(Ascend, Key, 0).0, ["a", "b", "c", "d"]);
    // Versions: a1 b2 c1 d1 -> equal versions stay in key order.
    assert_eq!(sorted(Ascend, Version, 0).0, ["a", "c", "d", "b"]);
    assert_eq!(sorted(Descend, Version, 0).0, ["b", "a", "c", "d"]);
    // A target without an order sorts ascending.
    assert_eq!(sorted(None, Version, 0).0, ["a", "c", "d", "b"]);
    // Create: a2 b2 c3 d4; mod: a2 b5 c3 d4; value: a"3" b"1" c"2" d"1".
    assert_eq!(sorted(Descend, Create, 0).0, ["d", "c", "a", "b"]);
    assert_eq!(sorted(Ascend, Mod, 0).0, ["a", "c", "d", "b"]);
    assert_eq!(sorted(Ascend, Value, 0).0, ["b", "d", "c", "a"]);
    // Sorted then truncated: the limit applies after sorting the whole range.
    assert_eq!(
        sorted(Descend, Mod, 2),
        (vec!["b".to_string(), "d".to_string()], true, 4)
    );
    // No order with a non-key target fetches limit + 1 (a, b, c) and sorts only those,
    // as etcd: d (value "1") is not seen.
    assert_eq!(
        sorted(None, Value, 2),
        (vec!["b".to_string(), "c".to_string()], true, 4)
    );
}

#[test]
fn range_filters_on_revisions() {
    let (_d, _b, s) = populated();
    let filtered = |f: fn(&mut RangeRequest), limit| {
        let mut r = range_req("a", "\0");
        r.limit = limit;
        f(&mut r);
        let resp = range(&s, &r).unwrap();
        (keys(&resp), resp.more, resp.count)
    };
    assert_eq!(filtered(|r| r.min_mod_revision = 4, 0).0, ["b", "d"]);
    assert_eq!(filtered(|r| r.max_mod_revision = 3, 0).0, ["a", "c"]);
    assert_eq!(filtered(|r| r.min_create_revision = 3, 0).0, ["c", "d"]);
    assert_eq!(filtered(|r| r.max_create_revision = 2, 0).0, ["a", "b"]);
    let (k, more, count) = filtered(|r| r.min_create_revision = 3, 1);
    assert_eq!((k, more, count), (vec!["c".to_string()], true, 4));
}

#[test]
fn put_semantics() {
    let (_d, b, s) = populated();
    let resp = apply(&b, &s, |w| put(w, &put_req("a", "new"))).unwrap();
    assert_eq!((rev(&resp.header), resp.prev_kv.is_none()), (6, true));

    let mut p = put_req("a", "newer");
    p.prev_kv = true;
    let resp = apply(&b, &s, |w| put(w, &p)).unwrap();
    let prev = resp.prev_kv.unwrap();
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"new"[..], 6));

    // ignore_value keeps the value, ignore_lease keeps the lease.
    let p = PutRequest {
        key: b"d".to_vec(),
        value: vec![],
        lease: 0,
        prev_kv: false,
        ignore_value: true,
        ignore_lease: false,
    };
    apply(&b, &s, |w| put(w, &p)).unwrap();
    let kv = &range(&s, &range_req("d", "")).unwrap().kvs[0];
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"1"[..], 0, 2)
    );
    let p = PutRequest {
        key: b"d".to_vec(),
        value: b"v".to_vec(),
        ignore_lease: true,
        ..Default::default()
    };
    apply(&b, &s, |w| put(w, &p)).unwrap();
    let kv = &range(&s, &range_req("d", "")).unwrap().kvs[0];
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"v"[..], 0));

    // On a missing key both fail and write nothing.
    let cur = s.current_revision();
    for (iv, il) in [(true, false), (false, true)] {
        let p = PutRequest {
            key: b"zz".to_vec(),
            ignore_value: iv,
            ignore_lease: il,
            ..Default::default()
        };
        assert!(matches!(
            apply(&b, &s, |w| put(w, &p)),
            Err(Error::KeyNotFound)
        ));
    }
    assert_eq!(s.current_revision(), cur);
}

#[test]
fn put_keeps_the_lease_given() {
    let (_d, b, s) = new_store();
    let mut p = put_req("a", "1");
    p.lease = 42;
    apply(&b, &s, |w| put(w, &p)).unwrap();
    assert_eq!(range(&s, &range_req("a", "")).unwrap().kvs[0].lease, 42);
}

#[test]
fn delete_range_semantics() {
    let (_d, b, s) = populated();
    let d = DeleteRangeRequest {
        key: b"x".to_vec(),
        range_end: vec![],
        prev_kv: true,
    };
    let resp = apply(&b, &s, |w| delete_range(w, &d)).unwrap();
    assert_eq!(
        (resp.deleted, rev(&resp.header), resp.prev_kvs.len()),
        (0, 5, 0)
    );
    assert_eq!(
        s.current_revision(),
        5,
        "deleting nothing does not bump the revision"
    );

    let d = DeleteRangeRequest {
        key: b"b".to_vec(),
        range_end: b"d".to_vec(),
        prev_kv: true,
    };
    let resp = apply(&b, &s, |w| delete_range(w, &d)).unwrap();
    assert_eq!((resp.deleted, rev(&resp.header)), (2, 6));
    let prev: Vec<_> = resp.prev_kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(prev, vec![b"b".to_vec(), b"c".to_vec()]);

    let d = DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: b"\0".to_vec(),
        prev_kv: false,
    };
    let resp = apply(&b, &s, |w| delete_range(w, &d)).unwrap();
    assert_eq!((resp.deleted, resp.prev_kvs.len()), (2, 0));
    assert_eq!(range(&s, &range_req("a", "\0")).unwrap().count, 0);
}

#[test]
fn compares() {
    let (_d, _b, s) = populated();
    let v = s.read().unwrap();
    let holds = |c: Compare| apply_compare(&v, &c);
    assert!(holds(cmp("b", T::Version, R::Equal, U::Version(2))));
    assert!(holds(cmp("b", T::Version, R::Greater, U::Version(1))));
    assert!(holds(cmp("b", T::Create, R::Less, U::CreateRevision(3))));
    assert!(holds(cmp("b", T::Mod, R::NotEqual, U::ModRevision(2))));
    assert!(holds(cmp("d", T::Lease, R::Equal, U::Lease(9))));
    assert!(holds(cmp("a", T::Value, R::Equal, U::Value(b"3".to_vec()))));
    assert!(holds(cmp(
        "a",
        T::Value,
        R::Greater,
        U::Value(b"2z".to_vec())
    )));
    assert!(!holds(cmp("a", T::Value, R::Less, U::Value(b"3".to_vec()))));
    // A missing key: version/create/mod/lease 0; a value compare is always false.
    assert!(holds(cmp("zz", T::Version, R::Equal, U::Version(0))));
    assert!(holds(cmp("zz", T::Create, R::Equal, U::CreateRevision(0))));
    assert!(holds(cmp("zz", T::Mod, R::Less, U::ModRevision(1))));
    assert!(holds(cmp("zz", T::Lease, R::Equal, U::Lease(0))));
    assert!(!holds(cmp("zz", T::Value, R::Equal, U::Value(vec![]))));
    assert!(!holds(cmp(
        "zz",
        T::Value,
        R::NotEqual,
        U::Value(b"x".to_vec())
    )));
    // A union not matching the target compares against 0 / empty.
    assert!(holds(cmp(
        "a",
        T::Version,
        R::Greater,
        U::Value(b"9".to_vec())
    )));
    // A range: the compare must hold for every key.
    let mut c = cmp("a", T::Version, R::Equal, U::Version(1));
    c.range_end = b"\0".to_vec();
    assert!(!holds(c.clone()), "b has version 2");
    c.range_end = b"b".to_vec();
    assert!(holds(c.clone()));
    c.key = b"c".to_vec();
    c.range_end = b"e".to_vec();
    assert!(holds(c));
    let mut c = cmp("x", T::Value, R::Equal, U::Value(vec![]));
    c.range_end = b"z".to_vec();
    assert!(!holds(c), "value compare on an empty range");
}

#[test]
fn txn_success_and_failure_branches() {
    let (_d, b, s) = populated();
    let t = TxnRequest {
        compare: vec![cmp("b", T::Version, R::Equal, U::Version(2))],
        success: vec![
            op_put("x", "1"),
            op_range("x"),
            op_del("a", ""),
            op_range("a"),
        ],
        failure: vec![op_put("y", "1")],
    };
    let resp = apply(&b, &s, |w| txn(w, &t)).unwrap();
    assert!(resp.succeeded);
    assert_eq!(rev(&resp.header), 6);
    let r = &resp.responses;
    assert_eq!(r.len(), 4);
    let Some(Response::ResponsePut(p)) = &r[0].response else {
        panic!("{r:?}")
    };
    assert_eq!(
        p.header,
        Some(ResponseHeader {
            revision: 6,
            ..Default::default()
        })
    );
    let Some(Response::ResponseRange(g)) = &r[1].response else {
        panic!("{r:?}")
    };
    assert_eq!((rev(&g.header), g.kvs.len()), (6, 1), "sees its own put");
    let Some(Response::ResponseDeleteRange(d)) = &r[2].response else {
        panic!("{r:?}")
    };
    assert_eq!((d.deleted, rev(&d.header)), (1, 6));
    let Some(Response::ResponseRange(g)) = &r[3].response else {
        panic!("{r:?}")
    };
    assert_eq!(g.kvs.len(), 0);

    // Both changes share revision 6, with sub revisions 0 and 1.
    assert_eq!(s.current_revision(), 6);
    let x = &range(&s, &range_req("x", "")).unwrap().kvs[0];
    assert_eq!((x.create_revision, x.mod_revision, x.version), (6, 6, 1));

    let mut t = t.clone();
    t.compare[0] = cmp("b", T::Version, R::Equal, U::Version(7));
    let resp = apply(&b, &s, |w| txn(w, &t)).unwrap();
    assert!(!resp.succeeded);
    assert_eq!((rev(&resp.header), resp.responses.len()), (7, 1));
}

#[test]
fn txn_without_writes_keeps_the_revision() {
    let (_d, b, s) = populated();
    // Deleting nothing and ranges only: no new revision.
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_del("zz", ""), op_range("a")],
        failure: vec![],
    };
    let resp = apply(&b, &s, |w| txn(w, &t)).unwrap();
    assert_eq!(rev(&resp.header), 5);
    assert_eq!(s.current_revision(), 5);
    // An empty txn.
    let resp = apply(&b, &s, |w| txn(w, &TxnRequest::default())).unwrap();
    assert!(resp.succeeded);
    assert_eq!(rev(&resp.header), 5);
}

#[test]
fn nested_txns_share_one_revision_and_compare_before_running() {
    let (_d, b, s) = populated();
    let inner = TxnRequest {
        // Evaluated before the outer put runs: x does not exist yet.
        compare: vec![cmp("x", T::Version, R::Equal, U::Version(0))],
        success: vec![op_put("y", "1"), op_range("x")],
        failure: vec![op_put("z", "1")],
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("x", "1"), op_txn(inner), op_put("w", "1")],
        failure: vec![],
    };
    let resp = apply(&b, &s, |w| txn(w, &t)).unwrap();
    assert_eq!(rev(&resp.header), 6);
    let Some(Response::ResponseTxn(n)) = &resp.responses[1].response else {
        panic!("{resp:?}")
    };
    assert!(n.succeeded);
    assert_eq!(
        n.header,
        Some(ResponseHeader::default()),
        "nested txn header is empty"
    );
    let Some(Response::ResponseRange(g)) = &n.responses[1].response else {
        panic!("{n:?}")
    };
    assert_eq!((g.kvs.len(), rev(&g.header)), (1, 6));
    for k in ["x", "y", "w"] {
        let kv = &range(&s, &range_req(k, "")).unwrap().kvs[0];
        assert_eq!(kv.mod_revision, 6, "{k}");
    }
    assert_eq!(range(&s, &range_req("z", "")).unwrap().count, 0);
    let subs: Vec<_> = s
        .index
        .read()
        .tree
        .range(b"w", b"z", 6)
        .into_iter()
        .map(|(_, r)| r.sub)
        .collect();
    assert_eq!(subs, vec![2, 0, 1], "w, x, y written in order x, y, w");
}

#[test]
fn txn_checks_the_chosen_branch_before_writing() {
    let (_d, b, s) = populated();
    let bad_put = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b"missing".to_vec(),
            ignore_value: true,
            ..Default::default()
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("x", "1"),
            op_txn(TxnRequest {
                compare: vec![],
                success: vec![bad_put.clone()],
                failure: vec![],
            }),
        ],
        failure: vec![],
    };
    assert!(matches!(
        apply(&b, &s, |w| txn(w, &t)),
        Err(Error::KeyNotFound)
    ));
    assert_eq!(s.current_revision(), 5);
    assert_eq!(range(&s, &range_req("x", "")).unwrap().count, 0);

    // The branch not taken is not checked.
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("x", "1")],
        failure: vec![bad_put],
    };
    assert!(apply(&b, &s, |w| txn(w, &t)).is_ok());

    let mut future = range_req("a", "");
    future.revision = 7;
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("y", "1"),
            RequestOp {
                request: Some(Request::RequestRange(future)),
            },
        ],
        failure: vec![],
    };
    assert!(matches!(
        apply(&b, &s, |w| txn(w, &t)),
        Err(Error::FutureRev)
    ));
    assert_eq!(s.current_revision(), 6);
}

#[test]
fn txn_ranges_at_compacted_revisions_fail() {
    let (_d, b, s) = populated();
    let mut wtx = b.write_tx().unwrap();
    let resp = compaction(
        &s,
        &mut wtx,
        &CompactionRequest {
            revision: 4,
            physical: false,
        },
    )
    .unwrap();
    assert_eq!(rev(&resp.header), 5);
    b.commit(wtx).unwrap();
    let mut old = range_req("b", "");
    old.revision = 3;
    let t = TxnRequest {
        compare: vec![],
        success: vec![RequestOp {
            request: Some(Request::RequestRange(old.clone())),
        }],
        failure: vec![],
    };
    assert!(matches!(txn_read(&s, &t), Err(Error::Compacted)));
    assert!(matches!(range(&s, &old), Err(Error::Compacted)));
    old.revision = 4;
    assert_eq!(range(&s, &old).unwrap().kvs[0].value, b"2");

    let mut wtx = b.write_tx().unwrap();
    let req = CompactionRequest {
        revision: 4,
        physical: true,
    };
    assert!(matches!(
        compaction(&s, &mut wtx, &req),
        Err(Error::Compacted)
    ));
    let req = CompactionRequest {
        revision: 6,
        physical: true,
    };
    assert!(matches!(
        compaction(&s, &mut wtx, &req),
        Err(Error::FutureRev)
    ));
}

#[test]
fn read_only_txns() {
    let (_d, b, s) = populated();
    let t = TxnRequest {
        compare: vec![cmp("a", T::Value, R::Equal, U::Value(b"3".to_vec()))],
        success: vec![op_range("a"), op_range("b")],
        failure: vec![],
    };
    assert!(is_txn_readonly(&t));
    let resp = txn_read(&s, &t).unwrap();
    assert!(resp.succeeded);
    assert_eq!(rev(&resp.header), 5);
    assert_eq!(resp.responses.len(), 2);

    let w = TxnRequest {
        compare: vec![],
        success: vec![op_range("a")],
        failure: vec![op_put("a", "1")],
    };
    assert!(!is_txn_readonly(&w));
    assert!(matches!(txn_read(&s, &w), Err(Error::WriteInReadTxn)));
    let n = TxnRequest {
        compare: vec![],
        success: vec![op_txn(TxnRequest::default())],
        failure: vec![],
    };
    assert!(
        !is_txn_readonly(&n),
        "a nested txn counts as a write, as in etcd"
    );

    // A read-only txn does not see an unpublished write.
    let mut wtx = b.write_tx().unwrap();
    let mut w = s.write(&mut wtx).unwrap();
    put(&mut w, &put_req("a", "unpublished")).unwrap();
    w.end();
    let resp = txn_read(&s, &t).unwrap();
    assert!(resp.succeeded);
    assert_eq!(rev(&resp.header), 5);
    b.commit(wtx).unwrap();
    s.publish();
    assert!(!txn_read(&s, &t).unwrap().succeeded);
}

#[test]
fn delete_then_put_in_one_txn_recreates_the_key() {
    // etcd's interval check lets a "\0"-ended delete and a put of a key in it through.
    let (_d, b, s) = populated();
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_del("a", "\0"), op_put("b", "new")],
        failure: vec![],
    };
    crate::validate::check_txn(&t, 128).unwrap();
    let resp = apply(&b, &s, |w| txn(w, &t)).unwrap();
    assert_eq!(rev(&resp.header), 6);
    let r = range(&s, &range_req("a", "\0")).unwrap();
    assert_eq!(keys(&r), ["b"]);
    let kv = &r.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (6, 6, 1));
    // Compacting at that revision keeps the live key.
    let mut wtx = b.write_tx().unwrap();
    s.compact(&mut wtx, 6).unwrap();
    b.commit(wtx).unwrap();
    assert_eq!(keys(&range(&s, &range_req("a", "\0")).unwrap()), ["b"]);
}
