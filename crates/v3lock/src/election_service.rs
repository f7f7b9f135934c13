//! etcd's v3election server: each RPC runs clientv3's Election on a session for the lease
//! it names (-1, no lease, for the read-only Leader and Observe).
//!
//! Invariants: every inner call carries the caller's `token` metadata; an Observe stream
//! stops its observer as soon as the client goes away.

use std::pin::Pin;

use futures::Stream;
use oxcd_api::v3electionpb::election_server::Election;
use oxcd_api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::client::V3Client;
use crate::election::{self, Leadership};
use crate::error::Error;
use crate::session::Session;

/// The lease v3election's read-only calls open their session with (not `NoLease`, so none
/// is granted).
const READ_ONLY_LEASE: i64 = -1;

/// The Election service (`v3electionpb.Election`).
#[derive(Clone)]
pub struct ElectionService {
    client: V3Client,
}

impl ElectionService {
    /// An Election service whose recipes call the KV, Lease and Watch services in `routes`.
    pub fn new(routes: Routes) -> ElectionService {
        ElectionService {
            client: V3Client::new(routes),
        }
    }
}

/// `ResumeElection(session(leader.lease), ...)`: the leadership a request names.
async fn resume(client: &V3Client, leader: Option<LeaderKey>) -> Result<Leadership, Error> {
    let leader = leader.ok_or(Error::MissingLeaderKey)?;
    let session = Session::new(client, leader.lease).await?;
    Ok(Leadership {
        key: leader.key,
        rev: leader.rev,
        lease: session.lease,
    })
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        let req = req.into_inner();
        let session = Session::new(&client, req.lease).await?;
        let (me, header) = election::campaign(&client, session, &req.name, &req.value).await?;
        Ok(Response::new(CampaignResponse {
            header,
            leader: Some(LeaderKey {
                name: req.name,
                key: me.key,
                rev: me.rev,
                lease: me.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        let req = req.into_inner();
        let me = resume(&client, req.leader).await?;
        let header = election::proclaim(&client, &me, &req.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        Session::new(&client, READ_ONLY_LEASE).await?;
        let (header, kv) = election::leader(&client, &req.into_inner().name).await?;
        Ok(Response::new(LeaderResponse {
            header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let client = self.client.for_request(req.metadata());
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            // Stop as soon as the client is gone, even while waiting on a watch.
            tokio::select! {
                () = election::observe(&client, &name, &tx) => {}
                () = tx.closed() => {}
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|(header, kv)| {
            Ok(LeaderResponse {
                header,
                kv: Some(kv),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let client = self.client.for_request(req.metadata());
        let me = resume(&client, req.into_inner().leader).await?;
        let header = election::resign(&client, &me).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}
