//! etcd's Maintenance service, a thin front over `EtcdServer`: Status, Alarm, Snapshot
//! (streamed from the core's bounded channel), Defragment, Hash, HashKV, MoveLeader.
//! Downgrade answers etcd's errors (see `oxcd_etcdserver::downgrade`). Defragment, Snapshot, Hash and HashKV are reserved to
//! root when auth is enabled, as etcd's `authMaintenanceServer`.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use oxcd_api::etcdserverpb::maintenance_server::Maintenance;
use oxcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use super::identity::require_admin;

use oxcd_etcdserver::EtcdServer;

pub struct MaintenanceService(pub Arc<EtcdServer>);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(self.0.alarm(req.into_inner()).await?))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.0.status()))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        require_admin(&self.0, &req).await?;
        self.0.defragment().await?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.0.header(self.0.published_revision())),
        }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        require_admin(&self.0, &req).await?;
        Ok(Response::new(self.0.hash().await?))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        require_admin(&self.0, &req).await?;
        Ok(Response::new(
            self.0.hash_kv(req.into_inner().revision).await?,
        ))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        require_admin(&self.0, &req).await?;
        let rx = self.0.snapshot();
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r.map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.0.move_leader(req.into_inner().target_id).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.0.header(0)),
        }))
    }

    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        // etcd 3.6 reserves Downgrade to root.
        require_admin(&self.0, &req).await?;
        let r = req.into_inner();
        let version = oxcd_etcdserver::downgrade(r.action(), &r.version)?;
        Ok(Response::new(DowngradeResponse {
            header: Some(self.0.header(self.0.published_revision())),
            version,
        }))
    }
}
