//! Test harness: a real etcd 3.4 (Debian's /usr/bin/etcd, `OXCD_ETCD_BIN` overrides) supplies
//! the KV/Lease/Watch (and Auth) behaviour; our Lock/Election services get a `Routes` whose
//! entries forward every request to that etcd over a tonic Channel, and are served on a
//! loopback tonic server. The same scenarios then run against our services and against
//! etcd's own Lock/Election services.
//!
//! Invariants: loopback only, random ports, a temp data dir; the etcd process is killed by
//! PID on drop; every wait is bounded.

#![allow(dead_code)]

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oxcd_api::v3electionpb::election_server::ElectionServer;
use oxcd_api::v3lockpb::lock_server::LockServer;
use oxcd_testkit::flags::{local_url, MemberFlags};
use oxcd_testkit::free_port;
use oxcd_testkit::process::Proc;
use oxcd_testkit::status::probe_ready;
use oxcd_v3lock::{ElectionService, LockService};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Channel;

/// A single-member etcd on loopback.
pub struct Etcd {
    _dir: tempfile::TempDir,
    pub url: String,
    proc: Proc,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("oxcd-v3lock-")
            .tempdir()
            .expect("tempdir");
        let url = local_url(free_port());
        let peer = local_url(free_port());
        let flags = MemberFlags {
            name: "n1".into(),
            data_dir: dir.path().join("data"),
            client_url: url.clone(),
            listen_peer_url: peer.clone(),
            adv_peer_url: peer.clone(),
            initial_cluster: format!("n1={peer}"),
            token: None,
            state_existing: None,
            extra_args: vec![],
        };
        let bin = std::env::var_os("OXCD_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        let mut proc = Proc::new(dir.path().join("etcd.log"));
        proc.spawn(flags.command(&bin, dir.path()), "(etcd)")
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match probe_ready(&url) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!("etcd not ready: {e}\n{}", proc.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Etcd {
            _dir: dir,
            url,
            proc,
        }
    }

    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.url.clone())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .expect("connect to etcd")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.proc.kill9();
        if std::thread::panicking() {
            eprintln!("--- etcd log (tail) ---\n{}", self.proc.tail(5_000));
        }
    }
}

/// A gRPC service name the forwarder answers for.
pub trait Name: Clone + Send + Sync + 'static {
    const NAME: &'static str;
}
macro_rules! name {
    ($t:ident, $n:literal) => {
        #[derive(Clone)]
        pub struct $t;
        impl Name for $t {
            const NAME: &'static str = $n;
        }
    };
}
name!(Kv, "etcdserverpb.KV");
name!(Lease, "etcdserverpb.Lease");
name!(Watch, "etcdserverpb.Watch");
name!(Auth, "etcdserverpb.Auth");

/// Forwards every HTTP/2 request of one gRPC service to etcd unchanged.
#[derive(Clone)]
pub struct Forward<N> {
    ch: Channel,
    _n: PhantomData<N>,
}

impl<N: Name> NamedService for Forward<N> {
    const NAME: &'static str = N::NAME;
}

impl<N: Name> Service<http::Request<Body>> for Forward<N> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let mut ch = self.ch.clone();
        Box::pin(async move {
            let ready = futures::future::poll_fn(|cx| ch.poll_ready(cx)).await;
            let resp = match ready {
                Ok(()) => ch.call(req).await,
                Err(e) => Err(e),
            };
            Ok(resp.unwrap_or_else(|e| tonic::Status::unavailable(e.to_string()).into_http()))
        })
    }
}

fn forward<N: Name>(ch: &Channel) -> Forward<N> {
    Forward {
        ch: ch.clone(),
        _n: PhantomData,
    }
}

/// KV, Lease and Watch of `etcd`, as the server's Routes would hold them.
pub fn backend_routes(ch: &Channel) -> Routes {
    let mut b = Routes::builder();
    b.add_service(forward::<Kv>(ch))
        .add_service(forward::<Lease>(ch))
        .add_service(forward::<Watch>(ch));
    b.routes()
}

