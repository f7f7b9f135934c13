//! The auth requests' apply path (etcd's `applierV3backend` Auth* methods) and the
//! [`AuthGuard`] of the applier chain (etcd's `authApplierV3`).
//!
//! Invariants:
//! - Every write is checked here, at apply, against the identity and auth revision in
//!   its header, by the auth store's checks (the one place that decides); a request
//!   checked at an older auth revision gets "revision of auth store is old".
//! - Internal requests (expired-lease revokes, member attribute updates) are proposed
//!   as root; lease checkpoints carry no keys and are not checked.
//! - An auth response travels to its waiter encoded, without header; the proposer adds
//!   the header (see `auth_server`).

use std::sync::Arc;

use oxcd_api::etcdserverpb as pb;
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::RequestHeader;
use oxcd_api::EtcdError;
use oxcd_auth::{AuthInfo, AuthStore, LeaseKeys};
use oxcd_lease::Lessor;
use oxcd_storage::WriteTx;
use prost::Message;

use crate::apply::{Applied, Applier, ApplyResult};
use crate::apply_guard::{request_error, ApplyFailure, Guard};

impl ApplyFailure for oxcd_auth::AuthError {
    fn is_machine_failure(&self) -> bool {
        self.is_fatal()
    }
}

/// The keys attached to a lease, from the lessor.
pub(crate) struct LessorKeys<'a>(pub &'a Lessor);

impl LeaseKeys for LessorKeys<'_> {
    fn lease_keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.0
            .time_to_live(id, true)
            .map(|t| t.keys)
            .unwrap_or_default()
    }
}

/// etcd's `authApplierV3`: refuses a committed request its sender may not make.
pub(crate) struct AuthGuard {
    pub auth: Arc<AuthStore>,
    pub lessor: Arc<Lessor>,
}

impl Guard for AuthGuard {
    fn check(&self, header: &RequestHeader, req: &Request) -> Result<(), EtcdError> {
        let info = AuthInfo {
            username: header.username.clone(),
            revision: header.auth_revision,
        };
        let a = &self.auth;
        let leases = LessorKeys(&self.lessor);
        match req {
            Request::Put(r) => a.check_put(&info, r, &leases),
            Request::DeleteRange(r) => a.check_delete_range(&info, r),
            Request::Txn(r) => a.check_txn(&info, r, &leases),
            Request::LeaseRevoke(r) => a.check_lease_revoke(&info, &leases.lease_keys(r.id)),
            Request::Alarm(_) | Request::MemberUpdate(_) => a.is_admin_permitted(&info),
            Request::Compaction(_) | Request::LeaseGrant(_) | Request::LeaseCheckpoint(_) => Ok(()),
            Request::Authenticate(_) => Ok(()),
            Request::AuthUserGet(r) => a.check_user_get(&info, &r.name),
            Request::AuthRoleGet(r) => a.check_role_get(&info, &r.role),
            Request::AuthEnable(_)
            | Request::AuthDisable(_)
            | Request::AuthStatus(_)
            | Request::AuthUserAdd(_)
            | Request::AuthUserDelete(_)
            | Request::AuthUserChangePassword(_)
            | Request::AuthUserGrantRole(_)
            | Request::AuthUserRevokeRole(_)
            | Request::AuthUserList(_)
            | Request::AuthRoleList(_)
            | Request::AuthRoleAdd(_)
            | Request::AuthRoleDelete(_)
            | Request::AuthRoleGrantPermission(_)
            | Request::AuthRoleRevokePermission(_) => a.is_admin_permitted(&info),
        }
    }
}

fn enc<M: Message>(m: Result<M, oxcd_auth::AuthError>) -> ApplyResult {
    m.map(|m| Applied::Auth(m.encode_to_vec()))
        .map_err(|e| request_error("applying an auth request", e))
}

fn enc_read<M: Message>(m: Result<M, EtcdError>) -> ApplyResult {
    m.map(|m| Applied::Auth(m.encode_to_vec()))
}

impl Applier {
    /// An auth request's effect on the auth store; `index` is its raft entry's (simple
    /// tokens are named after it).
    pub(crate) fn apply_auth(&self, wtx: &mut WriteTx, index: u64, req: Request) -> ApplyResult {
        let a = &self.auth;
        match req {
            Request::AuthEnable(r) => enc(a.auth_enable(wtx, &r)),
            Request::AuthDisable(r) => enc(a.auth_disable(wtx, &r)),
            Request::AuthStatus(_) => {
                let st = a.status();
                enc_read(Ok(pb::AuthStatusResponse {
                    header: None,
                    enabled: st.enabled,
                    auth_revision: st.revision,
                }))
            }
            Request::Authenticate(r) => enc_read(
                a.authenticate(&r.name, &r.simple_token, index)
                    .map(|token| pb::AuthenticateResponse {
                        header: None,
                        token,
                    }),
            ),
            Request::AuthUserAdd(r) => enc(a.user_add(wtx, &r)),
            Request::AuthUserDelete(r) => enc(a.user_delete(wtx, &r)),
            Request::AuthUserGet(r) => enc_read(a.user_get(&r)),
            Request::AuthUserChangePassword(r) => enc(a.user_change_password(wtx, &r)),
            Request::AuthUserGrantRole(r) => enc(a.user_grant_role(wtx, &r)),
            Request::AuthUserRevokeRole(r) => enc(a.user_revoke_role(wtx, &r)),
            Request::AuthUserList(r) => enc_read(Ok(a.user_list(&r))),
            Request::AuthRoleList(r) => enc_read(Ok(a.role_list(&r))),
            Request::AuthRoleAdd(r) => enc(a.role_add(wtx, &r)),
            Request::AuthRoleDelete(r) => enc(a.role_delete(wtx, &r)),
            Request::AuthRoleGet(r) => enc_read(a.role_get(&r)),
            Request::AuthRoleGrantPermission(r) => enc(a.role_grant_permission(wtx, &r)),
            Request::AuthRoleRevokePermission(r) => enc(a.role_revoke_permission(wtx, &r)),
            _ => Err(EtcdError::Internal("not an auth request".into())),
        }
    }
}
