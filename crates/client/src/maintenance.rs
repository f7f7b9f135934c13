//! Maintenance service: status, alarms, defragment, hashes, snapshots, leader transfer.
//!
//! Invariant: these talk to the *current* endpoint (status, defragment and hashes are per
//! member); to address one member, connect a client to that endpoint alone.

use futures::Stream;
use oxcd_api::etcdserverpb::{
    alarm_request::AlarmAction, maintenance_client::MaintenanceClient, AlarmMember, AlarmRequest,
    AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};

use crate::transport::Safety;
use crate::{Client, Error, Result};

impl Client {
    /// The status of the member this client reaches.
    pub async fn status(&self) -> Result<StatusResponse> {
        self.t
            .unary(Safety::Idempotent, StatusRequest {}, |ch, r| async move {
                MaintenanceClient::new(ch).status(r).await
            })
            .await
    }

    /// Every raised alarm.
    pub async fn alarm_list(&self) -> Result<AlarmResponse> {
        let req = AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        };
        self.alarm(req).await
    }

    /// Clear one alarm (as listed by [`Client::alarm_list`]).
    pub async fn alarm_disarm(&self, alarm: &AlarmMember) -> Result<AlarmResponse> {
        let req = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id: alarm.member_id,
            alarm: alarm.alarm,
        };
        self.alarm(req).await
    }

    /// A raw alarm request.
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse> {
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                MaintenanceClient::new(ch).alarm(r).await
            })
            .await
    }

    /// Defragment the backend of the member reached.
    pub async fn defragment(&self) -> Result<DefragmentResponse> {
        self.t
            .unary(
                Safety::Idempotent,
                DefragmentRequest {},
                |ch, r| async move { MaintenanceClient::new(ch).defragment(r).await },
            )
            .await
    }

    /// Hash of the whole backend of the member reached.
    pub async fn hash(&self) -> Result<HashResponse> {
        self.t
            .unary(Safety::Idempotent, HashRequest {}, |ch, r| async move {
                MaintenanceClient::new(ch).hash(r).await
            })
            .await
    }

    /// Hash of the key-value history up to `revision` (0 = latest).
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        self.t
            .unary(
                Safety::Idempotent,
                HashKvRequest { revision },
                |ch, r| async move { MaintenanceClient::new(ch).hash_kv(r).await },
            )
            .await
    }

    /// Ask the leader to hand leadership to member `target_id`.
    pub async fn move_leader(&self, target_id: u64) -> Result<MoveLeaderResponse> {
        self.t
            .unary(
                Safety::Mutating,
                MoveLeaderRequest { target_id },
                |ch, r| async move { MaintenanceClient::new(ch).move_leader(r).await },
            )
            .await
    }

    /// Stream a snapshot of the backend of the member reached.
    pub async fn snapshot(
        &self,
    ) -> Result<impl Stream<Item = Result<SnapshotResponse>> + Send + Unpin + 'static> {
        use futures::StreamExt;
        let (_, ch) = self.t.pick();
        let s = MaintenanceClient::new(ch)
            .snapshot(SnapshotRequest {})
            .await?
            .into_inner();
        Ok(s.map(|r| r.map_err(Error::from)))
    }
}
