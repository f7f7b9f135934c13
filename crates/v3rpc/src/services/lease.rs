//! etcd's Lease service (`v3rpc/lease.go`): thin adapters to the lease half of
//! [`EtcdServer`].
//!
//! Invariants:
//! - A keep-alive stream answers its requests one at a time, in order; each response's
//!   header is taken before the renew (etcd: so a revoke at rev N is never followed by a
//!   keep-alive success at a later revision); an unknown or expired lease answers TTL 0,
//!   other errors end the stream with the error.
//! - A keep-alive stream ends when the client closes its side, when the client goes away,
//!   or when the server stops.

use std::sync::Arc;

use oxcd_api::etcdserverpb::lease_server::Lease;
use oxcd_api::etcdserverpb::*;
use oxcd_api::EtcdError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::identity::identity;
use super::unimplemented::BoxStream;
use oxcd_etcdserver::EtcdServer;

/// Responses buffered per keep-alive stream.
const KEEPALIVE_BUFFER: usize = 16;

pub struct LeaseService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        Ok(Response::new(self.0.lease_grant(req.into_inner()).await?))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.lease_revoke(&info, req.into_inner()).await?,
        ))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.lease_time_to_live(&info, req.into_inner()).await?,
        ))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Ok(Response::new(self.0.lease_leases()))
    }

    type LeaseKeepAliveStream = BoxStream<LeaseKeepAliveResponse>;
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        let server = self.0.clone();
        tokio::spawn(async move {
            let stopped = server.leases().stopped();
            tokio::select! {
                _ = stopped => {}
                _ = keep_alive(&server, inbound, &tx) => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Serves one keep-alive stream until the client closes it or an error ends it.
async fn keep_alive(
    server: &EtcdServer,
    mut inbound: Streaming<LeaseKeepAliveRequest>,
    tx: &mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    loop {
        let req = match inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "lease keep-alive stream failed");
                return;
            }
        };
        let header = server.header(server.published_revision());
        let ttl = match server.lease_renew(req.id).await {
            Ok(ttl) => ttl,
            Err(EtcdError::LeaseNotFound) => 0,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let resp = LeaseKeepAliveResponse {
            header: Some(header),
            id: req.id,
            ttl,
        };
        if tx.send(Ok(resp)).await.is_err() {
            return; // the client went away
        }
    }
}
