//! The auth store (etcd's `server/auth/store.go`): users, roles, the enabled flag and the
//! auth revision, persisted in the backend's auth tables and mirrored in memory.
//!
//! Invariants:
//! - Every change happens in an apply function, in raft log order, inside the backend
//!   [`WriteTx`] of the entry that carries it; the backend is written first, so a
//!   storage error leaves the memory state untouched (and is fatal to the caller).
//! - Every change bumps the auth revision by one and stores it with the change, except
//!   AuthEnable, which (as in etcd) keeps the stored revision. A new store starts at
//!   revision 1, so revision 0 always means "no user".
//! - The range-permission cache is rebuilt from the users and roles after every change,
//!   under the same write lock, so a check never sees a half-applied change.
//! - Users' roles are kept sorted (etcd's `UserGrantRole` sorts them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::authpb::{Permission, Role, User, UserAddOptions};
use oxcd_api::etcdserverpb as pb;
use oxcd_api::EtcdError;
use oxcd_lease::{Clock, MonotonicClock};
use oxcd_storage::schema::{
    AUTH_ROLES_TABLE, AUTH_USERS_TABLE, META_AUTH_ENABLED, META_AUTH_REVISION, META_TABLE,
};
use oxcd_storage::{Backend, WriteTx};
use parking_lot::RwLock;
use prost::Message;
use redb::ReadableTable;

use crate::password;
use crate::perm::{build_cache, is_valid_permission_range, UnifiedPerms};
use crate::token::{TokenOptions, TokenProvider, DEFAULT_SIMPLE_TOKEN_TTL};
use crate::{AuthError, AuthInfo, AuthStatus};

/// The name of the superuser (etcd's `rootUser`).
pub const ROOT_USER: &str = "root";
/// The role that bypasses every permission check (etcd's `rootRole`).
pub const ROOT_ROLE: &str = "root";

/// The auth store's settings (etcd's `--auth-token`, `--auth-token-ttl`,
/// `--bcrypt-cost`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The parsed `--auth-token` (see [`TokenOptions`]'s `FromStr`).
    pub token: TokenOptions,
    /// `--auth-token-ttl`: a simple token's lifetime, extended on each use.
    pub token_ttl: Duration,
    /// `--bcrypt-cost`; out-of-range values fall back to 10, as in etcd.
    pub bcrypt_cost: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token: TokenOptions::Simple,
            token_ttl: DEFAULT_SIMPLE_TOKEN_TTL,
            bcrypt_cost: password::DEFAULT_BCRYPT_COST,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) enabled: bool,
    pub(crate) revision: u64,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) perms: HashMap<String, UnifiedPerms>,
}

pub(crate) fn has_root_role(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

fn etcd(e: EtcdError) -> AuthError {
    AuthError::Request(e)
}

/// etcd's `rootPerm`: what RoleGet reports for the root role.
fn root_perm() -> Permission {
    Permission {
        perm_type: oxcd_api::authpb::permission::Type::Readwrite as i32,
        key: Vec::new(),
        range_end: vec![0],
    }
}

/// The auth store (see the module doc).
pub struct AuthStore {
    pub(crate) state: RwLock<State>,
    pub(crate) tokens: TokenProvider,
    bcrypt_cost: u32,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("AuthStore")
            .field("enabled", &s.enabled)
            .field("revision", &s.revision)
            .field("users", &s.users.len())
            .field("roles", &s.roles.len())
            .finish()
    }
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore::new()
    }
}

fn read_u64(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = v.len().min(8);
    b[8 - n..].copy_from_slice(&v[v.len() - n..]);
    u64::from_be_bytes(b)
}

fn decode_name(name: &[u8], what: &str) -> Result<String, AuthError> {
    String::from_utf8(name.to_vec())
        .map_err(|_| AuthError::Corrupt(format!("{what} name is not UTF-8")))
}

