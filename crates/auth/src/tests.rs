//! Unit tests: every Auth RPC's semantics and errors, persistence across reopen
//! and tokens (the request checks are in `check_tests`).

use std::sync::Arc;
use std::time::Duration;

use oxcd_api::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use oxcd_api::etcdserverpb as pb;
use oxcd_api::EtcdError;
use oxcd_lease::ManualClock;
use oxcd_storage::{Backend, BackendConfig, WriteTx};

use crate::*;

pub(crate) struct Env {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) backend: Backend,
    pub(crate) store: AuthStore,
    pub(crate) clock: ManualClock,
}

pub(crate) fn cfg() -> AuthConfig {
    AuthConfig {
        bcrypt_cost: MIN_BCRYPT_COST,
        ..AuthConfig::default()
    }
}

impl Env {
    pub(crate) fn new() -> Env {
        Env::with(cfg())
    }

    pub(crate) fn with(c: AuthConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
        let clock = ManualClock::new();
        let store = AuthStore::open(&backend, c, Arc::new(clock.clone())).unwrap();
        Env {
            _dir: dir,
            backend,
            store,
            clock,
        }
    }

    pub(crate) fn apply<T>(
        &self,
        f: impl FnOnce(&AuthStore, &mut WriteTx) -> Result<T, AuthError>,
    ) -> Result<T, EtcdError> {
        let mut tx = self.backend.write_tx().unwrap();
        let r = f(&self.store, &mut tx);
        self.backend.commit(tx).unwrap();
        r.map_err(|e| {
            assert!(!e.is_fatal(), "fatal: {e}");
            EtcdError::from(e)
        })
    }

    pub(crate) fn user_add(&self, name: &str, pw: &str) -> Result<(), EtcdError> {
        let mut r = pb::AuthUserAddRequest {
            name: name.into(),
            password: pw.into(),
            ..Default::default()
        };
        prepare_user_add(&mut r, MIN_BCRYPT_COST)?;
        self.apply(|s, tx| s.user_add(tx, &r)).map(|_| ())
    }

    pub(crate) fn role_add(&self, name: &str) -> Result<(), EtcdError> {
        self.apply(|s, tx| s.role_add(tx, &pb::AuthRoleAddRequest { name: name.into() }))
            .map(|_| ())
    }

    pub(crate) fn grant_role(&self, user: &str, role: &str) -> Result<(), EtcdError> {
        self.apply(|s, tx| {
            s.user_grant_role(
                tx,
                &pb::AuthUserGrantRoleRequest {
                    user: user.into(),
                    role: role.into(),
                },
            )
        })
        .map(|_| ())
    }

    pub(crate) fn grant_perm(
        &self,
        role: &str,
        t: PermType,
        key: &[u8],
        end: &[u8],
    ) -> Result<(), EtcdError> {
        let r = pb::AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(Permission {
                perm_type: t as i32,
                key: key.to_vec(),
                range_end: end.to_vec(),
            }),
        };
        self.apply(|s, tx| s.role_grant_permission(tx, &r))
            .map(|_| ())
    }

    pub(crate) fn enable(&self) -> Result<(), EtcdError> {
        self.apply(|s, tx| s.auth_enable(tx, &pb::AuthEnableRequest {}))
            .map(|_| ())
    }

    /// root (with the root role) + enable.
    pub(crate) fn enable_with_root(&self) {
        self.user_add("root", "rootpw").unwrap();
        self.grant_role("root", "root").unwrap();
        self.enable().unwrap();
    }

    pub(crate) fn info(&self, user: &str) -> AuthInfo {
        AuthInfo {
            username: user.into(),
            revision: self.store.revision(),
        }
    }

    pub(crate) fn login(&self, user: &str, pw: &str, index: u64) -> Result<String, EtcdError> {
        self.store.check_password(user, pw)?;
        let prefix = self.store.gen_token_prefix();
        self.store.authenticate(user, &prefix, index)
    }
}

fn status(e: &Env) -> (bool, u64) {
    let s = e.store.status();
    (s.enabled, s.revision)
}

#[test]
fn new_store_is_disabled_at_revision_one() {
    let e = Env::new();
    assert_eq!(status(&e), (false, 1));
    assert!(e.store.user_list(&Default::default()).users.is_empty());
}

