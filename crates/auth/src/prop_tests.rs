//! A seeded, bounded property test: random users, roles and permissions (granted
//! through the apply functions) × random requests (ranges with `\0` ends, prefixes,
//! inverted ranges, puts with prev_kv and leases, deletes, txns nested three deep),
//! checked against a small model of etcd's rules that tests each key by brute force.
//!
//! Why brute force is exact: the first key a union of half-open intervals misses in a
//! request range is either the range's start or one of the intervals' ends; the model
//! tests those, plus every short string over the keys' alphabet.

use std::collections::BTreeMap;

use oxcd_api::authpb::permission::Type as PermType;
use oxcd_api::etcdserverpb::{self as pb, request_op::Request, Compare, RequestOp};
use oxcd_api::EtcdError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tests::Env;
use crate::AuthInfo;

const ALPHA: &[u8] = b"\0abc";
const USERS: &[&str] = &["u0", "u1", "u2", "root"];
const ROLES: &[&str] = &["r0", "r1", "r2", "root"];
const CASES: usize = 40;
const REQUESTS_PER_CASE: usize = 60;

fn rand_key(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.gen_range(1..=2);
    (0..n)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())])
        .collect()
}

/// etcd's prefix end (`clientv3.GetPrefixRangeEnd`).
fn prefix_end(k: &[u8]) -> Vec<u8> {
    let mut e = k.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

fn rand_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let k = rand_key(rng);
    let end = match rng.gen_range(0..5) {
        0 => vec![],
        1 => vec![0],
        2 => prefix_end(&k),
        _ => rand_key(rng), // may be inverted or equal
    };
    (k, end)
}

/// Is `p` in the range `k`..`end` (etcd's request conventions)?
fn in_range(p: &[u8], k: &[u8], end: &[u8]) -> bool {
    if end.is_empty() || (end != [0] && end <= k) {
        p == k
    } else if end == [0] {
        p >= k
    } else {
        k <= p && p < end
    }
}

fn probes() -> Vec<Vec<u8>> {
    let alpha: Vec<u8> = b"\0abcd".to_vec();
    let mut out: Vec<Vec<u8>> = vec![];
    let mut layer: Vec<Vec<u8>> = vec![vec![]];
    for _ in 0..3 {
        let mut next = vec![];
        for s in &layer {
            for c in &alpha {
                let mut t = s.clone();
                t.push(*c);
                next.push(t);
            }
        }
        out.extend(next.iter().cloned());
        layer = next;
    }
    out
}

/// (key, range_end) -> permission type
type RolePerms = BTreeMap<(Vec<u8>, Vec<u8>), i32>;

#[derive(Default)]
struct Model {
    /// role -> its permissions
    perms: BTreeMap<String, RolePerms>,
    /// user -> roles
    users: BTreeMap<String, Vec<String>>,
}

impl Model {
    fn allows(&self, user: &str, write: bool, key: &[u8], end: &[u8], probes: &[Vec<u8>]) -> bool {
        let Some(roles) = self.users.get(user) else {
            return false;
        };
        if roles.iter().any(|r| r == "root") {
            return true;
        }
        let grants: Vec<(&Vec<u8>, &Vec<u8>)> = roles
            .iter()
            .filter_map(|r| self.perms.get(r))
            .flat_map(|m| m.iter())
            .filter(|(_, t)| {
                **t == PermType::Readwrite as i32
                    || **t
                        == if write {
                            PermType::Write
                        } else {
                            PermType::Read
                        } as i32
            })
            .map(|((k, e), _)| (k, e))
            .collect();
        // Probes, plus every interval end (where a gap in coverage may start).
        let mut candidates: Vec<&[u8]> = probes.iter().map(|p| p.as_slice()).collect();
        candidates.push(key);
        candidates.extend(grants.iter().map(|(_, e)| e.as_slice()));
        candidates
            .into_iter()
            .filter(|p| in_range(p, key, end))
            .all(|p| grants.iter().any(|(k, e)| in_range(p, k, e)))
    }
}

/// (write?, key, range_end) requirements of a request, in etcd's rules.
type Req = (bool, Vec<u8>, Vec<u8>);

