//! `oxcd-client`: a small async client for the etcd v3 gRPC API, usable against oxcd and
//! real etcd alike. It is a thin layer over the generated tonic clients of `oxcd-api`:
//! requests and responses are the wire messages themselves, and the raw tonic clients stay
//! reachable ([`Client::kv_client`], ...) for anything not wrapped here.
//!
//! ```no_run
//! # async fn demo() -> oxcd_client::Result<()> {
//! use oxcd_client::{Client, Cmp, CmpOp, Op, PutOptions, Txn};
//! let c = Client::connect(["http://127.0.0.1:2379"]).await?;
//! c.put("k", "v", &PutOptions::default()).await?;
//! assert_eq!(c.get("k").await?.unwrap().value, b"v");
//! let t = Txn::new()
//!     .when([Cmp::value("k", CmpOp::Equal, "v")])
//!     .and_then([Op::put("k", "w", &PutOptions::default())]);
//! assert!(c.txn(t).await?.succeeded);
//! # Ok(()) }
//! ```
//!
//! Invariants:
//! - A [`Client`] owns one gRPC channel; cloning it shares that channel (HTTP/2
//!   multiplexes concurrent requests). Open several clients to get several connections.
//! - With one endpoint, [`Client::connect`] connects eagerly and fails with
//!   [`Error::Connect`]; with several, the channel balances requests over all of them and
//!   connects lazily, so an unreachable endpoint surfaces as an `Unavailable` status.
//! - Every method takes `&self`, never retries, and maps gRPC errors to [`Error::Status`]
//!   unchanged; retry policy is the caller's.
//! - [`ConnectOptions::request_timeout`] bounds every unary RPC; streams are unbounded.

mod error;
mod kv;
mod lease;
#[cfg(feature = "test-util")]
pub mod test_util;
mod watch;

use std::time::Duration;

use oxcd_api::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient, watch_request,
    CompactionRequest, CompactionResponse, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, MemberListRequest, MemberListResponse, PutResponse, RangeResponse,
    StatusRequest, StatusResponse, TxnResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

pub use error::{Error, Result};
pub use kv::{prefix_end, Cmp, CmpOp, DeleteOptions, GetOptions, Op, PutOptions, SortOrder, Txn};
pub use lease::LeaseKeepAlive;
pub use oxcd_api::etcdserverpb as pb;
pub use oxcd_api::mvccpb::{event::EventType, Event, KeyValue};
pub use watch::{WatchOptions, WatchStream, Watcher};

/// Requests queued on a stream's send side before `send` waits.
const STREAM_BUFFER: usize = 64;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Time allowed to establish a TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Deadline of every unary RPC (`None` = no deadline).
    pub request_timeout: Option<Duration>,
    /// HTTP/2 keep-alive ping interval (`None` = off).
    pub keep_alive_interval: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            keep_alive_interval: None,
        }
    }
}

/// An etcd v3 client over one gRPC channel (see the crate docs for its invariants).
#[derive(Debug, Clone)]
pub struct Client {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
    cluster: ClusterClient<Channel>,
}

/// Turn `host:port` or `http://host:port` into a tonic endpoint.
fn endpoint(raw: &str, opts: &ConnectOptions) -> Result<Endpoint> {
    let uri = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let mut ep = Endpoint::from_shared(uri).map_err(|e| Error::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason: e.to_string(),
    })?;
    ep = ep.connect_timeout(opts.connect_timeout).tcp_nodelay(true);
    if let Some(t) = opts.request_timeout {
        ep = ep.timeout(t);
    }
    if let Some(k) = opts.keep_alive_interval {
        ep = ep.http2_keep_alive_interval(k).keep_alive_while_idle(true);
    }
    Ok(ep)
}

impl Client {
    /// Connect with default [`ConnectOptions`].
    pub async fn connect<I, S>(endpoints: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_with(endpoints, &ConnectOptions::default()).await
    }