#[test]
fn auth_enable_needs_root_user_with_root_role() {
    let e = Env::new();
    assert_eq!(e.enable(), Err(EtcdError::RootUserNotExist));
    assert_eq!(
        EtcdError::RootUserNotExist.to_string(),
        "etcdserver: root user does not exist"
    );
    e.user_add("root", "pw").unwrap();
    assert_eq!(e.enable(), Err(EtcdError::RootRoleNotExist));
    assert_eq!(
        EtcdError::RootRoleNotExist.to_string(),
        "etcdserver: root user does not have root role"
    );
    // The root role need not exist as a role to be granted.
    e.grant_role("root", "root").unwrap();
    let rev = e.store.revision();
    e.enable().unwrap();
    // AuthEnable keeps the revision, as etcd; enabling twice is a no-op.
    assert_eq!(status(&e), (true, rev));
    e.enable().unwrap();
    assert_eq!(status(&e), (true, rev));
}

#[test]
fn auth_disable_bumps_revision_and_is_idempotent() {
    let e = Env::new();
    e.apply(|s, tx| s.auth_disable(tx, &Default::default()))
        .unwrap();
    assert_eq!(status(&e), (false, 1));
    e.enable_with_root();
    let rev = e.store.revision();
    e.apply(|s, tx| s.auth_disable(tx, &Default::default()))
        .unwrap();
    assert_eq!(status(&e), (false, rev + 1));
}

#[test]
fn user_add_errors_and_revision() {
    let e = Env::new();
    assert_eq!(e.user_add("", "x"), Err(EtcdError::UserEmpty));
    assert_eq!(
        EtcdError::UserEmpty.to_string(),
        "etcdserver: user name is empty"
    );
    e.user_add("alice", "pw").unwrap();
    assert_eq!(e.store.revision(), 2);
    assert_eq!(e.user_add("alice", "pw"), Err(EtcdError::UserAlreadyExist));
    assert_eq!(
        EtcdError::UserAlreadyExist.to_string(),
        "etcdserver: user name already exists"
    );
    assert_eq!(e.store.revision(), 2, "a refused request bumps nothing");
    assert_eq!(e.store.user_list(&Default::default()).users, vec!["alice"]);
}

#[test]
fn no_password_user_cannot_authenticate() {
    let e = Env::new();
    let r = pb::AuthUserAddRequest {
        name: "np".into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    };
    e.apply(|s, tx| s.user_add(tx, &r)).unwrap();
    e.enable_with_root();
    assert_eq!(
        e.store.check_password("np", ""),
        Err(EtcdError::NoPasswordUser)
    );
    assert_eq!(
        e.store.authenticate("np", "p", 9),
        Err(EtcdError::AuthFailed)
    );
    // Changing its password keeps it password-less.
    let c = pb::AuthUserChangePasswordRequest {
        name: "np".into(),
        password: "x".into(),
        ..Default::default()
    };
    e.apply(|s, tx| s.user_change_password(tx, &c)).unwrap();
    assert_eq!(
        e.store.check_password("np", "x"),
        Err(EtcdError::NoPasswordUser)
    );
}

#[test]
fn user_get_list_delete() {
    let e = Env::new();
    e.user_add("b", "pw").unwrap();
    e.user_add("a", "pw").unwrap();
    e.role_add("r2").unwrap();
    e.role_add("r1").unwrap();
    e.grant_role("a", "r2").unwrap();
    e.grant_role("a", "r1").unwrap();
    let g = e
        .store
        .user_get(&pb::AuthUserGetRequest { name: "a".into() })
        .unwrap();
    assert_eq!(g.roles, vec!["r1", "r2"], "roles are sorted");
    assert_eq!(e.store.user_list(&Default::default()).users, vec!["a", "b"]);
    assert_eq!(
        e.store
            .user_get(&pb::AuthUserGetRequest { name: "zz".into() }),
        Err(EtcdError::UserNotFound)
    );
    assert_eq!(
        EtcdError::UserNotFound.to_string(),
        "etcdserver: user name not found"
    );
    let del =
        |n: &str| e.apply(|s, tx| s.user_delete(tx, &pb::AuthUserDeleteRequest { name: n.into() }));
    assert_eq!(del("zz").unwrap_err(), EtcdError::UserNotFound);
    del("b").unwrap();
    assert_eq!(e.store.user_list(&Default::default()).users, vec!["a"]);
    // Root cannot be deleted while auth is enabled, but can be after disabling.
    e.enable_with_root();
    assert_eq!(del("root").unwrap_err(), EtcdError::InvalidAuthMgmt);
    e.apply(|s, tx| s.auth_disable(tx, &Default::default()))
        .unwrap();
    del("root").unwrap();
}

