//! etcd's Lease service. Built by the lease issue; until then it answers `Unimplemented`.

use std::future::Future;
use std::pin::Pin;

use oxcd_api::etcdserverpb::lease_server::Lease;
use oxcd_api::etcdserverpb::*;
use oxcd_api::EtcdError;
use tonic::{Request, Response, Status, Streaming};

use super::unimplemented::BoxStream;

pub struct LeaseService;

#[tonic::async_trait]
impl Lease for LeaseService {
    unimplemented_unary! { "Lease";
        lease_grant: LeaseGrantRequest => LeaseGrantResponse, "LeaseGrant";
        lease_revoke: LeaseRevokeRequest => LeaseRevokeResponse, "LeaseRevoke";
        lease_time_to_live: LeaseTimeToLiveRequest => LeaseTimeToLiveResponse, "LeaseTimeToLive";
        lease_leases: LeaseLeasesRequest => LeaseLeasesResponse, "LeaseLeases";
    }

    type LeaseKeepAliveStream = BoxStream<LeaseKeepAliveResponse>;
    async fn lease_keep_alive(
        &self,
        _: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(EtcdError::Unimplemented("Lease.LeaseKeepAlive").into())
    }
}
