//! etcd's Watch service. Built by the watch issue; until then it answers `Unimplemented`.

use oxcd_api::etcdserverpb::watch_server::Watch;
use oxcd_api::etcdserverpb::{WatchRequest, WatchResponse};
use oxcd_api::EtcdError;
use tonic::{Request, Response, Status, Streaming};

use super::unimplemented::BoxStream;

pub struct WatchService;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = BoxStream<WatchResponse>;
    async fn watch(
        &self,
        _: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(EtcdError::Unimplemented("Watch.Watch").into())
    }
}
