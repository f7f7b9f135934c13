//! The KV checkers on hand-made histories: known-good ones must pass, known-bad ones
//! (stale read, lost write, revision order against real time, phantom write, unknown
//! write seen then unseen) must be flagged.

use std::collections::BTreeMap;

use oxcd_robustness::history::{Cmp, Kv, Op, Outcome, Request, Response, TxnOp, NEVER};
use oxcd_robustness::{register, replay, serializable};

fn op(id: usize, inv: u64, ret: u64, req: Request, out: Outcome) -> Op {
    Op {
        id,
        client: id,
        member: 0,
        data_gen: 0,
        inv,
        ret,
        req,
        out,
    }
}
fn put(k: &str, v: &str) -> Request {
    Request::Put {
        key: k.into(),
        value: v.into(),
        lease: 0,
    }
}
fn get(k: &str) -> Request {
    Request::Get {
        key: k.into(),
        end: None,
        serializable: false,
        revision: 0,
    }
}
fn kv(k: &str, v: &str, create: i64, modr: i64, version: i64) -> Kv {
    Kv {
        key: k.into(),
        value: v.into(),
        create,
        modr,
        version,
        lease: 0,
    }
}
fn ok(r: Response) -> Outcome {
    Outcome::Ok(r)
}
fn read(rev: i64, kvs: Vec<Kv>) -> Outcome {
    let count = kvs.len() as i64;
    ok(Response::Get { rev, kvs, count })
}

fn good() -> Vec<Op> {
    vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 2 })),
        op(1, 30, 40, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
        op(2, 35, 50, put("a", "2"), ok(Response::Put { rev: 3 })),
        op(
            3,
            60,
            70,
            Request::Txn {
                cmps: vec![Cmp::ModRev {
                    key: "a".into(),
                    rev: 3,
                }],
                then: vec![TxnOp::Put {
                    key: "a".into(),
                    value: "3".into(),
                    lease: 0,
                }],
                els: vec![],
            },
            ok(Response::Txn {
                rev: 4,
                succeeded: true,
                results: vec![oxcd_robustness::history::TxnResult::Put],
            }),
        ),
        op(
            4,
            80,
            NEVER,
            put("a", "4"),
            Outcome::Unknown("timeout".into()),
        ),
        op(5, 90, 100, get("a"), read(4, vec![kv("a", "3", 2, 4, 3)])),
    ]
}

#[test]
fn good_history_passes_all_checkers() {
    let h = good();
    let r = replay::check(&h, &BTreeMap::new());
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert_eq!(r.log.horizon, 4);
    let w = register::check(&h, 100_000);
    assert!(
        w.violations.is_empty() && w.inconclusive.is_empty(),
        "{w:?}"
    );
    assert!(serializable::check(&h).1.is_empty());
}

#[test]
fn stale_read_is_flagged() {
    let mut h = good();
    h[5].out = read(3, vec![kv("a", "2", 2, 3, 2)]);
    let r = replay::check(&h, &BTreeMap::new());
    assert!(
        r.violations.iter().any(|v| v.contains("stale read")),
        "{:#?}",
        r.violations
    );
    let w = register::check(&h, 100_000);
    assert_eq!(w.violations.len(), 1, "{w:?}");
}

#[test]
fn wrong_read_content_is_flagged() {
    let mut h = good();
    // Right revision, wrong (lost) value.
    h[5].out = read(4, vec![kv("a", "2", 2, 3, 2)]);
    let r = replay::check(&h, &BTreeMap::new());
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("does not match the state")),
        "{:#?}",
        r.violations
    );
}

#[test]
fn revision_order_against_real_time_is_flagged() {
    let h = vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 3 })),
        op(1, 30, 40, put("b", "1"), ok(Response::Put { rev: 2 })),
    ];
    let r = replay::check(&h, &BTreeMap::new());
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("contradicts real time")),
        "{:#?}",
        r.violations
    );
}

#[test]
fn unknown_write_seen_then_unseen_is_flagged() {
    let h = vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 2 })),
        op(
            1,
            30,
            NEVER,
            put("a", "2"),
            Outcome::Unknown("timeout".into()),
        ),
        op(2, 40, 50, get("a"), read(3, vec![kv("a", "2", 2, 3, 2)])),
        op(3, 60, 70, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
    ];
    let w = register::check(&h, 100_000);
    assert_eq!(w.violations.len(), 1, "{w:?}");
    // The minimal failing history keeps both reads and both writes.
    assert_eq!(w.violations[0].1.len(), 4, "{w:?}");
    let r = replay::check(&h, &BTreeMap::new());
    assert!(!r.violations.is_empty());
}

