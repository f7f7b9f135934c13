//! etcd's KV service.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};

use oxcd_api::etcdserverpb::kv_server::Kv;
use oxcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::identity::identity;
use oxcd_etcdserver::EtcdServer;

pub struct KvService(pub Arc<EtcdServer>);

type RangeStream = Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(self.0.range(&info, req.into_inner()).await?))
    }

    type RangeStreamStream = RangeStream;

    async fn range_stream(
        &self,
        req: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let info = identity(&self.0, &req).await?;
        let rx = self.0.range_stream(&info, req.into_inner()).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| {
            r.map(|range_response| RangeStreamResponse {
                range_response: Some(range_response),
            })
            .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(self.0.put(&info, req.into_inner()).await?))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(
            self.0.delete_range(&info, req.into_inner()).await?,
        ))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let info = identity(&self.0, &req).await?;
        Ok(Response::new(self.0.txn(&info, req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // No permission is checked for Compact, but a bad token is still refused.
        identity(&self.0, &req).await?;
        Ok(Response::new(self.0.compact(req.into_inner()).await?))
    }
}
