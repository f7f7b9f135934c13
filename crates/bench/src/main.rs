//! `oxcd-bench`: etcd's benchmark workloads (put, range, txn-mixed, watch, watch-latency,
//! lease-keepalive, stm) against any etcd v3 gRPC endpoint, plus two helpers for
//! `bench/compare.sh`: `fsync-probe` (disk fdatasync latency) and `table` (side-by-side
//! comparison of recorded results).
//!
//! Invariants:
//! - Every workload is bounded by `--total` ops and by `--timeout` seconds (which covers
//!   connecting, preloading and measuring), so the process always ends by itself.
//! - `--conns` gRPC connections are opened; `--clients` concurrent workers share them
//!   round-robin (worker `w` uses connection `w % conns`), each with one request in flight.
//! - Output is one report, as text or (`--json`) as one JSON object on stdout; diagnostics go
//!   to stderr. The exit status is non-zero only when the run could not start (bad options,
//!   no connection); failed ops are reported, not fatal.

mod fsync;
mod keys;
mod report;
mod runner;
mod table;
mod workloads;

use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use oxcd_client::{Client, ConnectOptions};
use serde::Serialize;

use crate::report::Report;

/// etcd v3 benchmark workloads.
#[derive(Debug, Parser, Serialize)]
#[command(name = "oxcd-bench", version, about)]
pub struct Cli {
    /// Comma-separated client endpoints.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Number of concurrent workers (requests in flight).
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Total number of measured ops.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Upper bound on the whole run in seconds.
    #[arg(long, global = true, default_value_t = 120.0)]
    pub timeout: f64,
    /// Maximum ops per second over all workers (0 = unlimited).
    #[arg(long, global = true, default_value_t = 0.0)]
    pub rate: f64,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// `NAME:PASSWORD`: authenticate and send the token with every request (auth on).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// PEM CA that verifies the server: connect over TLS.
    #[arg(long, global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// The workload.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Workloads and helpers.
#[derive(Debug, Subcommand, Serialize)]
pub enum Cmd {
    /// Puts (optionally each in a txn).
    Put(PutArgs),
    /// Range reads of one key or of N consecutive keys, over preloaded keys.
    Range(RangeArgs),
    /// Txns that read or write one key, mixed by --rw-ratio.
    TxnMixed(TxnMixedArgs),
    /// N watchers on a prefix, then --total puts as fast as allowed: put→event latency, events/s.
    Watch(WatchArgs),
    /// Like `watch` with paced puts (--put-rate), for latency without queueing.
    WatchLatency(WatchArgs),
    /// Lease keep-alives: one lease and one keep-alive stream per worker.
    LeaseKeepalive,
    /// Conflicting read-modify-write txns over a small key set, with retries.
    Stm(StmArgs),
    /// Exit 0 once every endpoint answers Status and knows a leader (for scripts).
    Health,
    /// Time write+fdatasync of small blocks in a directory (disk baseline).
    FsyncProbe(fsync::FsyncArgs),
    /// Print a comparison table from JSON lines recorded by bench/compare.sh.
    Table(table::TableArgs),
}

/// Key and value shape shared by the KV workloads.
#[derive(Debug, Clone, Args, Serialize)]
pub struct KeyArgs {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    pub key_space_size: u64,
    /// Walk the key space in order instead of picking keys at random.
    #[arg(long)]
    pub sequential_keys: bool,
}

/// `put` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct PutArgs {
    /// Key shape.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Wrap each put in a txn.
    #[arg(long)]
    pub txn: bool,
}

/// Read consistency.
#[derive(Debug, Clone, Copy, ValueEnum, Serialize, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// `range` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RangeArgs {
    /// Key shape (the whole key space is preloaded).
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Linearizable (l) or serializable (s) reads.
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Read N consecutive keys per request (0 = one key).
    #[arg(long, default_value_t = 0)]
    pub prefix_keys: u64,
    /// Skip preloading the key space.
    #[arg(long)]
    pub no_preload: bool,
}

/// `txn-mixed` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TxnMixedArgs {
    /// Key shape (the whole key space is preloaded).
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Reads per write.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
    /// Linearizable (l) or serializable (s) reads.
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Skip preloading the key space.
    #[arg(long)]
    pub no_preload: bool,
}

/// `watch` / `watch-latency` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WatchArgs {
    /// Key shape of the puts (keys live under /bench-watch/).
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Number of watchers, all on the same prefix.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Number of watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Puts per second (0 = unlimited); `watch-latency` defaults to 100.
    #[arg(long)]
    pub put_rate: Option<f64>,
}

