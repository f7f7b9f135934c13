//! Unit tests of the whole-request checks, including the paths etcd's CVEs missed
//! (prev_kv, nested txns, compares, lease keys).

use oxcd_api::authpb::permission::Type as PermType;
use oxcd_api::etcdserverpb::{self as pb, request_op::Request, Compare, RequestOp};
use oxcd_api::EtcdError;

use crate::tests::Env;
use crate::*;

/// Auth enabled; "u" may read [a, c) and write only "w".
fn checks_env() -> Env {
    let e = Env::new();
    e.enable_with_root();
    e.user_add("u", "pw").unwrap();
    e.role_add("r").unwrap();
    e.grant_perm("r", PermType::Read, b"a", b"c").unwrap();
    e.grant_perm("r", PermType::Readwrite, b"w", b"").unwrap();
    e.grant_perm("r", PermType::Write, b"x", b"").unwrap();
    e.grant_role("u", "r").unwrap();
    e
}

fn put(key: &[u8], prev_kv: bool, lease: i64) -> pb::PutRequest {
    pb::PutRequest {
        key: key.to_vec(),
        prev_kv,
        lease,
        ..Default::default()
    }
}

fn op(r: Request) -> RequestOp {
    RequestOp { request: Some(r) }
}

const DENIED: Result<(), EtcdError> = Err(EtcdError::PermissionDenied);

#[test]
fn disabled_auth_allows_everything_and_anonymous_is_refused_when_enabled() {
    let e = Env::new();
    let anon = AuthInfo::default();
    assert_eq!(e.store.is_put_permitted(&anon, b"k"), Ok(()));
    assert_eq!(e.store.is_admin_permitted(&anon), Ok(()));
    e.enable_with_root();
    assert_eq!(
        e.store.is_put_permitted(&anon, b"k"),
        Err(EtcdError::UserEmpty)
    );
    assert_eq!(e.store.is_admin_permitted(&anon), Err(EtcdError::UserEmpty));
    assert_eq!(
        e.store.check_lease_time_to_live(&anon, &[]),
        Err(EtcdError::UserEmpty)
    );
}

#[test]
fn root_bypasses_and_unknown_user_is_denied() {
    let e = checks_env();
    let root = e.info("root");
    assert_eq!(
        e.store.is_delete_range_permitted(&root, b"\0", b"\0"),
        Ok(())
    );
    assert_eq!(e.store.is_admin_permitted(&root), Ok(()));
    let ghost = e.info("ghost");
    assert_eq!(e.store.is_range_permitted(&ghost, b"a", b""), DENIED);
    assert_eq!(
        e.store.is_admin_permitted(&ghost),
        Err(EtcdError::UserNotFound)
    );
    assert_eq!(e.store.is_admin_permitted(&e.info("u")), DENIED);
}

#[test]
fn old_revision_is_refused() {
    let e = checks_env();
    let u = e.info("u");
    e.role_add("other").unwrap();
    assert_eq!(
        e.store.is_range_permitted(&u, b"a", b""),
        Err(EtcdError::AuthOldRevision)
    );
    assert_eq!(
        e.store.check_revision_unchanged(&u),
        Err(EtcdError::AuthOldRevision)
    );
    assert_eq!(e.store.check_revision_unchanged(&e.info("u")), Ok(()));
}

#[test]
fn range_put_delete_checks() {
    let e = checks_env();
    let u = e.info("u");
    let range = |k: &[u8], end: &[u8]| pb::RangeRequest {
        key: k.to_vec(),
        range_end: end.to_vec(),
        ..Default::default()
    };
    assert_eq!(e.store.check_range(&u, &range(b"a", b"c")), Ok(()));
    assert_eq!(e.store.check_range(&u, &range(b"a", b"c\0")), DENIED);
    assert_eq!(e.store.check_range(&u, &range(b"b", b"\0")), DENIED);
    assert_eq!(e.store.check_watch(&u, b"a", b"c"), Ok(()));
    assert_eq!(e.store.check_watch(&u, b"a", b"\0"), DENIED);
    assert_eq!(
        e.store.check_put(&u, &put(b"w", false, 0), &NoLeases),
        Ok(())
    );
    assert_eq!(
        e.store.check_put(&u, &put(b"a", false, 0), &NoLeases),
        DENIED
    );
    // prev_kv needs read too: "x" is write-only.
    assert_eq!(
        e.store.check_put(&u, &put(b"x", false, 0), &NoLeases),
        Ok(())
    );
    assert_eq!(
        e.store.check_put(&u, &put(b"x", true, 0), &NoLeases),
        DENIED
    );
    assert_eq!(
        e.store.check_put(&u, &put(b"w", true, 0), &NoLeases),
        Ok(())
    );
    let del = |k: &[u8], prev_kv: bool| pb::DeleteRangeRequest {
        key: k.to_vec(),
        range_end: vec![],
        prev_kv,
    };
    assert_eq!(e.store.check_delete_range(&u, &del(b"x", false)), Ok(()));
    assert_eq!(e.store.check_delete_range(&u, &del(b"x", true)), DENIED);
    assert_eq!(e.store.check_delete_range(&u, &del(b"a", false)), DENIED);
}

