//! Probing members over the raw gRPC API: Maintenance.Status and the readiness probe.
//!
//! Invariants: every probe is bounded by a timeout; channels connect lazily (so a restarted
//! member is reached again) and never outlive the call; [`probe_ready`] runs on a private
//! runtime in a helper thread, so it is safe to call from inside an async test.

use std::time::Duration;

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxcd_api::etcdserverpb::{RangeRequest, StatusRequest};

/// Raft status of one member (from Maintenance.Status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader: u64,
    pub term: u64,
    pub raft_index: u64,
    pub applied: u64,
    pub revision: i64,
    pub is_learner: bool,
}

/// A lazily connecting channel to `url` (reconnects on its own after a restart).
pub fn lazy_channel(url: &str) -> Result<tonic::transport::Channel, String> {
    let ep = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}

/// One Status call on the member at `url`, bounded by `timeout`.
pub async fn status_of(url: String, timeout: Duration) -> Result<MemberStatus, String> {
    let fut = async {
        let mut mc = MaintenanceClient::new(lazy_channel(&url)?);
        let s = mc
            .status(StatusRequest {})
            .await
            .map_err(|e| format!("status: {}", e.message()))?
            .into_inner();
        let h = s.header.ok_or("status without header")?;
        Ok(MemberStatus {
            member_id: h.member_id,
            leader: s.leader,
            term: s.raft_term,
            raft_index: s.raft_index,
            applied: s.raft_applied_index,
            revision: h.revision,
            is_learner: s.is_learner,
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "status timed out".to_string())?
}

/// One readiness probe: Status must report a leader and a linearizable Range must succeed.
pub fn probe_ready(url: &str) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let fut = async {
                let ch = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| e.to_string())?
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let st = MaintenanceClient::new(ch.clone())
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| format!("status: {e}"))?
                    .into_inner();
                if st.leader == 0 {
                    return Err("no leader yet".to_string());
                }
                KvClient::new(ch)
                    .range(RangeRequest {
                        key: b"oxcd-test-readiness-probe".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .or_else(|e| {
                        // With auth enabled an anonymous read is refused, but the server is
                        // serving: that is ready too.
                        let auth_refusal = e.message() == "etcdserver: user name is empty"
                            || e.code() == tonic::Code::PermissionDenied;
                        if auth_refusal {
                            Ok(tonic::Response::new(Default::default()))
                        } else {
                            Err(format!("range: {e}"))
                        }
                    })?;
                Ok(())
            };
            tokio::time::timeout(Duration::from_secs(3), fut)
                .await
                .map_err(|_| "probe timed out".to_string())?
        })
    })
    .join()
    .map_err(|_| "probe thread panicked".to_string())?
}
