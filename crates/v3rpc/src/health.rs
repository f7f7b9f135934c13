//! gRPC's standard health service (`grpc.health.v1.Health`, which load balancers and
//! Kubernetes' gRPC probes call): the server as a whole (service name "") is SERVING while
//! this member knows a leader and NOT_SERVING while it has none, as `/health` judges it.
//! etcd 3.4 reports SERVING for as long as it runs; oxcd reports what a balancer needs.
//!
//! Invariant: the status follows every leader change (a watch on the core's leader, no
//! polling), and the task ends with the server.

use std::sync::Arc;

use oxcd_etcdserver::EtcdServer;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// Keeps `reporter` in step with the leader; a no-op outside a tokio runtime.
pub fn spawn(reporter: HealthReporter, server: Arc<EtcdServer>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut leader = server.subscribe_leader();
        loop {
            let status = if server.has_leader() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            if leader.changed().await.is_err() {
                break;
            }
        }
    });
}