#[test]
fn change_password_and_authenticate() {
    let e = Env::new();
    e.enable_with_root();
    e.user_add("u", "old").unwrap();
    assert_eq!(
        e.store.check_password("u", "bad"),
        Err(EtcdError::AuthFailed)
    );
    assert_eq!(
        e.store.check_password("nobody", "x"),
        Err(EtcdError::AuthFailed)
    );
    let t = e.login("u", "old", 10).unwrap();
    assert!(t.ends_with(".10") && t.len() == SIMPLE_TOKEN_LENGTH + 3);
    assert_eq!(simple_token_index(&t), Some(10));
    assert_eq!(e.store.auth_info_from_token(&t).unwrap().username, "u");
    let mut c = pb::AuthUserChangePasswordRequest {
        name: "u".into(),
        password: "new".into(),
        ..Default::default()
    };
    prepare_change_password(&mut c, MIN_BCRYPT_COST).unwrap();
    let rev = e.store.revision();
    e.apply(|s, tx| s.user_change_password(tx, &c)).unwrap();
    assert_eq!(e.store.revision(), rev + 1);
    assert_eq!(
        e.store.check_password("u", "old"),
        Err(EtcdError::AuthFailed)
    );
    assert_eq!(e.store.check_password("u", "new"), Ok(rev + 1));
    // The old token is gone.
    assert_eq!(
        e.store.auth_info_from_token(&t),
        Err(EtcdError::InvalidAuthToken)
    );
    let missing = pb::AuthUserChangePasswordRequest {
        name: "zz".into(),
        ..Default::default()
    };
    assert_eq!(
        e.apply(|s, tx| s.user_change_password(tx, &missing))
            .unwrap_err(),
        EtcdError::UserNotFound
    );
}

#[test]
fn authenticate_requires_auth_enabled() {
    let e = Env::new();
    e.user_add("u", "pw").unwrap();
    assert_eq!(
        e.store.check_password("u", "pw"),
        Err(EtcdError::AuthNotEnabled)
    );
    assert_eq!(
        e.store.authenticate("u", "p", 1),
        Err(EtcdError::AuthNotEnabled)
    );
}

#[test]
fn grant_and_revoke_role() {
    let e = Env::new();
    e.user_add("u", "pw").unwrap();
    assert_eq!(e.grant_role("u", "nope"), Err(EtcdError::RoleNotFound));
    assert_eq!(
        EtcdError::RoleNotFound.to_string(),
        "etcdserver: role name not found"
    );
    assert_eq!(e.grant_role("zz", "root"), Err(EtcdError::UserNotFound));
    e.role_add("r").unwrap();
    e.grant_role("u", "r").unwrap();
    let rev = e.store.revision();
    e.grant_role("u", "r").unwrap();
    assert_eq!(e.store.revision(), rev, "a duplicate grant changes nothing");
    let revoke = |u: &str, r: &str| {
        e.apply(|s, tx| {
            s.user_revoke_role(
                tx,
                &pb::AuthUserRevokeRoleRequest {
                    name: u.into(),
                    role: r.into(),
                },
            )
        })
    };
    revoke("u", "r").unwrap();
    assert_eq!(e.store.revision(), rev + 1);
    assert_eq!(revoke("u", "r").unwrap_err(), EtcdError::RoleNotGranted);
    assert_eq!(
        EtcdError::RoleNotGranted.to_string(),
        "etcdserver: role is not granted to the user"
    );
    assert_eq!(revoke("zz", "r").unwrap_err(), EtcdError::UserNotFound);
    e.enable_with_root();
    assert_eq!(
        revoke("root", "root").unwrap_err(),
        EtcdError::InvalidAuthMgmt
    );
}

