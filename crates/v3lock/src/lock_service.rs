//! etcd's v3lock server: `Lock` runs clientv3's Mutex on a session for the request's lease;
//! `Unlock` deletes the key it returned.
//!
//! Invariant: every inner call carries the caller's `token` metadata.

use oxcd_api::v3lockpb::lock_server::Lock;
use oxcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::client::V3Client;
use crate::mutex;
use crate::session::Session;

/// The Lock service (`v3lockpb.Lock`).
#[derive(Clone)]
pub struct LockService {
    client: V3Client,
}

impl LockService {
    /// A Lock service whose recipes call the KV, Lease and Watch services in `routes`.
    pub fn new(routes: Routes) -> LockService {
        LockService {
            client: V3Client::new(routes),
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        let req = req.into_inner();
        let session = Session::new(&client, req.lease).await?;
        let locked = mutex::lock(&client, session, &req.name).await?;
        Ok(Response::new(LockResponse {
            header: locked.header,
            key: locked.key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        let resp = client.delete(req.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
