//! Forwarding to the leader: etcd members pass lease renewals and time-to-live queries to
//! the leader (the only member whose lessor knows expiries), and learner promotions (only
//! the leader knows whether the learner caught up). oxcd does it over the leader's client
//! gRPC API, through one cached connection.
//!
//! Invariant: the cached channel is tied to the leader id it was opened for; a leader
//! change opens a new one.

use std::time::Duration;

use oxcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use oxcd_api::etcdserverpb::{MemberPromoteRequest, MemberPromoteResponse};
use oxcd_api::EtcdError;
use parking_lot::Mutex;
use tonic::transport::Channel;

use crate::server::EtcdServer;

/// A connection to the current leader, opened on demand.
#[derive(Default)]
pub struct LeaderChannel(Mutex<Option<(u64, Channel)>>);

impl LeaderChannel {
    async fn get(&self, s: &EtcdServer) -> Result<Channel, EtcdError> {
        let leader = s.status.leader();
        if leader == 0 {
            return Err(EtcdError::NoLeader);
        }
        if let Some((id, ch)) = self.0.lock().as_ref() {
            if *id == leader {
                return Ok(ch.clone());
            }
        }
        let urls = s
            .cluster
            .read()
            .members
            .get(&leader)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default();
        for u in urls {
            let timeout = s.settings.request_timeout;
            let tls = s.settings.client_tls.as_ref();
            let ch = crate::dial::connect(&u, tls, Duration::from_secs(1), |ep| {
                ep.timeout(timeout).tcp_nodelay(true)
            });
            if let Ok(ch) = ch.await {
                *self.0.lock() = Some((leader, ch.clone()));
                return Ok(ch);
            }
        }
        Err(EtcdError::NoLeader)
    }

    fn forget(&self) {
        *self.0.lock() = None;
    }

    /// Renews lease `id` on the leader; its TTL, or `LeaseNotFound`.
    pub async fn renew(&self, s: &EtcdServer, id: i64) -> Result<i64, EtcdError> {
        let ch = self.get(s).await?;
        let req = tokio_stream::once(LeaseKeepAliveRequest { id });
        let mut stream = match LeaseClient::new(ch).lease_keep_alive(req).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                self.forget();
                return Err(EtcdError::from_status_message(e.message()));
            }
        };
        match stream.message().await {
            Ok(Some(r)) if r.ttl > 0 => Ok(r.ttl),
            Ok(_) => Err(EtcdError::LeaseNotFound),
            Err(e) => {
                self.forget();
                Err(EtcdError::from_status_message(e.message()))
            }
        }
    }

    /// Asks the leader to promote learner `id`.
    pub async fn promote(
        &self,
        s: &EtcdServer,
        id: u64,
    ) -> Result<MemberPromoteResponse, EtcdError> {
        let ch = self.get(s).await?;
        match ClusterClient::new(ch)
            .member_promote(MemberPromoteRequest { id })
            .await
        {
            Ok(r) => Ok(r.into_inner()),
            Err(e) => {
                self.forget();
                Err(EtcdError::from_status_message(e.message()))
            }
        }
    }

    /// Asks the leader for a lease's time to live.
    pub async fn time_to_live(
        &self,
        s: &EtcdServer,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        let ch = self.get(s).await?;
        match LeaseClient::new(ch).lease_time_to_live(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(e) => {
                self.forget();
                Err(EtcdError::from_status_message(e.message()))
            }
        }
    }
}
