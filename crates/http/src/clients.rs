//! The tonic-generated clients of every client-facing service, all over one in-process
//! transport: the server's own [`Routes`].
//!
//! Invariant: `Routes` is a `tower::Service<http::Request<_>>` answering
//! `http::Response<tonic::body::Body>`, which makes it a `GrpcService` — the clients encode a
//! request, the service decodes it exactly as from a socket, with no network in between.

use oxcd_api::etcdserverpb::auth_client::AuthClient;
use oxcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxcd_api::etcdserverpb::watch_client::WatchClient;
use oxcd_api::v3electionpb::election_client::ElectionClient;
use oxcd_api::v3lockpb::lock_client::LockClient;
use tonic::service::Routes;

/// One client per service; cloning is cheap (each clones a `Routes`).
#[derive(Clone)]
pub(crate) struct Clients {
    pub kv: KvClient<Routes>,
    pub watch: WatchClient<Routes>,
    pub lease: LeaseClient<Routes>,
    pub cluster: ClusterClient<Routes>,
    pub maintenance: MaintenanceClient<Routes>,
    pub auth: AuthClient<Routes>,
    pub lock: LockClient<Routes>,
    pub election: ElectionClient<Routes>,
}

impl Clients {
    pub fn new(routes: Routes) -> Self {
        // The services enforce their own request limits; responses (a large Range, a
        // snapshot chunk) are never cut by the in-process client.
        macro_rules! client {
            ($c:ident) => {
                $c::new(routes.clone())
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX)
            };
        }
        Clients {
            kv: client!(KvClient),
            watch: client!(WatchClient),
            lease: client!(LeaseClient),
            cluster: client!(ClusterClient),
            maintenance: client!(MaintenanceClient),
            auth: client!(AuthClient),
            lock: client!(LockClient),
            election: client!(ElectionClient),
        }
    }
}
