//! The `oxcd` binary: parses etcd's flags, starts the member, serves etcd's gRPC API on
//! every `--listen-client-urls` address, and shuts down gracefully on SIGTERM/SIGINT
//! (stop accepting, finish in-flight requests, stop Raft, apply what was committed, flush
//! the backend).

mod config;
mod error;
mod logging;
mod tls;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use oxcd_etcdserver::{Node, NodeConfig};

/// mimalloc: the request path allocates many small buffers; glibc malloc spent ~15% of the
/// CPU of a put benchmark in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::error::{Error, Result};

fn main() -> ExitCode {
    // A panic on any thread stops the process, as in etcd: a half-dead member (say, a Raft
    // thread gone while listeners stay up) must not keep its ports.
    // The default hook's backtrace (RUST_BACKTRACE) can take seconds to symbolize on a
    // loaded machine, so a watchdog ends the process even if printing it stalls.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::thread::Builder::new()
            .name("panic-exit".into())
            .spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(1));
                std::process::exit(2);
            });
        default_hook(info);
        std::process::exit(2);
    }));
    // Reads FAILPOINTS (e.g. `walBeforeSync=panic`) when built with the `failpoints` feature.
    let _failpoints = fail::FailScenario::setup();
    let cfg = match config::Config::parse() {
        Ok(cfg) => cfg,
        Err(e) if e.exit_code() == 0 => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("oxcd: {e}");
            return ExitCode::from(e.exit_code().clamp(1, 255) as u8);
        }
    };
    logging::init(cfg.log_level.as_str(), true, &cfg.log_outputs);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("oxcd-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oxcd: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "oxcd stopped with an error");
            eprintln!("oxcd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::Config) -> Result<()> {
    if is_new_data_dir(&cfg) {
        // etcd checks the initial-cluster flags only when it bootstraps.
        cfg.verify_bootstrap()
            .map_err(|e| Error::Config(e.to_string()))?;
    }
    let tls = tls::Tls::load(&cfg)?;
    let mut node_cfg = node_config(&cfg);
    node_cfg.peer_tls = tls.peer_connector()?;
    node_cfg.client_tls = tls.client_connector()?;
    let mut listeners = Vec::new();
    for u in &cfg.listen_client_urls {
        let addr = bind_addr(u)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("listen on {}: {e}", config::format_url(u))))?;
        listeners.push((addr, l, tls.client_acceptor(u)));
    }
    let mut http_listeners = Vec::new();
    for u in &cfg.listen_client_http_urls {
        let addr = bind_addr(u)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("listen on {}: {e}", config::format_url(u))))?;
        http_listeners.push((addr, l, tls.client_acceptor(u)));
    }
    let mut metrics_listeners = Vec::new();
    for u in &cfg.listen_metrics_urls {
        let addr = bind_addr(u)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("listen on {}: {e}", config::format_url(u))))?;
        metrics_listeners.push((addr, l, tls.client_acceptor(u)));
    }
    let mut peer_listeners = Vec::new();
    for u in &cfg.listen_peer_urls {
        let addr = bind_addr(u)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("listen on {}: {e}", config::format_url(u))))?;
        peer_listeners.push((addr, l, tls.peer_acceptor(u)));
    }
    let node = tokio::task::spawn_blocking(move || Node::start(node_cfg))
        .await
        .map_err(|e| Error::Config(format!("start-up task failed: {e}")))??;
    let published = {
        let server = node.server.clone();
        let name = cfg.name.clone();
        let (published_tx, published_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            server.publish_attributes(name).await;
            // etcd logs this once the member knows the cluster version; tools (etcd's own e2e
            // suite) wait for it and for "published" before using a member. oxcd's cluster
            // version is fixed, so it is known once this member's view is current.
            tracing::info!(
                "cluster-version" = oxcd_api::ETCD_CLUSTER_VERSION
                    .rsplit_once('.')
                    .map_or(oxcd_api::ETCD_CLUSTER_VERSION, |(major_minor, _)| {
                        major_minor
                    }),
                "enabled capabilities for version"
            );
            let _ = published_tx.send(());
        });
        published_rx
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut peer_servers = Vec::new();
    for (addr, l, acceptor) in peer_listeners {
        tracing::info!(address = %addr, tls = acceptor.is_some(), "serving peer traffic");
        let mut rx = stop_rx.clone();
        let svc = oxcd_api::oxcdpb::raft_peer_server::RaftPeerServer::new(
            oxcd_etcdserver::PeerService::new(node.server.clone()),
        )
        .max_decoding_message_size(usize::MAX);
        let router = tonic::transport::Server::builder().add_service(svc);
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        peer_servers.push(match acceptor {
            Some(a) => {
                tokio::spawn(router.serve_with_incoming_shutdown(oxcd_tls::incoming(l, a), stop))
            }
            None => tokio::spawn(router.serve_with_incoming_shutdown(incoming(l), stop)),
        });
    }
    oxcd_v3rpc::set_progress_report_interval(cfg.watch_progress_notify_interval);
    oxcd_v3rpc::metrics::set_extensive(cfg.metrics == config::Metrics::Extensive);
    // Peers first: a leader can only be elected once members hear each other.
    // etcd serves clients once its member attributes are published: that entry is applied
    // after everything committed before the restart, so no read goes back in time. Without a
    // quorum, serve anyway after a while (etcd's wait-cluster-ready timeout).
    if tokio::time::timeout(Duration::from_secs(5), published)
        .await
        .is_ok()
    {
        tracing::info!("ready to serve client requests");
    } else {
        tracing::warn!("not yet published to the cluster (no quorum?); serving anyway");
    }

    if cfg.initial_corrupt_check {
        node.server
            .initial_corrupt_check()
            .await
            .map_err(|e| Error::Config(format!("checkInitialHashKV: {e}")))?;
    }
    if !cfg.corrupt_check_time.is_zero() {
        node.server.spawn_corrupt_checker(cfg.corrupt_check_time);
    }

    let routes = oxcd_v3rpc::routes(node.server.clone());
    let http_cfg = oxcd_http::HttpConfig {
        server_version: oxcd_api::ETCD_API_VERSION.into(),
        cluster_version: oxcd_api::ETCD_CLUSTER_VERSION.into(),
        // The gateway's body carries the request as JSON with base64 bytes.
        max_request_bytes: cfg.max_request_bytes * 4 / 3 + 64 * 1024,
        health_timeout: Duration::from_secs(2),
        max_concurrent_streams: Some(cfg.max_concurrent_streams),
        enable_ui: cfg.enable_ui,
    };
    let serve_cfg = oxcd_http::ServeConfig {
        max_concurrent_streams: Some(cfg.max_concurrent_streams),
        ..Default::default()
    };
    let (client_stop_tx, client_stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = Vec::new();
    // Without --listen-client-http-urls the client URLs serve gRPC and HTTP on one port
    // (etcd's cmux); with it, they serve gRPC only.
    let client_http = cfg.listen_client_http_urls.is_empty();
    for (addr, l, acceptor) in listeners {
        tracing::info!(address = %addr, tls = acceptor.is_some(), "serving client traffic");
        let http = if client_http {
            oxcd_http::router(routes.clone(), http_cfg.clone())
        } else {
            axum::Router::new()
        };
        let stop = stopped(client_stop_rx.clone());
        let serve_cfg = serve_cfg.clone();
        servers.push(match acceptor {
            Some(a) => tokio::spawn(oxcd_http::serve(
                tls::client_incoming_tls(l, a),
                routes.clone(),
                http,
                serve_cfg,
                stop,
            )),
            None => tokio::spawn(oxcd_http::serve(
                client_incoming(l),
                routes.clone(),
                http,
                serve_cfg,
                stop,
            )),
        });
    }
    let http_only = http_listeners
        .into_iter()
        .map(|(a, l, t)| (a, l, t, oxcd_http::router(routes.clone(), http_cfg.clone())))
        .chain(metrics_listeners.into_iter().map(|(a, l, t)| {
            let r = oxcd_http::metrics_router(routes.clone(), http_cfg.clone());
            (a, l, t, r)
        }));
    for (addr, l, acceptor, router) in http_only {
        tracing::info!(address = %addr, tls = acceptor.is_some(), "serving client HTTP traffic");
        let stop = stopped(client_stop_rx.clone());
        let serve_cfg = oxcd_http::ServeConfig::default();
        servers.push(match acceptor {
            Some(a) => tokio::spawn(oxcd_http::serve_http(
                oxcd_tls::incoming(l, a),
                router,
                serve_cfg,
                stop,
            )),
            None => tokio::spawn(oxcd_http::serve_http(incoming(l), router, serve_cfg, stop)),
        });
    }

    shutdown_signal().await;
    tracing::info!("received shutdown signal; stopping gracefully");
    // 1. Stop accepting clients; in-flight requests get a bounded time to finish (watch and
    //    keep-alive streams never finish on their own).
    let _ = client_stop_tx.send(true);
    node.server.leases().stop();
    // 2. A leader hands over first, so the cluster does not wait an election timeout.
    node.server.transfer_leadership_on_stop().await;
    // Each listener drains its connections within ServeConfig's grace period, then ends.
    for s in &mut servers {
        match s.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "client listener ended with an error"),
            Err(e) => tracing::warn!(error = %e, "client listener failed"),
            _ => {}
        }
    }
    // 3. Stop Raft, apply what is committed, flush the backend; then the peer listeners.
    tokio::task::spawn_blocking(move || node.stop())
        .await
        .map_err(|e| Error::Config(format!("shutdown task failed: {e}")))?;
    let _ = stop_tx.send(true);
    peer_servers.iter().for_each(|s| s.abort());
    tracing::info!("stopped");
    Ok(())
}