fn reqs_of_ops(ops: &[RequestOp], leases: &BTreeMap<i64, Vec<Vec<u8>>>, out: &mut Vec<Req>) {
    for op in ops {
        match &op.request {
            Some(Request::RequestRange(r)) => out.push((false, r.key.clone(), r.range_end.clone())),
            Some(Request::RequestPut(p)) => reqs_of_put(p, leases, out),
            Some(Request::RequestDeleteRange(d)) => {
                out.push((true, d.key.clone(), d.range_end.clone()));
                if d.prev_kv {
                    out.push((false, d.key.clone(), d.range_end.clone()));
                }
            }
            Some(Request::RequestTxn(t)) => reqs_of_txn(t, leases, out),
            None => {}
        }
    }
}

fn reqs_of_put(p: &pb::PutRequest, leases: &BTreeMap<i64, Vec<Vec<u8>>>, out: &mut Vec<Req>) {
    out.push((true, p.key.clone(), vec![]));
    for k in leases.get(&p.lease).into_iter().flatten() {
        out.push((true, k.clone(), vec![]));
    }
    if p.prev_kv {
        out.push((false, p.key.clone(), vec![]));
    }
}

fn reqs_of_txn(t: &pb::TxnRequest, leases: &BTreeMap<i64, Vec<Vec<u8>>>, out: &mut Vec<Req>) {
    for c in &t.compare {
        out.push((false, c.key.clone(), c.range_end.clone()));
    }
    reqs_of_ops(&t.success, leases, out);
    reqs_of_ops(&t.failure, leases, out);
}

fn rand_put(rng: &mut StdRng) -> pb::PutRequest {
    pb::PutRequest {
        key: rand_key(rng),
        prev_kv: rng.gen_bool(0.3),
        lease: if rng.gen_bool(0.3) {
            rng.gen_range(1..=3)
        } else {
            0
        },
        ..Default::default()
    }
}

fn rand_op(rng: &mut StdRng, depth: u32) -> RequestOp {
    let n = if depth == 0 { 3 } else { 4 };
    let r = match rng.gen_range(0..n) {
        0 => {
            let (key, range_end) = rand_range(rng);
            Request::RequestRange(pb::RangeRequest {
                key,
                range_end,
                ..Default::default()
            })
        }
        1 => Request::RequestPut(rand_put(rng)),
        2 => {
            let (key, range_end) = rand_range(rng);
            Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key,
                range_end,
                prev_kv: rng.gen_bool(0.3),
            })
        }
        _ => Request::RequestTxn(rand_txn(rng, depth - 1)),
    };
    RequestOp { request: Some(r) }
}

