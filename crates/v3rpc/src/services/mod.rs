//! gRPC services: thin adapters from etcd's service traits to [`EtcdServer`], each
//! passing the caller's identity (`identity`: metadata `token` or certificate CN). Every error
//! leaves through `tonic::Status::from(EtcdError)`; an RPC whose issue has not landed yet
//! answers `Unimplemented` with a message naming it.

// Declared first: its `unimplemented_unary!` macro is used by the modules below.
#[macro_use]
mod unimplemented;

mod auth;
mod cluster;
mod identity;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub use watch::set_progress_report_interval;

use std::sync::Arc;

use oxcd_api::etcdserverpb::auth_server::AuthServer;
use oxcd_api::etcdserverpb::cluster_server::ClusterServer;
use oxcd_api::etcdserverpb::kv_server::KvServer;
use oxcd_api::etcdserverpb::lease_server::LeaseServer;
use oxcd_api::etcdserverpb::maintenance_server::MaintenanceServer;
use oxcd_api::etcdserverpb::watch_server::WatchServer;
use oxcd_api::v3electionpb::election_server::ElectionServer;
use oxcd_api::v3lockpb::lock_server::LockServer;
use tonic::service::Routes;

use oxcd_etcdserver::EtcdServer;

/// gRPC's own framing overhead allowed above `--max-request-bytes` (etcd: 512 KiB), so an
/// oversized request reaches etcd's "request is too large" check instead of a transport error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// All client-facing services.
pub fn routes(server: Arc<EtcdServer>) -> Routes {
    let max_recv = server.settings().max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(kv::KvService(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let watch = WatchServer::new(watch::WatchService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let lease =
        LeaseServer::new(lease::LeaseService(server.clone())).max_decoding_message_size(max_recv);
    // Lock and Election run clientv3's recipes over the server's own KV, Lease and Watch,
    // in-process, as etcd's v3lock/v3election do over a local client.
    let mut inner = Routes::builder();
    inner.add_service(kv.clone());
    inner.add_service(watch.clone());
    inner.add_service(lease.clone());
    let inner = inner.routes();

    let mut b = Routes::builder();
    b.add_service(kv);
    b.add_service(watch);
    b.add_service(lease);
    b.add_service(
        MaintenanceServer::new(maintenance::MaintenanceService(server.clone()))
            .max_decoding_message_size(max_recv),
    );
    b.add_service(
        ClusterServer::new(cluster::ClusterService(server.clone()))
            .max_decoding_message_size(max_recv),
    );
    b.add_service(
        AuthServer::new(auth::AuthService(server.clone())).max_decoding_message_size(max_recv),
    );
    b.add_service(
        LockServer::new(oxcd_v3lock::LockService::new(inner.clone()))
            .max_decoding_message_size(max_recv),
    );
    b.add_service(
        ElectionServer::new(oxcd_v3lock::ElectionService::new(inner))
            .max_decoding_message_size(max_recv),
    );
    let (reporter, health) = tonic_health::server::health_reporter();
    b.add_service(health);
    crate::health::spawn(reporter, server.clone());
    crate::metrics::init();
    Routes::from(
        b.routes()
            .into_axum_router()
            .layer(crate::require_leader::RequireLeaderLayer(server))
            .layer(crate::metrics::GrpcMetricsLayer),
    )
}