fn node_config(cfg: &config::Config) -> NodeConfig {
    NodeConfig {
        name: cfg.name.clone(),
        data_dir: cfg.data_dir.clone(),
        initial_cluster: cfg
            .initial_cluster_members()
            .into_iter()
            .map(|(n, urls)| (n, urls.iter().map(config::format_url).collect()))
            .collect(),
        initial_cluster_token: cfg.initial_cluster_token.clone(),
        initial_cluster_state_new: cfg.initial_cluster_state == config::ClusterState::New,
        advertise_peer_urls: cfg
            .initial_advertise_peer_urls
            .iter()
            .map(config::format_url)
            .collect(),
        pre_vote: cfg.pre_vote,
        strict_reconfig_check: cfg.strict_reconfig_check,
        force_new_cluster: cfg.force_new_cluster,
        advertise_client_urls: cfg
            .advertise_client_urls
            .iter()
            .map(config::format_url)
            .collect(),
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        snapshot_count: cfg.snapshot_count,
        snapshot_catchup_entries: cfg.snapshot_catchup_entries,
        heartbeat: cfg.heartbeat_interval,
        election_ticks: cfg.election_ticks(),
        election_timeout: cfg.election_timeout,
        enable_lease_checkpoint: cfg.enable_lease_checkpoint,
        quota_backend_bytes: cfg.quota_backend_bytes,
        auto_compaction: cfg.auto_compaction.map(|a| match a {
            config::AutoCompaction::Periodic(p) => oxcd_etcdserver::AutoCompaction::Periodic(p),
            config::AutoCompaction::Revision(retention) => {
                oxcd_etcdserver::AutoCompaction::Revision {
                    retention,
                    interval: revision_check_interval(),
                }
            }
        }),
        raft_logger: logging::raft_logger(),
        peer_tls: None,
        client_tls: None,
        auth: oxcd_etcdserver::AuthConfig {
            // Parsed and checked by the config already.
            token: cfg
                .auth_token
                .parse()
                .unwrap_or(oxcd_etcdserver::TokenOptions::Simple),
            token_ttl: cfg.auth_token_ttl,
            bcrypt_cost: cfg.bcrypt_cost,
        },
    }
}