    /// Connect to one or more endpoints (`http://host:port` or `host:port`).
    pub async fn connect_with<I, S>(endpoints: I, opts: &ConnectOptions) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let raw: Vec<String> = endpoints
            .into_iter()
            .flat_map(|s| {
                s.as_ref()
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        let eps = raw
            .iter()
            .map(|r| endpoint(r, opts))
            .collect::<Result<Vec<_>>>()?;
        let channel = match eps.as_slice() {
            [] => return Err(Error::NoEndpoints),
            [one] => one.connect().await.map_err(|source| Error::Connect {
                endpoint: raw[0].clone(),
                source,
            })?,
            _ => Channel::balance_list(eps.into_iter()),
        };
        Ok(Self::from_channel(channel))
    }

    /// Wrap an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Client {
            kv: KvClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel.clone()),
            cluster: ClusterClient::new(channel),
        }
    }

    /// The raw KV client (shares this client's channel).
    pub fn kv_client(&self) -> KvClient<Channel> {
        self.kv.clone()
    }

    /// The raw Watch client.
    pub fn watch_client(&self) -> WatchClient<Channel> {
        self.watch.clone()
    }

    /// The raw Lease client.
    pub fn lease_client(&self) -> LeaseClient<Channel> {
        self.lease.clone()
    }

    /// The raw Maintenance client.
    pub fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        self.maintenance.clone()
    }

    /// The raw Cluster client.
    pub fn cluster_client(&self) -> ClusterClient<Channel> {
        self.cluster.clone()
    }

    /// Read one key (linearizable); `None` if absent.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>> {
        let resp = self.range(key, &GetOptions::default()).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Read every key with the given prefix (linearizable, sorted by key).
    pub async fn get_prefix(&self, prefix: impl Into<Vec<u8>>) -> Result<Vec<KeyValue>> {
        Ok(self.range(prefix, &GetOptions::prefix()).await?.kvs)
    }

    /// A range read with options.
    pub async fn range(&self, key: impl Into<Vec<u8>>, opts: &GetOptions) -> Result<RangeResponse> {
        Ok(self
            .kv
            .clone()
            .range(opts.to_request(key))
            .await?
            .into_inner())
    }

    /// Write one key.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: &PutOptions,
    ) -> Result<PutResponse> {
        Ok(self
            .kv
            .clone()
            .put(opts.to_request(key, value))
            .await?
            .into_inner())
    }

    /// Delete a key, a range or a prefix.
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        opts: &DeleteOptions,
    ) -> Result<DeleteRangeResponse> {
        Ok(self
            .kv
            .clone()
            .delete_range(opts.to_request(key))
            .await?
            .into_inner())
    }

    /// Run a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        Ok(self.kv.clone().txn(txn.into_request()).await?.into_inner())
    }

    /// Compact the key history up to `revision`.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<CompactionResponse> {
        let req = CompactionRequest { revision, physical };
        Ok(self.kv.clone().compact(req).await?.into_inner())
    }

    /// The status of the member this channel reaches.
    pub async fn status(&self) -> Result<StatusResponse> {
        Ok(self
            .maintenance
            .clone()
            .status(StatusRequest {})
            .await?
            .into_inner())
    }

    /// The cluster's members.
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        let req = MemberListRequest {
            linearizable: false,
        };
        Ok(self.cluster.clone().member_list(req).await?.into_inner())
    }

    /// Grant a lease of `ttl` seconds (`id` 0 = let the server choose).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        let req = LeaseGrantRequest { ttl, id };
        Ok(self.lease.clone().lease_grant(req).await?.into_inner())
    }

    /// Revoke a lease (deleting its keys).
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        let req = LeaseRevokeRequest { id };
        Ok(self.lease.clone().lease_revoke(req).await?.into_inner())
    }

    /// A lease's remaining TTL (and its keys if `keys`).
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let req = LeaseTimeToLiveRequest { id, keys };
        Ok(self
            .lease
            .clone()
            .lease_time_to_live(req)
            .await?
            .into_inner())
    }

    /// Open a keep-alive stream for lease `id`; it refreshes the lease once on opening.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAlive> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tx.send(pb::LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Error::StreamClosed("lease keep-alive"))?;
        let stream = self
            .lease
            .clone()
            .lease_keep_alive(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let mut ka = LeaseKeepAlive { id, tx, rx: stream };
        ka.recv().await?;
        Ok(ka)
    }

    /// Open a watch stream with one watcher on `key`; returns once the server created it.
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        opts: &WatchOptions,
    ) -> Result<(Watcher, WatchStream)> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tx.send(opts.to_request(key))
            .await
            .map_err(|_| Error::StreamClosed("watch"))?;
        let inner = self
            .watch
            .clone()
            .watch(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let mut stream = WatchStream { inner };
        let first = stream
            .message()
            .await?
            .ok_or(Error::StreamClosed("watch"))?;
        if first.canceled || !first.created {
            return Err(Error::WatchCanceled(first.cancel_reason));
        }
        let watcher = Watcher {
            tx,
            watch_id: first.watch_id,
        };
        Ok((watcher, stream))
    }
}

/// Re-exported for callers building raw watch requests.
pub use watch_request::RequestUnion as WatchRequestUnion;
