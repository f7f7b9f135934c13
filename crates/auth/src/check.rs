//! The one place that decides permissions (etcd's `isOpPermitted`, `IsAdminPermitted`
//! and the checks of `apply_auth.go`, `v3_server.go` and `watch.go`), plus whole-request
//! checks that every path must use.
//!
//! Rules (etcd's), in order: auth disabled → allowed; revision 0 (no user) →
//! "user name is empty"; a revision older than the store's → "revision of auth store is
//! old"; unknown user → "permission denied"; a user with the `root` role → allowed;
//! otherwise the user's merged read/write intervals must cover the whole key range.
//!
//! Whole-request checks close the holes etcd had (CVEs): a put's or delete's `prev_kv`
//! also needs read; a txn's compares need read, and every op of every branch at every
//! nesting level is checked; a put with a lease needs write on every key already
//! attached to that lease (the user could otherwise revoke them with it); a lease
//! revoke needs write on every attached key; a lease time-to-live listing keys needs
//! read on each.
//!
//! Invariant: each public check reads the store under one read lock, so it is decided
//! against a single auth revision.

use oxcd_api::etcdserverpb::{
    request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use oxcd_api::EtcdError;

use crate::store::{has_root_role, State};
use crate::{AuthInfo, AuthStore};

/// Finds the keys attached to a lease (implemented over the lessor).
pub trait LeaseKeys {
    /// The keys currently attached to lease `id` (empty if it does not exist).
    fn lease_keys(&self, id: i64) -> Vec<Vec<u8>>;
}

impl<F: Fn(i64) -> Vec<Vec<u8>>> LeaseKeys for F {
    fn lease_keys(&self, id: i64) -> Vec<Vec<u8>> {
        self(id)
    }
}

/// No lease has keys (for callers that check a request with no lease involved).
pub struct NoLeases;

impl LeaseKeys for NoLeases {
    fn lease_keys(&self, _id: i64) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The checks against one snapshot of the store.
struct Checker<'a> {
    s: &'a State,
    info: &'a AuthInfo,
}

impl Checker<'_> {
    /// etcd's `isOpPermitted`.
    fn op(&self, key: &[u8], range_end: &[u8], access: Access) -> Result<(), EtcdError> {
        if !self.s.enabled {
            return Ok(());
        }
        if self.info.revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        if self.info.revision < self.s.revision {
            tracing::warn!(
                current = self.s.revision,
                request = self.info.revision,
                "request auth revision is less than current node auth revision"
            );
            return Err(EtcdError::AuthOldRevision);
        }
        let Some(user) = self.s.users.get(&self.info.username) else {
            tracing::error!(user_name = %self.info.username, "cannot find a user for permission check");
            return Err(EtcdError::PermissionDenied);
        };
        if has_root_role(user) {
            return Ok(());
        }
        let Some(perms) = self.s.perms.get(&self.info.username) else {
            return Err(EtcdError::PermissionDenied);
        };
        let ivs = match access {
            Access::Read => &perms.read,
            Access::Write => &perms.write,
        };
        if ivs.covers(key, range_end) {
            Ok(())
        } else {
            Err(EtcdError::PermissionDenied)
        }
    }

    fn read(&self, key: &[u8], range_end: &[u8]) -> Result<(), EtcdError> {
        self.op(key, range_end, Access::Read)
    }

    fn write(&self, key: &[u8], range_end: &[u8]) -> Result<(), EtcdError> {
        self.op(key, range_end, Access::Write)
    }

    /// etcd's `IsAdminPermitted` (no revision check, as etcd).
    fn admin(&self) -> Result<(), EtcdError> {
        if !self.s.enabled {
            return Ok(());
        }
        if self.info.username.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        let u = self
            .s
            .users
            .get(&self.info.username)
            .ok_or(EtcdError::UserNotFound)?;
        if !has_root_role(u) {
            return Err(EtcdError::PermissionDenied);
        }
        Ok(())
    }

    fn lease_puts(&self, lease: i64, leases: &dyn LeaseKeys) -> Result<(), EtcdError> {
        if lease == 0 || !self.s.enabled {
            return Ok(());
        }
        for k in leases.lease_keys(lease) {
            self.write(&k, &[])?;
        }
        Ok(())
    }

    fn put(&self, r: &PutRequest, leases: &dyn LeaseKeys) -> Result<(), EtcdError> {
        self.write(&r.key, &[])?;
        self.lease_puts(r.lease, leases)?;
        if r.prev_kv {
            self.read(&r.key, &[])?;
        }
        Ok(())
    }

    fn delete_range(&self, r: &DeleteRangeRequest) -> Result<(), EtcdError> {
        self.write(&r.key, &r.range_end)?;
        if r.prev_kv {
            self.read(&r.key, &r.range_end)?;
        }
        Ok(())
    }

    fn ops(&self, ops: &[RequestOp], leases: &dyn LeaseKeys) -> Result<(), EtcdError> {
        for op in ops {
            match &op.request {
                Some(Request::RequestRange(r)) => self.read(&r.key, &r.range_end)?,
                Some(Request::RequestPut(r)) => self.put(r, leases)?,
                Some(Request::RequestDeleteRange(r)) => self.delete_range(r)?,
                Some(Request::RequestTxn(t)) => self.txn(t, leases)?,
                None => {}
            }
        }
        Ok(())
    }

    fn txn(&self, t: &TxnRequest, leases: &dyn LeaseKeys) -> Result<(), EtcdError> {
        for c in &t.compare {
            self.read(&c.key, &c.range_end)?;
        }
        self.ops(&t.success, leases)?;
        self.ops(&t.failure, leases)
    }

    fn anonymous_refused(&self) -> Result<(), EtcdError> {
        if self.s.enabled && self.info.revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        Ok(())
    }
}

