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
//! Services: KV, Watch, Lease (+ [`LeaseKeepAlive`]), Cluster, Maintenance, Auth, Lock and
//! Election as methods of [`Client`]; [`concurrency`] has clientv3's recipes (Session, Mutex,
//! Election, STM) and [`cache`] a watched, typed, in-memory copy of a prefix.
//!
//! Invariants:
//! - A [`Client`] owns one gRPC channel per endpoint; cloning it shares them (HTTP/2
//!   multiplexes concurrent requests). Open several clients to get several connections.
//! - With one endpoint, [`Client::connect`] connects eagerly and fails with
//!   [`Error::Connect`] naming it; with several, channels connect lazily and requests go to
//!   one current endpoint, failing over to the next on `Unavailable` (see [`RetryPolicy`]).
//! - gRPC errors reach the caller as [`Error::Status`] with etcd's code and message
//!   unchanged, after the retries [`ConnectOptions::retry`] allows (reads are retried on
//!   `Unavailable`; writes only when they never reached a server).
//! - With [`ConnectOptions::user`], the client authenticates on connect and again whenever
//!   the server answers `invalid auth token`.
//! - [`ConnectOptions::request_timeout`] bounds every unary RPC; streams are unbounded.

pub mod cache;
mod cluster;
pub mod concurrency;
mod error;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod security;
#[cfg(feature = "test-util")]
pub mod test_util;
mod tls;
mod transport;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
    watch_request, CompactionRequest, CompactionResponse, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutResponse,
    RangeResponse, TxnResponse,
};
use oxcd_api::v3electionpb::election_client::ElectionClient;
use oxcd_api::v3lockpb::lock_client::LockClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub use error::{Error, Result};
pub use kv::{prefix_end, Cmp, CmpOp, DeleteOptions, GetOptions, Op, PutOptions, SortOrder, Txn};
pub use lease::LeaseKeepAlive;
pub use lock::ObserveStream;
pub use oxcd_api::etcdserverpb as pb;
pub use oxcd_api::mvccpb::{event::EventType, Event, KeyValue};
pub use oxcd_api::{authpb, v3electionpb, v3lockpb};
pub use security::PermissionType;
pub use tls::TlsOptions;
pub use transport::{AuthChannel, RetryPolicy, TokenInterceptor};
pub use watch::{WatchOptions, WatchStream, Watcher};

use transport::{Safety, Transport};

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
    /// When unary RPCs are retried (on `Unavailable`, on the next endpoint).
    pub retry: RetryPolicy,
    /// User name and password: authenticate and send the token with every request.
    pub user: Option<(String, String)>,
    /// TLS (`https://` endpoints, or any endpoint without a scheme when set).
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            keep_alive_interval: None,
            retry: RetryPolicy::default(),
            user: None,
            tls: None,
        }
    }
}

/// An etcd v3 client (see the crate docs for its invariants).
#[derive(Debug, Clone)]
pub struct Client {
    t: Arc<Transport>,
}

