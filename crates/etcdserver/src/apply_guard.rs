//! The apply path's structure and its one error policy.
//!
//! Guards: etcd wraps its backend applier in appliers for alarms (`applierV3Corrupt`,
//! `applierV3Capped`), auth (`authApplierV3`) and quota (`quotaApplierV3`); here that chain
//! is flattened into a list of [`Guard`]s that a committed request passes, in order, before
//! the backend applies it. A new concern (auth, quota) adds a guard, not a match arm.
//!
//! Error policy: every error met while applying is either a request error (answered to
//! the client, state unchanged, the same on every member) or a machine error (the process
//! stops, as etcd's `lg.Fatal`). [`request_error`] is the one place that decides.
//!
//! Invariants:
//! - A guard reads only replicated state as of the entry being applied (alarms, the auth
//!   store), so every member refuses the same entries with the same error.
//! - A refused request has changed nothing when its guard answers.

use std::sync::Arc;

use oxcd_api::etcdserverpb::AlarmType;
use oxcd_api::oxcdpb::internal_request::Request;
use oxcd_api::oxcdpb::RequestHeader;
use oxcd_api::EtcdError;

use crate::alarm::AlarmStore;
use crate::raft_node::fatal;

/// One link of the applier chain.
pub(crate) trait Guard: Send + Sync {
    /// `Err` refuses the request before anything is applied.
    fn check(&self, header: &RequestHeader, req: &Request) -> Result<(), EtcdError>;
}

/// An error that may come out of applying a request.
pub(crate) trait ApplyFailure: std::fmt::Display + Into<EtcdError> {
    /// A machine failure (storage, corruption): the process must stop.
    fn is_machine_failure(&self) -> bool;
}

impl ApplyFailure for oxcd_mvcc::Error {
    fn is_machine_failure(&self) -> bool {
        self.is_fatal()
    }
}

impl ApplyFailure for oxcd_lease::LeaseError {
    fn is_machine_failure(&self) -> bool {
        self.is_fatal()
    }
}

impl ApplyFailure for crate::error::Error {
    fn is_machine_failure(&self) -> bool {
        !matches!(self, crate::error::Error::Etcd(_))
    }
}

/// The policy: a request error becomes the client's answer; a machine error stops the
/// process (it never reaches a client, and the batch is never committed).
pub(crate) fn request_error<E: ApplyFailure>(what: &str, e: E) -> EtcdError {
    if e.is_machine_failure() {
        fatal(&format!("{what}: {e}"));
    }
    e.into()
}

/// etcd's `applierV3Corrupt` and `applierV3Capped`: with a CORRUPT alarm every KV and
/// lease write is refused; with NOSPACE, everything that can grow the database (puts,
/// non-read-only txns, lease grants), while deletes and compactions still free space.
pub(crate) struct AlarmGuard(pub Arc<AlarmStore>);

impl Guard for AlarmGuard {
    fn check(&self, _: &RequestHeader, req: &Request) -> Result<(), EtcdError> {
        if self.0.is_active(AlarmType::Corrupt)
            && matches!(
                req,
                Request::Put(_)
                    | Request::DeleteRange(_)
                    | Request::Txn(_)
                    | Request::Compaction(_)
                    | Request::LeaseGrant(_)
                    | Request::LeaseRevoke(_)
            )
        {
            return Err(EtcdError::Corrupt);
        }
        if self.0.is_active(AlarmType::Nospace) {
            let grows = match req {
                Request::Put(_) | Request::LeaseGrant(_) => true,
                Request::Txn(t) => !oxcd_mvcc::kv_apply::is_txn_readonly(t),
                _ => false,
            };
            if grows {
                return Err(EtcdError::NoSpace);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_api::etcdserverpb::{
        request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    };
    use oxcd_storage::{Backend, BackendConfig};

    fn guard_with(alarm: AlarmType) -> (tempfile::TempDir, AlarmGuard) {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
        let s = Arc::new(AlarmStore::open(&b).unwrap());
        if alarm != AlarmType::None {
            let mut tx = b.write_tx().unwrap();
            s.activate(&mut tx, 1, alarm as i32).unwrap();
            b.commit_durable(tx).unwrap();
        }
        (dir, AlarmGuard(s))
    }

    fn txn(op: request_op::Request) -> Request {
        Request::Txn(TxnRequest {
            success: vec![RequestOp { request: Some(op) }],
            ..Default::default()
        })
    }

    #[test]
    fn nospace_refuses_growth_and_allows_deletes_and_reads() {
        let (_d, g) = guard_with(AlarmType::Nospace);
        let h = RequestHeader::default();
        let put = Request::Put(PutRequest::default());
        assert_eq!(g.check(&h, &put), Err(EtcdError::NoSpace));
        let put_txn = txn(request_op::Request::RequestPut(PutRequest::default()));
        assert_eq!(g.check(&h, &put_txn), Err(EtcdError::NoSpace));
        let read_txn = txn(request_op::Request::RequestRange(RangeRequest::default()));
        assert_eq!(g.check(&h, &read_txn), Ok(()));
        let del = Request::DeleteRange(DeleteRangeRequest::default());
        assert_eq!(g.check(&h, &del), Ok(()));
    }

    #[test]
    fn corrupt_refuses_every_write_and_no_alarm_refuses_nothing() {
        let (_d, g) = guard_with(AlarmType::Corrupt);
        let h = RequestHeader::default();
        let del = Request::DeleteRange(DeleteRangeRequest::default());
        assert_eq!(g.check(&h, &del), Err(EtcdError::Corrupt));
        let (_d, g) = guard_with(AlarmType::None);
        assert_eq!(g.check(&h, &Request::Put(PutRequest::default())), Ok(()));
    }

    #[test]
    fn the_policy_passes_request_errors_through() {
        assert_eq!(
            request_error("applying", oxcd_mvcc::Error::Compacted),
            EtcdError::Compacted
        );
        assert_eq!(
            request_error(
                "applying",
                crate::error::Error::Etcd(EtcdError::LeaseNotFound)
            ),
            EtcdError::LeaseNotFound
        );
    }
}