impl AuthStore {
    /// An empty, disabled store that is not backed by a database (simple tokens, the
    /// default bcrypt cost, the real clock). [`AuthStore::open`] is what the server uses.
    pub fn new() -> AuthStore {
        AuthStore {
            state: RwLock::new(State::default()),
            tokens: TokenProvider::Simple(crate::token::SimpleTokens::new(
                DEFAULT_SIMPLE_TOKEN_TTL,
                Arc::new(MonotonicClock),
            )),
            bcrypt_cost: password::DEFAULT_BCRYPT_COST,
        }
    }

    /// Opens the store over `backend` (etcd's `NewAuthStore`): builds the token provider
    /// (reading JWT key files), stores revision 1 if the backend has none yet (durably),
    /// and loads users, roles and flags.
    pub fn open(
        backend: &Backend,
        cfg: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<AuthStore, AuthError> {
        let store = AuthStore {
            state: RwLock::new(State::default()),
            tokens: TokenProvider::new(&cfg.token, cfg.token_ttl, clock)?,
            bcrypt_cost: password::effective_cost(cfg.bcrypt_cost),
        };
        let stored = {
            let rtx = backend.read_tx()?;
            let meta = rtx.open_table(META_TABLE)?;
            let v = meta.get(META_AUTH_REVISION)?;
            v.map(|v| read_u64(v.value())).unwrap_or(0)
        };
        if stored == 0 {
            let mut tx = backend.write_tx()?;
            Self::save_revision(&mut tx, 1)?;
            backend.commit_durable(tx)?;
        }
        store.recover(backend)?;
        Ok(store)
    }

    /// Replaces the whole state with the backend's (at open, and after a snapshot
    /// replaced the backend; etcd's `Recover`). Tokens survive only if auth stays
    /// enabled.
    pub fn recover(&self, backend: &Backend) -> Result<(), AuthError> {
        let rtx = backend.read_tx()?;
        let meta = rtx.open_table(META_TABLE)?;
        let enabled = meta
            .get(META_AUTH_ENABLED)?
            .is_some_and(|v| v.value().first() == Some(&1));
        let revision = meta
            .get(META_AUTH_REVISION)?
            .map(|v| read_u64(v.value()))
            .unwrap_or(0);
        let mut users = BTreeMap::new();
        for e in rtx.open_table(AUTH_USERS_TABLE)?.iter()? {
            let (_, v) = e?;
            let u = User::decode(v.value())
                .map_err(|e| AuthError::Corrupt(format!("user record: {e}")))?;
            users.insert(decode_name(&u.name, "user")?, u);
        }
        let mut roles = BTreeMap::new();
        for e in rtx.open_table(AUTH_ROLES_TABLE)?.iter()? {
            let (_, v) = e?;
            let r = Role::decode(v.value())
                .map_err(|e| AuthError::Corrupt(format!("role record: {e}")))?;
            roles.insert(decode_name(&r.name, "role")?, r);
        }
        let mut s = self.state.write();
        s.perms = build_cache(&users, &roles);
        s.users = users;
        s.roles = roles;
        s.revision = revision;
        s.enabled = enabled;
        drop(s);
        if enabled {
            self.tokens.enable();
        } else {
            self.tokens.disable();
        }
        Ok(())
    }

    /// The bcrypt cost passwords are hashed with before proposing.
    pub fn bcrypt_cost(&self) -> u32 {
        self.bcrypt_cost
    }

    /// Whether authentication is enabled.
    pub fn is_enabled(&self) -> bool {
        self.state.read().enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// AuthStatus (etcd 3.5 checks admin permission first: [`AuthStore::is_admin_permitted`]).
    pub fn status(&self) -> AuthStatus {
        let s = self.state.read();
        AuthStatus {
            enabled: s.enabled,
            revision: s.revision,
        }
    }

    /// Whether `user` exists and has `role` (etcd's `HasRole`).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.state
            .read()
            .users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    // --- backend writes (etcd's schema `UnsafePut*`) ---

    fn save_revision(tx: &mut WriteTx, rev: u64) -> Result<(), AuthError> {
        tx.tx
            .open_table(META_TABLE)?
            .insert(META_AUTH_REVISION, rev.to_be_bytes().as_slice())?;
        Ok(())
    }

    fn save_enabled(tx: &mut WriteTx, enabled: bool) -> Result<(), AuthError> {
        tx.tx
            .open_table(META_TABLE)?
            .insert(META_AUTH_ENABLED, [u8::from(enabled)].as_slice())?;
        Ok(())
    }

    fn put_user(tx: &mut WriteTx, u: &User) -> Result<(), AuthError> {
        tx.tx
            .open_table(AUTH_USERS_TABLE)?
            .insert(u.name.as_slice(), u.encode_to_vec().as_slice())?;
        Ok(())
    }

    fn put_role(tx: &mut WriteTx, r: &Role) -> Result<(), AuthError> {
        tx.tx
            .open_table(AUTH_ROLES_TABLE)?
            .insert(r.name.as_slice(), r.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Stores the bumped revision and returns it (etcd's `commitRevision`); the caller
    /// sets it in memory once all its writes succeeded.
    fn commit_revision(tx: &mut WriteTx, s: &State) -> Result<u64, AuthError> {
        let rev = s.revision + 1;
        Self::save_revision(tx, rev)?;
        Ok(rev)
    }

    fn finish(s: &mut State, rev: u64) {
        s.revision = rev;
        s.perms = build_cache(&s.users, &s.roles);
    }

    // --- apply functions, one per Auth RPC that changes the store ---

    /// AuthEnable: refused without a `root` user holding the `root` role; a no-op if
    /// already enabled. Keeps the stored revision (as etcd).
    pub fn auth_enable(
        &self,
        tx: &mut WriteTx,
        _r: &pb::AuthEnableRequest,
    ) -> Result<pb::AuthEnableResponse, AuthError> {
        let mut s = self.state.write();
        if s.enabled {
            tracing::info!("authentication is already enabled; ignored auth enable request");
            return Ok(pb::AuthEnableResponse::default());
        }
        let root = s
            .users
            .get(ROOT_USER)
            .ok_or(etcd(EtcdError::RootUserNotExist))?;
        if !has_root_role(root) {
            return Err(etcd(EtcdError::RootRoleNotExist));
        }
        Self::save_enabled(tx, true)?;
        s.enabled = true;
        s.perms = build_cache(&s.users, &s.roles);
        drop(s);
        self.tokens.enable();
        tracing::info!("enabled authentication");
        Ok(pb::AuthEnableResponse::default())
    }

    /// AuthDisable: a no-op if already disabled; drops every simple token.
    pub fn auth_disable(
        &self,
        tx: &mut WriteTx,
        _r: &pb::AuthDisableRequest,
    ) -> Result<pb::AuthDisableResponse, AuthError> {
        let mut s = self.state.write();
        if !s.enabled {
            return Ok(pb::AuthDisableResponse::default());
        }
        Self::save_enabled(tx, false)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.enabled = false;
        Self::finish(&mut s, rev);
        drop(s);
        self.tokens.disable();
        tracing::info!("disabled authentication");
        Ok(pb::AuthDisableResponse::default())
    }

    /// UserAdd. The request must carry the bcrypt hash in `hashed_password`
    /// ([`crate::prepare_user_add`] before proposing); a bare `password` (an entry
    /// from a proposer that did not hash) is hashed here.
    pub fn user_add(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthUserAddRequest,
    ) -> Result<pb::AuthUserAddResponse, AuthError> {
        if r.name.is_empty() {
            return Err(etcd(EtcdError::UserEmpty));
        }
        let mut s = self.state.write();
        if s.users.contains_key(&r.name) {
            return Err(etcd(EtcdError::UserAlreadyExist));
        }
        let options = UserAddOptions {
            no_password: r.options.as_ref().is_some_and(|o| o.no_password),
        };
        let password = if options.no_password {
            Vec::new()
        } else {
            password::select(&r.password, &r.hashed_password, self.bcrypt_cost)?
        };
        let u = User {
            name: r.name.clone().into_bytes(),
            password,
            roles: Vec::new(),
            options: Some(options),
        };
        Self::put_user(tx, &u)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.users.insert(r.name.clone(), u);
        Self::finish(&mut s, rev);
        tracing::info!(user_name = %r.name, "added a user");
        Ok(pb::AuthUserAddResponse::default())
    }

    /// UserDelete; deleting `root` while auth is enabled is refused.
    pub fn user_delete(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthUserDeleteRequest,
    ) -> Result<pb::AuthUserDeleteResponse, AuthError> {
        let mut s = self.state.write();
        if s.enabled && r.name == ROOT_USER {
            tracing::error!("cannot delete 'root' user");
            return Err(etcd(EtcdError::InvalidAuthMgmt));
        }
        if !s.users.contains_key(&r.name) {
            return Err(etcd(EtcdError::UserNotFound));
        }
        tx.tx
            .open_table(AUTH_USERS_TABLE)?
            .remove(r.name.as_bytes())?;
        let rev = Self::commit_revision(tx, &s)?;
        s.users.remove(&r.name);
        Self::finish(&mut s, rev);
        drop(s);
        self.tokens.invalidate_user(&r.name);
        tracing::info!(user_name = %r.name, "deleted a user");
        Ok(pb::AuthUserDeleteResponse::default())
    }

    /// UserChangePassword (hash in `hashed_password`, see
    /// [`crate::prepare_change_password`]); a no-password user keeps no password.
    /// Invalidates the user's simple tokens.
    pub fn user_change_password(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthUserChangePasswordRequest,
    ) -> Result<pb::AuthUserChangePasswordResponse, AuthError> {
        let mut s = self.state.write();
        let Some(old) = s.users.get(&r.name) else {
            return Err(etcd(EtcdError::UserNotFound));
        };
        let no_password = old.options.as_ref().is_some_and(|o| o.no_password);
        let password = if no_password {
            Vec::new()
        } else {
            password::select(&r.password, &r.hashed_password, self.bcrypt_cost)?
        };
        let u = User {
            password,
            ..old.clone()
        };
        Self::put_user(tx, &u)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.users.insert(r.name.clone(), u);
        Self::finish(&mut s, rev);
        drop(s);
        self.tokens.invalidate_user(&r.name);
        tracing::info!(user_name = %r.name, "changed a password of a user");
        Ok(pb::AuthUserChangePasswordResponse::default())
    }

    /// UserGrantRole. The `root` role need not exist as a role; granting a role the
    /// user already has is a no-op (no revision bump), as in etcd.
    pub fn user_grant_role(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthUserGrantRoleRequest,
    ) -> Result<pb::AuthUserGrantRoleResponse, AuthError> {
        let mut s = self.state.write();
        let Some(old) = s.users.get(&r.user) else {
            return Err(etcd(EtcdError::UserNotFound));
        };
        if r.role != ROOT_ROLE && !s.roles.contains_key(&r.role) {
            return Err(etcd(EtcdError::RoleNotFound));
        }
        if old.roles.contains(&r.role) {
            tracing::warn!(user_name = %r.user, role = %r.role, "ignored grant role request to a user");
            return Ok(pb::AuthUserGrantRoleResponse::default());
        }
        let mut u = old.clone();
        u.roles.push(r.role.clone());
        u.roles.sort();
        Self::put_user(tx, &u)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.users.insert(r.user.clone(), u);
        Self::finish(&mut s, rev);
        tracing::info!(user_name = %r.user, role = %r.role, "granted a role to a user");
        Ok(pb::AuthUserGrantRoleResponse::default())
    }

    /// UserRevokeRole; revoking `root` from `root` while enabled is refused.
    pub fn user_revoke_role(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthUserRevokeRoleRequest,
    ) -> Result<pb::AuthUserRevokeRoleResponse, AuthError> {
        let mut s = self.state.write();
        if s.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
            tracing::error!("'root' user cannot revoke 'root' role");
            return Err(etcd(EtcdError::InvalidAuthMgmt));
        }
        let Some(old) = s.users.get(&r.name) else {
            return Err(etcd(EtcdError::UserNotFound));
        };
        let mut u = old.clone();
        u.roles.retain(|x| *x != r.role);
        if u.roles.len() == old.roles.len() {
            return Err(etcd(EtcdError::RoleNotGranted));
        }
        Self::put_user(tx, &u)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.users.insert(r.name.clone(), u);
        Self::finish(&mut s, rev);
        tracing::info!(user_name = %r.name, role = %r.role, "revoked a role from a user");
        Ok(pb::AuthUserRevokeRoleResponse::default())
    }

    /// RoleAdd.
    pub fn role_add(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthRoleAddRequest,
    ) -> Result<pb::AuthRoleAddResponse, AuthError> {
        if r.name.is_empty() {
            return Err(etcd(EtcdError::RoleEmpty));
        }
        let mut s = self.state.write();
        if s.roles.contains_key(&r.name) {
            return Err(etcd(EtcdError::RoleAlreadyExist));
        }
        let role = Role {
            name: r.name.clone().into_bytes(),
            key_permission: Vec::new(),
        };
        Self::put_role(tx, &role)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.roles.insert(r.name.clone(), role);
        Self::finish(&mut s, rev);
        tracing::info!(role = %r.name, "created a role");
        Ok(pb::AuthRoleAddResponse::default())
    }

    /// RoleDelete; also removes the role from every user. Deleting `root` while
    /// enabled is refused.
    pub fn role_delete(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthRoleDeleteRequest,
    ) -> Result<pb::AuthRoleDeleteResponse, AuthError> {
        let mut s = self.state.write();
        if s.enabled && r.role == ROOT_ROLE {
            tracing::error!("cannot delete 'root' role");
            return Err(etcd(EtcdError::InvalidAuthMgmt));
        }
        if !s.roles.contains_key(&r.role) {
            return Err(etcd(EtcdError::RoleNotFound));
        }
        tx.tx
            .open_table(AUTH_ROLES_TABLE)?
            .remove(r.role.as_bytes())?;
        let mut changed = Vec::new();
        for (name, u) in &s.users {
            if u.roles.contains(&r.role) {
                let mut u = u.clone();
                u.roles.retain(|x| *x != r.role);
                Self::put_user(tx, &u)?;
                changed.push((name.clone(), u));
            }
        }
        let rev = Self::commit_revision(tx, &s)?;
        s.roles.remove(&r.role);
        s.users.extend(changed);
        Self::finish(&mut s, rev);
        tracing::info!(role = %r.role, "deleted a role");
        Ok(pb::AuthRoleDeleteResponse::default())
    }

    /// RoleGrantPermission: adds the permission, or changes the type of one with the
    /// same key and range end. Permissions stay sorted by key.
    pub fn role_grant_permission(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthRoleGrantPermissionRequest,
    ) -> Result<pb::AuthRoleGrantPermissionResponse, AuthError> {
        let Some(perm) = &r.perm else {
            return Err(etcd(EtcdError::PermissionNotGiven));
        };
        if !is_valid_permission_range(&perm.key, &perm.range_end) {
            return Err(etcd(EtcdError::InvalidAuthMgmt));
        }
        let mut s = self.state.write();
        let Some(old) = s.roles.get(&r.name) else {
            return Err(etcd(EtcdError::RoleNotFound));
        };
        let mut role = old.clone();
        let kp = &mut role.key_permission;
        let idx = kp.partition_point(|p| p.key < perm.key);
        if idx < kp.len() && kp[idx].key == perm.key && kp[idx].range_end == perm.range_end {
            kp[idx].perm_type = perm.perm_type;
        } else {
            kp.push(perm.clone());
            // Stable, as Go's sort.Sort is not; equal keys keep insertion order here.
            kp.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Self::put_role(tx, &role)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.roles.insert(r.name.clone(), role);
        Self::finish(&mut s, rev);
        tracing::info!(role = %r.name, perm_type = perm.perm_type, "granted/updated a permission to a role");
        Ok(pb::AuthRoleGrantPermissionResponse::default())
    }

    /// RoleRevokePermission: removes the permission with exactly this key and range end.
    pub fn role_revoke_permission(
        &self,
        tx: &mut WriteTx,
        r: &pb::AuthRoleRevokePermissionRequest,
    ) -> Result<pb::AuthRoleRevokePermissionResponse, AuthError> {
        let mut s = self.state.write();
        let Some(old) = s.roles.get(&r.role) else {
            return Err(etcd(EtcdError::RoleNotFound));
        };
        let mut role = old.clone();
        role.key_permission
            .retain(|p| p.key != r.key || p.range_end != r.range_end);
        if role.key_permission.len() == old.key_permission.len() {
            return Err(etcd(EtcdError::PermissionNotGranted));
        }
        Self::put_role(tx, &role)?;
        let rev = Self::commit_revision(tx, &s)?;
        s.roles.insert(r.role.clone(), role);
        Self::finish(&mut s, rev);
        tracing::info!(role = %r.role, "revoked a permission on range");
        Ok(pb::AuthRoleRevokePermissionResponse::default())
    }

    // --- reads (etcd 3.5 applies them through Raft too; they change nothing) ---

    /// UserGet: the user's roles. Check with [`AuthStore::check_user_get`] first.
    pub fn user_get(
        &self,
        r: &pb::AuthUserGetRequest,
    ) -> Result<pb::AuthUserGetResponse, EtcdError> {
        let s = self.state.read();
        let u = s.users.get(&r.name).ok_or(EtcdError::UserNotFound)?;
        Ok(pb::AuthUserGetResponse {
            header: None,
            roles: u.roles.clone(),
        })
    }

    /// UserList: every user name, sorted.
    pub fn user_list(&self, _r: &pb::AuthUserListRequest) -> pb::AuthUserListResponse {
        pb::AuthUserListResponse {
            header: None,
            users: self.state.read().users.keys().cloned().collect(),
        }
    }

    /// RoleGet: the role's permissions (the root role reports full access). Check with
    /// [`AuthStore::check_role_get`] first.
    pub fn role_get(
        &self,
        r: &pb::AuthRoleGetRequest,
    ) -> Result<pb::AuthRoleGetResponse, EtcdError> {
        let s = self.state.read();
        let role = s.roles.get(&r.role).ok_or(EtcdError::RoleNotFound)?;
        let perm = if r.role == ROOT_ROLE {
            vec![root_perm()]
        } else {
            role.key_permission.clone()
        };
        Ok(pb::AuthRoleGetResponse { header: None, perm })
    }

    /// RoleList: every role name, sorted.
    pub fn role_list(&self, _r: &pb::AuthRoleListRequest) -> pb::AuthRoleListResponse {
        pb::AuthRoleListResponse {
            header: None,
            roles: self.state.read().roles.keys().cloned().collect(),
        }
    }

    // --- authentication ---

    /// Step 1 of Authenticate, before proposing (etcd's `CheckPassword`): verifies the
    /// password with no lock held while bcrypt runs, and returns the auth revision the
    /// user was read at. After the Authenticate entry applied, the proposer retries the
    /// whole exchange if [`AuthStore::revision`] moved past it.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, EtcdError> {
        let (hash, revision) = {
            let s = self.state.read();
            if !s.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let u = s.users.get(name).ok_or(EtcdError::AuthFailed)?;
            if u.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(EtcdError::NoPasswordUser);
            }
            (u.password.clone(), s.revision)
        };
        if !password::verify(password, &hash) {
            tracing::info!(user_name = %name, "invalid password");
            return Err(EtcdError::AuthFailed);
        }
        Ok(revision)
    }

    /// Step 2, before proposing: the random prefix of a simple token (etcd's
    /// `GenTokenPrefix`; empty for JWT). It travels in the Authenticate entry.
    pub fn gen_token_prefix(&self) -> String {
        self.tokens.gen_prefix()
    }

    /// Step 3, the apply path of an Authenticate entry at raft `index` (etcd's
    /// `Authenticate`): issues the token (`<prefix>.<index>` for simple tokens, which
    /// every member registers; a signed JWT otherwise). Changes no backend state.
    pub fn authenticate(
        &self,
        name: &str,
        simple_token_prefix: &str,
        index: u64,
    ) -> Result<String, EtcdError> {
        let revision = {
            let s = self.state.read();
            if !s.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let u = s.users.get(name).ok_or(EtcdError::AuthFailed)?;
            if u.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(EtcdError::AuthFailed);
            }
            s.revision
        };
        let token = self
            .tokens
            .assign(name, revision, simple_token_prefix, index)?;
        tracing::debug!(user_name = %name, "authenticated a user");
        Ok(token)
    }

    /// The identity a token stands for (etcd's `authInfoFromToken`). With auth
    /// disabled every request is allowed, and this returns the anonymous identity.
    /// For a simple token the caller must first wait until this member applied
    /// [`crate::simple_token_index`]`(token)`.
    pub fn auth_info_from_token(&self, token: &str) -> Result<AuthInfo, EtcdError> {
        let revision = {
            let s = self.state.read();
            if !s.enabled {
                return Ok(AuthInfo::default());
            }
            s.revision
        };
        match self.tokens.info(token, revision) {
            Some(info) => Ok(info),
            None => {
                tracing::warn!("invalid auth token");
                Err(EtcdError::InvalidAuthToken)
            }
        }
    }

    /// The identity of a client certificate's common name (etcd's `AuthInfoFromTLS`,
    /// used with `--client-cert-auth` when the request carries no token).
    pub fn auth_info_from_common_name(&self, cn: &str) -> AuthInfo {
        AuthInfo {
            username: cn.to_string(),
            revision: self.revision(),
        }
    }

    /// etcd's `AuthInfoFromCtx` + TLS fallback: the token's identity if a token was
    /// sent, else the certificate's common name if client-cert auth gave one, else the
    /// anonymous identity (which every check refuses while auth is enabled).
    pub fn auth_info_from_request(
        &self,
        token: Option<&str>,
        common_name: Option<&str>,
    ) -> Result<AuthInfo, EtcdError> {
        if !self.is_enabled() {
            return Ok(AuthInfo::default());
        }
        if let Some(t) = token {
            return self.auth_info_from_token(t);
        }
        Ok(match common_name {
            Some(cn) if !cn.is_empty() => self.auth_info_from_common_name(cn),
            _ => AuthInfo::default(),
        })
    }

    /// The identity internal requests run as (etcd's `WithRoot`, e.g. revoking an
    /// expired lease).
    pub fn root_auth_info(&self) -> AuthInfo {
        AuthInfo {
            username: ROOT_USER.to_string(),
            revision: self.revision(),
        }
    }

    /// Drops expired simple tokens; returns how many are live. Call it now and then
    /// (etcd's keeper runs every second); expired tokens are refused either way.
    pub fn purge_expired_tokens(&self) -> usize {
        self.tokens.purge_expired()
    }
}