#[test]
fn role_add_get_list_delete() {
    let e = Env::new();
    assert_eq!(e.role_add(""), Err(EtcdError::RoleEmpty));
    assert_eq!(
        EtcdError::RoleEmpty.to_string(),
        "etcdserver: role name is empty"
    );
    e.role_add("b").unwrap();
    e.role_add("a").unwrap();
    assert_eq!(e.role_add("a"), Err(EtcdError::RoleAlreadyExist));
    assert_eq!(
        EtcdError::RoleAlreadyExist.to_string(),
        "etcdserver: role name already exists"
    );
    assert_eq!(e.store.role_list(&Default::default()).roles, vec!["a", "b"]);
    e.grant_perm("a", PermType::Read, b"k", b"").unwrap();
    let g = e
        .store
        .role_get(&pb::AuthRoleGetRequest { role: "a".into() })
        .unwrap();
    assert_eq!(g.perm.len(), 1);
    assert_eq!(
        e.store
            .role_get(&pb::AuthRoleGetRequest { role: "zz".into() }),
        Err(EtcdError::RoleNotFound)
    );
    // Deleting a role takes it away from its users.
    e.user_add("u", "pw").unwrap();
    e.grant_role("u", "a").unwrap();
    let del =
        |r: &str| e.apply(|s, tx| s.role_delete(tx, &pb::AuthRoleDeleteRequest { role: r.into() }));
    assert_eq!(del("zz").unwrap_err(), EtcdError::RoleNotFound);
    del("a").unwrap();
    assert!(e
        .store
        .user_get(&pb::AuthUserGetRequest { name: "u".into() })
        .unwrap()
        .roles
        .is_empty());
    // The root role reports full access and cannot be deleted while enabled.
    e.role_add("root").unwrap();
    let g = e
        .store
        .role_get(&pb::AuthRoleGetRequest {
            role: "root".into(),
        })
        .unwrap();
    assert_eq!(
        g.perm,
        vec![Permission {
            perm_type: PermType::Readwrite as i32,
            key: vec![],
            range_end: vec![0]
        }]
    );
    e.enable_with_root();
    assert_eq!(del("root").unwrap_err(), EtcdError::InvalidAuthMgmt);
}

#[test]
fn grant_and_revoke_permission() {
    let e = Env::new();
    assert_eq!(
        e.grant_perm("zz", PermType::Read, b"k", b""),
        Err(EtcdError::RoleNotFound)
    );
    e.role_add("r").unwrap();
    let none = pb::AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: None,
    };
    assert_eq!(
        e.apply(|s, tx| s.role_grant_permission(tx, &none))
            .unwrap_err(),
        EtcdError::PermissionNotGiven
    );
    assert_eq!(
        e.grant_perm("r", PermType::Read, b"b", b"a"),
        Err(EtcdError::InvalidAuthMgmt)
    );
    assert_eq!(
        e.grant_perm("r", PermType::Read, b"", b"\0"),
        Err(EtcdError::InvalidAuthMgmt)
    );
    e.grant_perm("r", PermType::Read, b"z", b"").unwrap();
    e.grant_perm("r", PermType::Write, b"a", b"c").unwrap();
    e.grant_perm("r", PermType::Read, b"p", b"\0").unwrap();
    // The same key and range end updates the type.
    e.grant_perm("r", PermType::Readwrite, b"z", b"").unwrap();
    let perms = e
        .store
        .role_get(&pb::AuthRoleGetRequest { role: "r".into() })
        .unwrap()
        .perm;
    let keys: Vec<&[u8]> = perms.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(keys, vec![b"a".as_slice(), b"p", b"z"], "sorted by key");
    assert_eq!(perms[2].perm_type, PermType::Readwrite as i32);
    let revoke = |k: &[u8], end: &[u8]| {
        let r = pb::AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: k.to_vec(),
            range_end: end.to_vec(),
        };
        e.apply(|s, tx| s.role_revoke_permission(tx, &r))
    };
    assert_eq!(
        revoke(b"a", b"b").unwrap_err(),
        EtcdError::PermissionNotGranted
    );
    assert_eq!(
        EtcdError::PermissionNotGranted.to_string(),
        "etcdserver: permission is not granted to the role"
    );
    let rev = e.store.revision();
    revoke(b"a", b"c").unwrap();
    assert_eq!(e.store.revision(), rev + 1);
    let missing_role = pb::AuthRoleRevokePermissionRequest {
        role: "zz".into(),
        key: b"a".to_vec(),
        range_end: vec![],
    };
    assert_eq!(
        e.apply(|s, tx| s.role_revoke_permission(tx, &missing_role))
            .unwrap_err(),
        EtcdError::RoleNotFound
    );
}