#[test]
fn failed_cas_must_be_explained() {
    // CAS on mod_revision 2 failed although nothing changed the key: not linearizable.
    let h = vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 2 })),
        op(
            1,
            30,
            40,
            Request::Txn {
                cmps: vec![Cmp::ModRev {
                    key: "a".into(),
                    rev: 2,
                }],
                then: vec![TxnOp::Put {
                    key: "a".into(),
                    value: "2".into(),
                    lease: 0,
                }],
                els: vec![TxnOp::Get { key: "a".into() }],
            },
            ok(Response::Txn {
                rev: 2,
                succeeded: false,
                results: vec![oxcd_robustness::history::TxnResult::Get(vec![kv(
                    "a", "1", 2, 2, 1,
                )])],
            }),
        ),
    ];
    let w = register::check(&h, 100_000);
    assert_eq!(w.violations.len(), 1, "{w:?}");
    let r = replay::check(&h, &BTreeMap::new());
    assert!(
        r.violations.iter().any(|v| v.contains("non-writing txn")),
        "{:#?}",
        r.violations
    );
}

#[test]
fn lost_acknowledged_write_is_flagged() {
    let h = good();
    let mut dump = BTreeMap::new();
    dump.insert("a".to_string(), kv("a", "2", 2, 3, 2));
    let mut out = Vec::new();
    replay::lost_writes(&h, 0, &dump, &mut out);
    assert!(out.iter().any(|v| v.contains("lost")), "{out:?}");
    let mut dump = BTreeMap::new();
    dump.insert("a".to_string(), kv("a", "3", 2, 4, 3));
    let mut out = Vec::new();
    replay::lost_writes(&h, 0, &dump, &mut out);
    assert!(out.is_empty(), "{out:?}");
}

/// A key written without a lease, then with one, then gone after that lease's revoke: the
/// earlier writes are explained, not lost (seen in a 3m-mixed run: the checker flagged them).
#[test]
fn a_later_leased_put_and_a_revoke_explain_a_missing_key() {
    let leased_put = |v: &str| Request::Put {
        key: "a".into(),
        value: v.into(),
        lease: 7,
    };
    let revoke = op(
        3,
        70,
        80,
        Request::LeaseRevoke { id: 7 },
        ok(Response::LeaseRevoke { rev: 5 }),
    );
    let h = vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 2 })),
        op(1, 30, 40, put("a", "2"), ok(Response::Put { rev: 3 })),
        op(2, 50, 60, leased_put("3"), ok(Response::Put { rev: 4 })),
        revoke.clone(),
    ];
    let mut out = Vec::new();
    replay::lost_writes(&h, 0, &BTreeMap::new(), &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Without the later leased put, the same revoke explains nothing: both writes are lost.
    let h = vec![
        op(0, 10, 20, put("a", "1"), ok(Response::Put { rev: 2 })),
        op(1, 30, 40, put("a", "2"), ok(Response::Put { rev: 3 })),
        revoke,
    ];
    let mut out = Vec::new();
    replay::lost_writes(&h, 0, &BTreeMap::new(), &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn serializable_going_back_is_flagged() {
    let s = |id, inv, ret, rev| {
        op(
            id,
            inv,
            ret,
            Request::Get {
                key: "a".into(),
                end: None,
                serializable: true,
                revision: 0,
            },
            read(rev, vec![]),
        )
    };
    let h = vec![s(0, 1, 2, 5), s(1, 3, 4, 4)];
    assert_eq!(serializable::check(&h).1.len(), 1);
    let h = vec![s(0, 1, 5, 5), s(1, 3, 6, 4)]; // concurrent: fine
    assert!(serializable::check(&h).1.is_empty());
}

/// Only the revoke of the key's own lease explains a missing key: a successful revoke of
/// another lease, or one that ran before the leased put, does not (the checker used to excuse
/// every leased put once any revoke had run).
#[test]
fn only_the_revoke_of_the_keys_own_lease_explains_it() {
    let h = |revoked: i64, revoke_rev: i64| {
        vec![
            op(
                0,
                10,
                20,
                Request::Put {
                    key: "a".into(),
                    value: "1".into(),
                    lease: 7,
                },
                ok(Response::Put { rev: 4 }),
            ),
            op(
                1,
                30,
                40,
                Request::LeaseRevoke { id: revoked },
                ok(Response::LeaseRevoke { rev: revoke_rev }),
            ),
        ]
    };
    let mut out = Vec::new();
    replay::lost_writes(&h(7, 5), 0, &BTreeMap::new(), &mut out);
    assert!(
        out.is_empty(),
        "its own lease revoked after the put: {out:?}"
    );
    for (lease, rev) in [(8, 5), (7, 3)] {
        let mut out = Vec::new();
        replay::lost_writes(&h(lease, rev), 0, &BTreeMap::new(), &mut out);
        assert_eq!(out.len(), 1, "revoke of lease {lease} at {rev}: {out:?}");
    }
}