/// Our Lock/Election services (plus forwarded KV/Lease/Watch/Auth, so a client can also
/// authenticate and read through this endpoint) served on a loopback port.
pub struct Ours {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_ours(etcd: &Etcd) -> Ours {
    let ch = etcd.channel().await;
    let backend = backend_routes(&ch);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let router = tonic::transport::Server::builder()
        .add_service(LockServer::new(LockService::new(backend.clone())))
        .add_service(ElectionServer::new(ElectionService::new(backend)))
        .add_service(forward::<Kv>(&ch))
        .add_service(forward::<Lease>(&ch))
        .add_service(forward::<Watch>(&ch))
        .add_service(forward::<Auth>(&ch));
    let task = tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    });
    Ours {
        url: format!("http://{addr}"),
        task,
    }
}

/// An etcd-client connected to `url` (bounded timeouts).
pub async fn client(url: &str) -> etcd_client::Client {
    client_opts(url, etcd_client::ConnectOptions::new()).await
}

pub async fn client_opts(url: &str, opts: etcd_client::ConnectOptions) -> etcd_client::Client {
    client_raw(url, opts.with_timeout(Duration::from_secs(20))).await
}

/// An etcd-client without a per-request timeout (for streams that may wait long for their
/// first message: etcd sends an Observe's response headers only with its first message).
pub async fn client_raw(url: &str, opts: etcd_client::ConnectOptions) -> etcd_client::Client {
    let opts = opts.with_connect_timeout(Duration::from_secs(3));
    etcd_client::Client::connect([url], Some(opts))
        .await
        .expect("etcd-client connect")
}

/// The gRPC status of an etcd-client error.
pub fn status(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Polls `f` every 100 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    for _ in 0..10_000 {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The value of a Prometheus gauge/counter on etcd's `/metrics` (plain HTTP/1.0 GET).
pub async fn metric(etcd: &Etcd, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = etcd.url.trim_start_matches("http://").to_string();
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .expect("read in time")
        .expect("read");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

/// Whether `key` exists (read straight from etcd).
pub async fn key_exists(etcd: &Etcd, key: &str) -> bool {
    let mut c = client(&etcd.url).await;
    !c.get(key, None).await.expect("get").kvs().is_empty()
}

/// Runs `op` on a task until its key `key` exists (it is then waiting behind the holder),
/// asserts it is still waiting, and abandons it: the task is aborted, which drops the
/// client call mid-flight as a client that goes away does.
/// With `watchers_while_waiting`, also waits until etcd has at least that many watchers.
pub async fn abandon_once_waiting<T: Send + 'static>(
    etcd: &Etcd,
    key: &str,
    watchers_while_waiting: Option<f64>,
    op: impl std::future::Future<Output = T> + Send + 'static,
) {
    let task = tokio::spawn(op);
    assert!(
        eventually(Duration::from_secs(10), || key_exists(etcd, key)).await,
        "the waiter's key {key} appears"
    );
    if let Some(n) = watchers_while_waiting {
        assert!(
            eventually(Duration::from_secs(10), || async {
                watchers(etcd).await >= n
            })
            .await,
            "the waiter watches"
        );
    }
    // Give it time to reach its wait; it must not get through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "the waiter must still be waiting");
    task.abort();
    let _ = task.await;
}

/// etcd's count of open watchers.
pub async fn watchers(etcd: &Etcd) -> f64 {
    metric(etcd, "etcd_debugging_mvcc_watcher_total").await
}

/// The watcher count once the watches of earlier scenarios' gone clients are cancelled
/// (that happens asynchronously): the same value three reads in a row.
pub async fn settled_watchers(etcd: &Etcd) -> f64 {
    let mut last = (watchers(etcd).await, 0);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = watchers(etcd).await;
        last = if now == last.0 {
            (now, last.1 + 1)
        } else {
            (now, 0)
        };
        if last.1 >= 2 {
            break;
        }
    }
    last.0
}