/// Client connections: as [`incoming`], through [`oxcd_v3rpc::FixAuthority`] so etcdctl
/// 3.4's scheme-prefixed `:authority` is accepted.
fn client_incoming(
    l: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<oxcd_v3rpc::FixAuthority>> {
    use futures::StreamExt;
    incoming(l).map(|r| r.map(oxcd_v3rpc::FixAuthority::new))
}

/// Accepted connections with Nagle's algorithm off (the builder's `tcp_nodelay` does not
/// apply to a listener we bound ourselves; without this, small replies wait ~40 ms for
/// delayed ACKs).
fn incoming(l: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true))
}

/// Whether the data dir holds no Raft log yet (the member will bootstrap).
fn is_new_data_dir(cfg: &config::Config) -> bool {
    std::fs::read_dir(cfg.data_dir.join("member").join("wal"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// The socket address for a listen URL; `localhost` binds the IPv4 loopback, as etcd does.
fn bind_addr(u: &url::Url) -> Result<SocketAddr> {
    let host = u
        .host_str()
        .ok_or_else(|| Error::Config(format!("listen URL {u} has no host")))?;
    let port = u
        .port_or_known_default()
        .ok_or_else(|| Error::Config(format!("listen URL {u} has no port")))?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        Error::Config(format!(
            "listen URL {u}: host must be an IP address or localhost"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// etcd's revision-mode auto-compaction check interval (5 minutes);
/// `OXCD_AUTO_COMPACTION_CHECK_INTERVAL_MS` shortens it for tests.
fn revision_check_interval() -> std::time::Duration {
    std::env::var("OXCD_AUTO_COMPACTION_CHECK_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(oxcd_etcdserver::REVISION_CHECK_INTERVAL)
}