impl AuthStore {
    fn checker<R>(&self, info: &AuthInfo, f: impl FnOnce(&Checker<'_>) -> R) -> R {
        let s = self.state.read();
        f(&Checker { s: &s, info })
    }

    /// Read permission on `key`..`range_end` (etcd's `IsRangePermitted`).
    pub fn is_range_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.read(key, range_end))
    }

    /// Write permission on `key` (etcd's `IsPutPermitted`).
    pub fn is_put_permitted(&self, info: &AuthInfo, key: &[u8]) -> Result<(), EtcdError> {
        self.checker(info, |c| c.write(key, &[]))
    }

    /// Write permission on `key`..`range_end` (etcd's `IsDeleteRangePermitted`).
    pub fn is_delete_range_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.write(key, range_end))
    }

    /// The root role (etcd's `IsAdminPermitted`): every Auth RPC but Authenticate,
    /// UserGet and RoleGet (which have their own checks below), and the cluster
    /// maintenance RPCs etcd guards with it (MemberAdd/Remove/Update/Promote, Alarm,
    /// Defragment, Snapshot, Hash, HashKV, MoveLeader, Downgrade, Compact is not).
    pub fn is_admin_permitted(&self, info: &AuthInfo) -> Result<(), EtcdError> {
        self.checker(info, |c| c.admin())
    }

    /// UserGet: admins, or the user asking about itself.
    pub fn check_user_get(&self, info: &AuthInfo, name: &str) -> Result<(), EtcdError> {
        self.checker(info, |c| match c.admin() {
            Err(e) if name != info.username => Err(e),
            _ => Ok(()),
        })
    }

    /// RoleGet: admins, or a user that has the role.
    pub fn check_role_get(&self, info: &AuthInfo, role: &str) -> Result<(), EtcdError> {
        self.checker(info, |c| match c.admin() {
            Err(e) => {
                let has =
                    c.s.users
                        .get(&info.username)
                        .is_some_and(|u| u.roles.iter().any(|r| r == role));
                if has {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Ok(()) => Ok(()),
        })
    }

    /// A Range request.
    pub fn check_range(&self, info: &AuthInfo, r: &RangeRequest) -> Result<(), EtcdError> {
        self.checker(info, |c| c.read(&r.key, &r.range_end))
    }

    /// A Put request: write on the key, write on every key attached to its lease, and
    /// read on the key if it asks for `prev_kv`.
    pub fn check_put(
        &self,
        info: &AuthInfo,
        r: &PutRequest,
        leases: &dyn LeaseKeys,
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.put(r, leases))
    }

    /// A DeleteRange request: write on the range, and read on it for `prev_kv`.
    pub fn check_delete_range(
        &self,
        info: &AuthInfo,
        r: &DeleteRangeRequest,
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.delete_range(r))
    }

    /// A Txn request: read on every compare, and every op of both branches, nested txns
    /// included, as if it were a request of its own.
    pub fn check_txn(
        &self,
        info: &AuthInfo,
        t: &TxnRequest,
        leases: &dyn LeaseKeys,
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.txn(t, leases))
    }

    /// A watch on `key`..`range_end`, as the client sent them (`"\0"` = from key):
    /// read on the range.
    pub fn check_watch(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| c.read(key, range_end))
    }

    /// LeaseRevoke: write on every key attached to the lease (etcd's `checkLeasePuts`).
    pub fn check_lease_revoke(
        &self,
        info: &AuthInfo,
        attached_keys: &[Vec<u8>],
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| {
            attached_keys.iter().try_for_each(|k| c.write(k, &[]))
        })
    }

    /// LeaseTimeToLive with `keys = true` (etcd's `checkLeaseTimeToLive`): an anonymous
    /// caller is refused, and every attached key needs read.
    pub fn check_lease_time_to_live(
        &self,
        info: &AuthInfo,
        keys: &[Vec<u8>],
    ) -> Result<(), EtcdError> {
        self.checker(info, |c| {
            c.anonymous_refused()?;
            keys.iter().try_for_each(|k| c.read(k, &[]))
        })
    }

    /// After a serialized read was served: refused if the auth store changed since the
    /// request's identity was read (etcd's `doSerialize` re-check).
    pub fn check_revision_unchanged(&self, info: &AuthInfo) -> Result<(), EtcdError> {
        let s = self.state.read();
        if s.enabled && info.revision != 0 && info.revision != s.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        Ok(())
    }
}