#[test]
fn put_with_lease_needs_write_on_its_keys() {
    let e = checks_env();
    let u = e.info("u");
    let leases = |id: i64| -> Vec<Vec<u8>> {
        match id {
            7 => vec![b"w".to_vec(), b"x".to_vec()],
            8 => vec![b"w".to_vec(), b"secret".to_vec()],
            _ => vec![],
        }
    };
    assert_eq!(e.store.check_put(&u, &put(b"w", false, 7), &leases), Ok(()));
    assert_eq!(e.store.check_put(&u, &put(b"w", false, 8), &leases), DENIED);
    assert_eq!(e.store.check_lease_revoke(&u, &leases(7)), Ok(()));
    assert_eq!(e.store.check_lease_revoke(&u, &leases(8)), DENIED);
    // Time-to-live with keys needs read on each ("x" is write-only).
    assert_eq!(
        e.store.check_lease_time_to_live(&u, &[b"w".to_vec()]),
        Ok(())
    );
    assert_eq!(e.store.check_lease_time_to_live(&u, &leases(7)), DENIED);
    // The same lease check applies to a put inside a nested txn.
    let t = pb::TxnRequest {
        success: vec![op(Request::RequestTxn(pb::TxnRequest {
            failure: vec![op(Request::RequestPut(put(b"w", false, 8)))],
            ..Default::default()
        }))],
        ..Default::default()
    };
    assert_eq!(e.store.check_txn(&u, &t, &leases), DENIED);
}

#[test]
fn txn_checks_compares_and_every_nested_op() {
    let e = checks_env();
    let u = e.info("u");
    let cmp = |k: &[u8], end: &[u8]| Compare {
        key: k.to_vec(),
        range_end: end.to_vec(),
        ..Default::default()
    };
    let ok = pb::TxnRequest {
        compare: vec![cmp(b"a", b"")],
        success: vec![op(Request::RequestPut(put(b"w", true, 0)))],
        failure: vec![op(Request::RequestRange(pb::RangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        }))],
    };
    assert_eq!(e.store.check_txn(&u, &ok, &NoLeases), Ok(()));
    // A compare on a key the user cannot read.
    let mut t = ok.clone();
    t.compare.push(cmp(b"x", b""));
    assert_eq!(e.store.check_txn(&u, &t, &NoLeases), DENIED);
    // A forbidden op in the failure branch, which may never run, is still refused.
    let mut t = ok.clone();
    t.failure
        .push(op(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })));
    assert_eq!(e.store.check_txn(&u, &t, &NoLeases), DENIED);
    // Forbidden ops three levels deep, in each form.
    let deep = |inner: RequestOp| pb::TxnRequest {
        success: vec![op(Request::RequestTxn(pb::TxnRequest {
            failure: vec![op(Request::RequestTxn(pb::TxnRequest {
                success: vec![inner],
                ..Default::default()
            }))],
            ..Default::default()
        }))],
        ..Default::default()
    };
    for bad in [
        op(Request::RequestPut(put(b"a", false, 0))),
        op(Request::RequestPut(put(b"x", true, 0))),
        op(Request::RequestRange(pb::RangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })),
        op(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: b"x".to_vec(),
            prev_kv: true,
            ..Default::default()
        })),
    ] {
        assert_eq!(e.store.check_txn(&u, &deep(bad), &NoLeases), DENIED);
    }
    let nested_cmp = pb::TxnRequest {
        success: vec![op(Request::RequestTxn(pb::TxnRequest {
            compare: vec![cmp(b"a", b"\0")],
            ..Default::default()
        }))],
        ..Default::default()
    };
    assert_eq!(e.store.check_txn(&u, &nested_cmp, &NoLeases), DENIED);
    assert_eq!(
        e.store.check_txn(
            &u,
            &deep(op(Request::RequestPut(put(b"w", true, 0)))),
            &NoLeases
        ),
        Ok(())
    );
}

#[test]
fn user_get_and_role_get_checks() {
    let e = checks_env();
    let u = e.info("u");
    assert_eq!(e.store.check_user_get(&u, "u"), Ok(()));
    assert_eq!(e.store.check_user_get(&u, "root"), DENIED);
    assert_eq!(e.store.check_role_get(&u, "r"), Ok(()));
    assert_eq!(e.store.check_role_get(&u, "root"), DENIED);
    assert_eq!(e.store.check_role_get(&e.info("root"), "r"), Ok(()));
}

#[test]
fn permission_changes_take_effect_at_once() {
    let e = checks_env();
    assert_eq!(e.store.is_range_permitted(&e.info("u"), b"q", b""), DENIED);
    e.grant_perm("r", PermType::Read, b"q", b"").unwrap();
    assert_eq!(e.store.is_range_permitted(&e.info("u"), b"q", b""), Ok(()));
    e.apply(|s, tx| {
        s.user_revoke_role(
            tx,
            &pb::AuthUserRevokeRoleRequest {
                name: "u".into(),
                role: "r".into(),
            },
        )
    })
    .unwrap();
    assert_eq!(e.store.is_range_permitted(&e.info("u"), b"q", b""), DENIED);
}