fn rand_txn(rng: &mut StdRng, depth: u32) -> pb::TxnRequest {
    let compare = (0..rng.gen_range(0..=2))
        .map(|_| {
            let (key, range_end) = rand_range(rng);
            Compare {
                key,
                range_end,
                ..Default::default()
            }
        })
        .collect();
    let success = (0..rng.gen_range(0..=2))
        .map(|_| rand_op(rng, depth))
        .collect();
    let failure = (0..rng.gen_range(0..=2))
        .map(|_| rand_op(rng, depth))
        .collect();
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

#[test]
fn random_permissions_and_requests_match_the_model() {
    let probes = probes();
    let mut checked = 0usize;
    let mut denied = 0usize;
    for case in 0..CASES {
        let mut rng = StdRng::seed_from_u64(0x0a57_0000 + case as u64);
        let e = Env::new();
        let mut m = Model::default();
        for u in USERS {
            e.user_add(u, "pw").unwrap();
            m.users.insert(u.to_string(), vec![]);
        }
        for r in ROLES {
            e.role_add(r).unwrap();
            m.perms.insert(r.to_string(), BTreeMap::new());
        }
        e.grant_role("root", "root").unwrap();
        m.users.get_mut("root").unwrap().push("root".into());
        for u in &USERS[..3] {
            for r in ROLES {
                if rng.gen_bool(if *r == "root" { 0.1 } else { 0.5 }) {
                    e.grant_role(u, r).unwrap();
                    m.users.get_mut(*u).unwrap().push(r.to_string());
                }
            }
        }
        for _ in 0..rng.gen_range(0..8) {
            let role = ROLES[rng.gen_range(0..3)];
            let (k, end) = rand_range(&mut rng);
            let t = [PermType::Read, PermType::Write, PermType::Readwrite][rng.gen_range(0..3)];
            let valid = end.is_empty() || end == [0] || end > k;
            let got = e.grant_perm(role, t, &k, &end);
            assert_eq!(got.is_ok(), valid, "grant {k:?}..{end:?}: {got:?}");
            if valid {
                m.perms.get_mut(role).unwrap().insert((k, end), t as i32);
            }
        }
        // Some permissions revoked again.
        let granted: Vec<(String, Vec<u8>, Vec<u8>)> = m
            .perms
            .iter()
            .flat_map(|(r, ps)| {
                ps.keys()
                    .map(move |(k, e)| (r.clone(), k.clone(), e.clone()))
            })
            .collect();
        for (role, k, end) in granted {
            if rng.gen_bool(0.2) {
                let r = pb::AuthRoleRevokePermissionRequest {
                    role: role.clone(),
                    key: k.clone(),
                    range_end: end.clone(),
                };
                e.apply(|s, tx| s.role_revoke_permission(tx, &r)).unwrap();
                m.perms.get_mut(&role).unwrap().remove(&(k, end));
            }
        }
        let enabled = rng.gen_bool(0.9);
        if enabled {
            e.enable().unwrap();
        }
        let leases: BTreeMap<i64, Vec<Vec<u8>>> = (1..=3)
            .map(|id| {
                (
                    id,
                    (0..rng.gen_range(0..3))
                        .map(|_| rand_key(&mut rng))
                        .collect(),
                )
            })
            .collect();
        let lease_fn = |id: i64| leases.get(&id).cloned().unwrap_or_default();
        for _ in 0..REQUESTS_PER_CASE {
            let user = USERS[rng.gen_range(0..USERS.len())];
            let rev = e.store.revision();
            let info = match rng.gen_range(0..10) {
                0 => AuthInfo::default(),
                1 => AuthInfo {
                    username: user.into(),
                    revision: rev - 1,
                },
                2 => AuthInfo {
                    username: "ghost".into(),
                    revision: rev,
                },
                _ => AuthInfo {
                    username: user.into(),
                    revision: rev,
                },
            };
            let txn = rand_txn(&mut rng, 3);
            let mut reqs = vec![];
            reqs_of_txn(&txn, &leases, &mut reqs);
            let expected: Result<(), EtcdError> = if !enabled || reqs.is_empty() {
                Ok(())
            } else if info.revision == 0 {
                Err(EtcdError::UserEmpty)
            } else if info.revision < rev {
                Err(EtcdError::AuthOldRevision)
            } else if reqs
                .iter()
                .all(|(w, k, end)| m.allows(&info.username, *w, k, end, &probes))
            {
                Ok(())
            } else {
                Err(EtcdError::PermissionDenied)
            };
            let got = e.store.check_txn(&info, &txn, &lease_fn);
            assert_eq!(got, expected, "case {case}: {info:?} txn {txn:?}");
            checked += 1;
            denied += usize::from(got.is_err());
            // Single requests through the same model.
            let (k, end) = rand_range(&mut rng);
            let want = |w: bool| {
                if !enabled {
                    Ok(())
                } else if info.revision == 0 {
                    Err(EtcdError::UserEmpty)
                } else if info.revision < rev {
                    Err(EtcdError::AuthOldRevision)
                } else if m.allows(&info.username, w, &k, &end, &probes) {
                    Ok(())
                } else {
                    Err(EtcdError::PermissionDenied)
                }
            };
            let ctx = || {
                format!(
                    "case {case}: {info:?} {k:?}..{end:?} perms {:?} users {:?}",
                    m.perms, m.users
                )
            };
            assert_eq!(
                e.store.is_range_permitted(&info, &k, &end),
                want(false),
                "{}",
                ctx()
            );
            assert_eq!(
                e.store.check_watch(&info, &k, &end),
                want(false),
                "{}",
                ctx()
            );
            assert_eq!(
                e.store.is_delete_range_permitted(&info, &k, &end),
                want(true),
                "{}",
                ctx()
            );
        }
    }
    // The generator must exercise both outcomes.
    assert!(
        denied > checked / 10 && denied < checked * 9 / 10,
        "{denied}/{checked}"
    );
}