macro_rules! raw_client {
    ($(#[$doc:meta])* $name:ident, $ty:ident) => {
        $(#[$doc])*
        pub fn $name(&self) -> $ty<AuthChannel> {
            $ty::new(self.t.pick().1)
        }
    };
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

    /// Connect to one or more endpoints (`http://host:port`, `https://host:port` or
    /// `host:port`; a string may hold a comma-separated list).
    pub async fn connect_with<I, S>(endpoints: I, opts: &ConnectOptions) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let raw = transport::split_endpoints(endpoints);
        Ok(Client {
            t: Arc::new(Transport::connect(raw, opts).await?),
        })
    }

    /// Wrap an existing channel (no retries, no credentials).
    pub fn from_channel(channel: Channel) -> Self {
        Client {
            t: Arc::new(Transport::from_channel(channel)),
        }
    }

    /// The endpoints this client was given.
    pub fn endpoints(&self) -> &[String] {
        &self.t.endpoints
    }

    /// The endpoint requests currently go to (it changes on failover).
    pub fn current_endpoint(&self) -> &str {
        self.t.current_endpoint()
    }

    /// Authenticate again now (normally automatic; a no-op without credentials).
    pub async fn refresh_token(&self) -> Result<()> {
        self.t.authenticate().await
    }

    raw_client!(
        /// The raw KV client (current endpoint, with the auth token).
        kv_client, KvClient
    );
    raw_client!(
        /// The raw Watch client.
        watch_client, WatchClient
    );
    raw_client!(
        /// The raw Lease client.
        lease_client, LeaseClient
    );
    raw_client!(
        /// The raw Maintenance client.
        maintenance_client, MaintenanceClient
    );
    raw_client!(
        /// The raw Cluster client.
        cluster_client, ClusterClient
    );
    raw_client!(
        /// The raw Auth client.
        auth_client, AuthClient
    );
    raw_client!(
        /// The raw Lock client.
        lock_client, LockClient
    );
    raw_client!(
        /// The raw Election client.
        election_client, ElectionClient
    );

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
        self.range_raw(opts.to_request(key)).await
    }

    /// A range read from a wire request (e.g. with sort targets or revision bounds).
    pub async fn range_raw(&self, req: pb::RangeRequest) -> Result<RangeResponse> {
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                KvClient::new(ch).range(r).await
            })
            .await
    }

    /// Write one key.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: &PutOptions,
    ) -> Result<PutResponse> {
        let req = opts.to_request(key, value);
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                KvClient::new(ch).put(r).await
            })
            .await
    }

    /// Delete a key, a range or a prefix.
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        opts: &DeleteOptions,
    ) -> Result<DeleteRangeResponse> {
        let req = opts.to_request(key);
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                KvClient::new(ch).delete_range(r).await
            })
            .await
    }

    /// Run a transaction (retried on `Unavailable` only if it has no writes).
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.txn_raw(txn.into_request()).await
    }

    /// Run a transaction from a wire request.
    pub async fn txn_raw(&self, req: pb::TxnRequest) -> Result<TxnResponse> {
        let safety = if kv::txn_is_read_only(&req) {
            Safety::Idempotent
        } else {
            Safety::Mutating
        };
        self.t
            .unary(safety, req, |ch, r| async move {
                KvClient::new(ch).txn(r).await
            })
            .await
    }

    /// Compact the key history up to `revision`.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<CompactionResponse> {
        let req = CompactionRequest { revision, physical };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                KvClient::new(ch).compact(r).await
            })
            .await
    }

    /// Grant a lease of `ttl` seconds (`id` 0 = let the server choose).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        let req = LeaseGrantRequest { ttl, id };
        self.t
            .unary(Safety::Mutating, req, |ch, r| async move {
                LeaseClient::new(ch).lease_grant(r).await
            })
            .await
    }

    /// Revoke a lease (deleting its keys).
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        let req = LeaseRevokeRequest { id };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                LeaseClient::new(ch).lease_revoke(r).await
            })
            .await
    }

    /// A lease's remaining TTL (and its keys if `keys`).
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let req = LeaseTimeToLiveRequest { id, keys };
        self.t
            .unary(Safety::Idempotent, req, |ch, r| async move {
                LeaseClient::new(ch).lease_time_to_live(r).await
            })
            .await
    }

    /// Every lease the cluster knows.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.t
            .unary(
                Safety::Idempotent,
                LeaseLeasesRequest {},
                |ch, r| async move { LeaseClient::new(ch).lease_leases(r).await },
            )
            .await
    }

    /// Open a keep-alive stream for lease `id`; it refreshes the lease once on opening.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAlive> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tx.send(pb::LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Error::StreamClosed("lease keep-alive"))?;
        let (i, ch) = self.t.pick();
        let stream = match LeaseClient::new(ch)
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) => {
                self.fail_over_on(i, &s);
                return Err(s.into());
            }
        };
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
        let (i, ch) = self.t.pick();
        let inner = match WatchClient::new(ch).watch(ReceiverStream::new(rx)).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                self.fail_over_on(i, &s);
                return Err(s.into());
            }
        };
        let mut stream = WatchStream { inner };
        let first = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(Error::StreamClosed("watch")),
            Err(e) => {
                if let Error::Status(s) = &e {
                    self.fail_over_on(i, s);
                }
                return Err(e);
            }
        };
        if first.canceled || !first.created {
            return Err(Error::WatchCanceled(first.cancel_reason));
        }
        let watcher = Watcher {
            tx,
            watch_id: first.watch_id,
        };
        Ok((watcher, stream))
    }

    /// Let the next stream go to another endpoint when endpoint `i` is unavailable.
    pub(crate) fn fail_over_on(&self, i: usize, s: &tonic::Status) {
        if s.code() == tonic::Code::Unavailable {
            self.t.fail_over(i);
        }
    }

    /// Move on to the next endpoint (e.g. after a stream opened on the current one broke).
    pub fn fail_over(&self) {
        let (i, _) = self.t.pick();
        self.t.fail_over(i);
    }
}

/// Re-exported for callers building raw watch requests.
pub use watch_request::RequestUnion as WatchRequestUnion;
