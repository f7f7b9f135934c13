//! etcd's Maintenance service: Status and the alarm list. No alarm can be raised until
//! quotas exist, so `Alarm` GET answers with an empty list (what `etcdctl endpoint health`
//! checks); the other RPCs belong to later issues.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::Stream;
use oxcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxcd_api::etcdserverpb::maintenance_server::Maintenance;
use oxcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use oxcd_api::{EtcdError, ETCD_API_VERSION};
use tonic::{Request, Response, Status};

use crate::server::EtcdServer;

pub struct MaintenanceService(pub Arc<EtcdServer>);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        match req.into_inner().action() {
            AlarmAction::Get => Ok(Response::new(AlarmResponse {
                header: Some(self.0.header(self.0.store.current_revision())),
                alarms: vec![],
            })),
            _ => Err(EtcdError::Unimplemented("Maintenance.Alarm ACTIVATE/DEACTIVATE").into()),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = &self.0;
        Ok(Response::new(StatusResponse {
            header: Some(s.header(s.store.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size: s.backend.size() as i64,
            leader: s.status.leader(),
            raft_index: s.status.commit(),
            raft_term: s.status.term(),
            raft_applied_index: s.applied.load(Ordering::Acquire),
            errors: vec![],
            db_size_in_use: s.backend.size_in_use() as i64,
            is_learner: s.status.is_learner.load(Ordering::Acquire),
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.Defragment").into())
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.Hash").into())
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.HashKV").into())
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.Snapshot").into())
    }

    /// etcd's MoveLeader: only the leader may hand over, and only to a voting member; it
    /// answers once the target leads, or with a timeout.
    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let s = &self.0;
        let target = req.into_inner().target_id;
        if s.status.leader() != s.member_id {
            return Err(EtcdError::NotLeader.into());
        }
        let voter = s
            .cluster
            .read()
            .members
            .get(&target)
            .is_some_and(|m| !m.is_learner);
        if !voter {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        if target != s.member_id {
            s.transfer_leader(target)?;
            let deadline = tokio::time::Instant::now() + s.settings.request_timeout;
            while s.status.leader() != target {
                if tokio::time::Instant::now() >= deadline {
                    return Err(EtcdError::TimeoutDueToLeaderFail.into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        Ok(Response::new(MoveLeaderResponse {
            header: Some(s.header(0)),
        }))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.Downgrade").into())
    }
}