#[test]
fn state_survives_reopen_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = Arc::new(ManualClock::new());
    let rev;
    {
        let backend = Backend::open(&path, BackendConfig::default()).unwrap();
        let store = AuthStore::open(&backend, cfg(), clock.clone()).unwrap();
        let e = Env {
            _dir: tempfile::tempdir().unwrap(),
            backend,
            store,
            clock: ManualClock::new(),
        };
        e.user_add("u", "pw").unwrap();
        e.role_add("r").unwrap();
        e.grant_perm("r", PermType::Read, b"a", b"b").unwrap();
        e.grant_role("u", "r").unwrap();
        e.enable_with_root();
        rev = e.store.revision();
        e.backend.force_commit().unwrap();
    }
    let backend = Backend::open(&path, BackendConfig::default()).unwrap();
    let store = AuthStore::open(&backend, cfg(), clock).unwrap();
    assert_eq!(
        store.status(),
        AuthStatus {
            enabled: true,
            revision: rev
        }
    );
    assert_eq!(
        store.user_list(&Default::default()).users,
        vec!["root", "u"]
    );
    assert_eq!(store.check_password("u", "pw"), Ok(rev));
    let info = AuthInfo {
        username: "u".into(),
        revision: rev,
    };
    // The permission cache is rebuilt on recovery.
    assert_eq!(store.is_range_permitted(&info, b"a", b"b"), Ok(()));
    assert_eq!(
        store.is_range_permitted(&info, b"a", b"c"),
        Err(EtcdError::PermissionDenied)
    );
    // recover() on an empty backend resets everything.
    let other = tempfile::tempdir().unwrap();
    let empty = Backend::open(&other.path().join("db"), BackendConfig::default()).unwrap();
    store.recover(&empty).unwrap();
    assert_eq!(
        store.status(),
        AuthStatus {
            enabled: false,
            revision: 0
        }
    );
    assert!(store.user_list(&Default::default()).users.is_empty());
}

#[test]
fn simple_tokens_expire_and_use_extends_them() {
    let e = Env::with(AuthConfig {
        token_ttl: Duration::from_secs(10),
        ..cfg()
    });
    e.enable_with_root();
    let t = e.login("root", "rootpw", 5).unwrap();
    e.clock.advance(Duration::from_secs(8));
    assert_eq!(e.store.auth_info_from_token(&t).unwrap().username, "root");
    e.clock.advance(Duration::from_secs(8));
    // Still alive: the use above extended it.
    let info = e.store.auth_info_from_token(&t).unwrap();
    assert_eq!(info.revision, e.store.revision());
    e.clock.advance(Duration::from_secs(11));
    assert_eq!(
        e.store.auth_info_from_token(&t),
        Err(EtcdError::InvalidAuthToken)
    );
    let t2 = e.login("root", "rootpw", 6).unwrap();
    assert_eq!(e.store.purge_expired_tokens(), 1);
    e.clock.advance(Duration::from_secs(11));
    assert_eq!(e.store.purge_expired_tokens(), 0);
    assert!(e.store.auth_info_from_token(&t2).is_err());
    assert!(e.store.auth_info_from_token("garbage").is_err());
    // Disabling drops every token.
    let t3 = e.login("root", "rootpw", 7).unwrap();
    e.apply(|s, tx| s.auth_disable(tx, &Default::default()))
        .unwrap();
    e.enable().unwrap();
    assert_eq!(
        e.store.auth_info_from_token(&t3),
        Err(EtcdError::InvalidAuthToken)
    );
}

#[test]
fn deleting_a_user_invalidates_its_tokens() {
    let e = Env::new();
    e.enable_with_root();
    e.user_add("u", "pw").unwrap();
    let t = e.login("u", "pw", 3).unwrap();
    e.apply(|s, tx| s.user_delete(tx, &pb::AuthUserDeleteRequest { name: "u".into() }))
        .unwrap();
    assert_eq!(
        e.store.auth_info_from_token(&t),
        Err(EtcdError::InvalidAuthToken)
    );
}

const HS_SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn jwt_tokens_carry_username_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret");
    std::fs::write(&key, HS_SECRET).unwrap();
    let opts: TokenOptions = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", key.display())
        .parse()
        .unwrap();
    let e = Env::with(AuthConfig {
        token: opts,
        ..cfg()
    });
    assert_eq!(e.store.gen_token_prefix(), "");
    e.enable_with_root();
    e.user_add("u", "pw").unwrap();
    let rev = e.store.revision();
    let t = e.login("u", "pw", 0).unwrap();
    assert_eq!(t.split('.').count(), 3, "a JWT");
    let info = e.store.auth_info_from_token(&t).unwrap();
    assert_eq!(
        info,
        AuthInfo {
            username: "u".into(),
            revision: rev
        }
    );
    // The token's revision goes stale when the store changes.
    e.role_add("x").unwrap();
    assert_eq!(
        e.store.is_range_permitted(&info, b"k", b""),
        Err(EtcdError::AuthOldRevision)
    );
    assert_eq!(
        EtcdError::AuthOldRevision.to_string(),
        "etcdserver: revision of auth store is old"
    );
    // A tampered token is refused.
    let mut bad = t.clone();
    bad.pop();
    bad.push(if t.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        e.store.auth_info_from_token(&bad),
        Err(EtcdError::InvalidAuthToken)
    );
}