/// `stm` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct StmArgs {
    /// Number of keys in the contended set.
    #[arg(long, default_value_t = 8)]
    pub keys: u64,
    /// Keys read and written per txn.
    #[arg(long, default_value_t = 2)]
    pub keys_per_txn: u64,
}

/// What every workload needs: connections, worker count, op budget and deadline.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// One client per `--conns` connection.
    pub conns: Vec<Client>,
    /// Number of concurrent workers.
    pub workers: usize,
    /// Ops to measure.
    pub total: u64,
    /// Ops per second (0 = unlimited).
    pub rate: f64,
    /// When everything must stop.
    pub deadline: Instant,
}

impl Ctx {
    /// The client of worker `w`.
    pub fn client(&self, w: usize) -> Client {
        self.conns[w % self.conns.len()].clone()
    }
}

/// The connection options the flags ask for (`--user`, `--cacert`).
fn connect_options(cli: &Cli) -> Result<ConnectOptions, String> {
    let mut opts = ConnectOptions::default();
    if let Some(u) = &cli.user {
        let (name, password) = u
            .split_once(':')
            .ok_or_else(|| "--user takes NAME:PASSWORD".to_string())?;
        opts.user = Some((name.to_string(), password.to_string()));
    }
    if let Some(ca) = &cli.cacert {
        opts.tls = Some(oxcd_client::TlsOptions {
            ca_file: Some(ca.clone()),
            ..Default::default()
        });
    }
    Ok(opts)
}

async fn connect(cli: &Cli, deadline: Instant) -> Result<Vec<Client>, String> {
    let opts = connect_options(cli)?;
    let mut conns = Vec::with_capacity(cli.conns.max(1));
    for _ in 0..cli.conns.max(1) {
        let left = deadline.saturating_duration_since(Instant::now());
        let c = tokio::time::timeout(left, Client::connect_with(&cli.endpoints, &opts))
            .await
            .map_err(|_| "timed out connecting".to_string())?
            .map_err(|e| e.to_string())?;
        conns.push(c);
    }
    Ok(conns)
}

/// Check that every endpoint serves `Status` and reports a leader, before `deadline`.
async fn health(cli: &Cli, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut opts = connect_options(cli)?;
    // Status needs no identity; auth may not be set up yet.
    opts.user = None;
    let check = async {
        for ep in &cli.endpoints {
            let c = Client::connect_with([ep], &opts)
                .await
                .map_err(|e| e.to_string())?;
            let st = c.status().await.map_err(|e| format!("{ep}: {e}"))?;
            if st.leader == 0 {
                return Err(format!("{ep}: no leader yet"));
            }
        }
        Ok(())
    };
    tokio::time::timeout(left, check)
        .await
        .map_err(|_| "health check timed out".to_string())?
}

async fn run(cli: Cli) -> Result<Option<Report>, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(cli.timeout.max(0.001));
    match &cli.cmd {
        Cmd::FsyncProbe(a) => return fsync::probe(a).map(Some).map_err(|e| e.to_string()),
        Cmd::Table(a) => return table::print(a).map(|()| None),
        Cmd::Health => return health(&cli, deadline).await.map(|()| None),
        _ => {}
    }
    let ctx = Ctx {
        conns: connect(&cli, deadline).await?,
        workers: cli.clients.max(1),
        total: cli.total,
        rate: cli.rate,
        deadline,
    };
    let mut report = match &cli.cmd {
        Cmd::Put(a) => workloads::kv::put(&ctx, a).await,
        Cmd::Range(a) => workloads::kv::range(&ctx, a).await,
        Cmd::TxnMixed(a) => workloads::kv::txn_mixed(&ctx, a).await,
        Cmd::Watch(a) => {
            workloads::watch::watch(&ctx, a, "watch", a.put_rate.unwrap_or(cli.rate)).await
        }
        Cmd::WatchLatency(a) => {
            workloads::watch::watch(&ctx, a, "watch-latency", a.put_rate.unwrap_or(100.0)).await
        }
        Cmd::LeaseKeepalive => workloads::lease::keepalive(&ctx).await,
        Cmd::Stm(a) => workloads::stm::stm(&ctx, a).await,
        Cmd::FsyncProbe(_) | Cmd::Table(_) | Cmd::Health => return Ok(None),
    }?;
    report.timed_out |= Instant::now() >= deadline;
    report.params = serde_json::to_value(&cli).unwrap_or_default();
    Ok(Some(report))
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(Some(r)) if json => println!("{}", r.to_json()),
        Ok(Some(r)) => print!("{}", r.to_text()),
        Ok(None) => {}
        Err(e) => {
            eprintln!("oxcd-bench: {e}");
            std::process::exit(1);
        }
    }
    // Streams and workers still parked on a dead server must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(200));
}