#[test]
fn jwt_key_errors_are_reported() {
    let missing: TokenOptions = "jwt,sign-method=RS256".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
    let open = |t: TokenOptions| {
        AuthStore::open(
            &backend,
            AuthConfig { token: t, ..cfg() },
            Arc::new(ManualClock::new()),
        )
    };
    assert!(matches!(open(missing), Err(AuthError::InvalidOptions(_))));
    let bad_method: TokenOptions = "jwt,sign-method=XX999".parse().unwrap();
    assert!(matches!(
        open(bad_method),
        Err(AuthError::InvalidOptions(_))
    ));
    let no_file: TokenOptions = "jwt,sign-method=RS256,priv-key=/nonexistent/key"
        .parse()
        .unwrap();
    assert!(matches!(open(no_file), Err(AuthError::InvalidOptions(_))));
}

#[test]
fn nop_token_provider_refuses_authenticate() {
    let e = Env::with(AuthConfig {
        token: TokenOptions::None,
        ..cfg()
    });
    e.enable_with_root();
    assert_eq!(e.login("root", "rootpw", 1), Err(EtcdError::AuthFailed));
}

#[test]
fn auth_info_from_request_and_common_name() {
    let e = Env::new();
    assert_eq!(
        e.store.auth_info_from_request(Some("junk"), None),
        Ok(AuthInfo::default())
    );
    e.enable_with_root();
    assert_eq!(
        e.store.auth_info_from_request(Some("junk"), Some("root")),
        Err(EtcdError::InvalidAuthToken)
    );
    let cn = e.store.auth_info_from_request(None, Some("root")).unwrap();
    assert_eq!(cn, e.info("root"));
    assert_eq!(e.store.auth_info_from_common_name("root"), e.info("root"));
    assert_eq!(
        e.store.auth_info_from_request(None, None),
        Ok(AuthInfo::default())
    );
    assert_eq!(e.store.root_auth_info(), e.info("root"));
}

fn testdata(name: &str) -> String {
    format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn jwt_env(opts: &str) -> Env {
    Env::with(AuthConfig {
        token: opts.parse().unwrap(),
        ..cfg()
    })
}

#[test]
fn jwt_rs256_and_es256_sign_and_verify() {
    for opts in [
        format!(
            "jwt,pub-key={},priv-key={},sign-method=RS256",
            testdata("rsapub.pem"),
            testdata("rsa.pem")
        ),
        // Private key only: verified with its public half, as etcd does.
        format!("jwt,priv-key={},sign-method=RS256", testdata("rsa.pem")),
        format!(
            "jwt,pub-key={},priv-key={},sign-method=ES256,ttl=30s",
            testdata("ecpub.pem"),
            testdata("ec.pem")
        ),
        format!("jwt,priv-key={},sign-method=ES256", testdata("ec.pem")),
    ] {
        let e = jwt_env(&opts);
        e.enable_with_root();
        let t = e.login("root", "rootpw", 0).unwrap();
        assert_eq!(
            e.store.auth_info_from_token(&t).unwrap(),
            e.info("root"),
            "{opts}"
        );
    }
}

#[test]
fn jwt_verify_only_key_cannot_sign_but_verifies() {
    let signer = jwt_env(&format!(
        "jwt,priv-key={},sign-method=ES256",
        testdata("ec.pem")
    ));
    signer.enable_with_root();
    let t = signer.login("root", "rootpw", 0).unwrap();
    let verifier = jwt_env(&format!(
        "jwt,pub-key={},sign-method=ES256",
        testdata("ecpub.pem")
    ));
    verifier.enable_with_root();
    assert!(matches!(
        verifier.login("root", "rootpw", 0),
        Err(EtcdError::Internal(_))
    ));
    assert_eq!(
        verifier.store.auth_info_from_token(&t).unwrap().username,
        "root"
    );
    // A token of another algorithm is refused.
    let rs = jwt_env(&format!(
        "jwt,priv-key={},sign-method=RS256",
        testdata("rsa.pem")
    ));
    rs.enable_with_root();
    let rt = rs.login("root", "rootpw", 0).unwrap();
    assert_eq!(
        verifier.store.auth_info_from_token(&rt),
        Err(EtcdError::InvalidAuthToken)
    );
}
