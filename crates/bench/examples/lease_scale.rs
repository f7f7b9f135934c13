//! Lease scale benchmark against one etcd v3 endpoint, in two phases:
//!
//! 1. `live`: grants `--leases` leases (TTL `--live-ttl`), puts one key on each, then keeps
//!    them all alive over `--streams` keep-alive streams for `--keepalive-secs`, each
//!    stream cycling through its share with up to `--window` requests in flight. Reports
//!    the server's RSS before and after (with every lease live), grant and put rates and the
//!    keep-alive throughput; every answer must carry a positive TTL.
//! 2. `expiry`: grants `--expire` leases with TTL `--expire-ttl`, one key each under
//!    `exp/`, then lets them all expire while one client puts in a loop. Reports how long
//!    after the last lease's expiry the last key disappeared, the whole expiry span, and
//!    put latency (p50/p99/max) before and during the mass expiry.
//!
//! Prints one JSON object.
//!
//! ```text
//! cargo run --release -p oxcd-bench --example lease_scale -- \
//!     --endpoint http://127.0.0.1:2379 --pid $(pidof oxcd)
//! ```
//!
//! Bounded: every phase has a deadline (`--timeout-secs`); leases left over are revoked
//! or expire on their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::lease_client::LeaseClient;
use oxcd_api::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest};
use tokio::sync::mpsc;
use tonic::transport::Channel;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Client URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoint: String,
    /// PID of the server process (its /proc/PID/status is read for RSS).
    #[arg(long)]
    pid: u32,
    /// Live leases in phase 1.
    #[arg(long, default_value_t = 100_000)]
    leases: usize,
    /// TTL of the live leases (s).
    #[arg(long, default_value_t = 600)]
    live_ttl: i64,
    /// Keep-alive streams.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Keep-alive requests in flight per stream.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Duration of the keep-alive phase (s).
    #[arg(long, default_value_t = 20)]
    keepalive_secs: u64,
    /// Leases expiring at once in phase 2.
    #[arg(long, default_value_t = 10_000)]
    expire: usize,
    /// TTL of the expiring leases (s).
    #[arg(long, default_value_t = 5)]
    expire_ttl: i64,
    /// gRPC connections used for grants and puts.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Concurrent grant/put requests.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Deadline of each phase (s).
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Skip phase 1.
    #[arg(long)]
    skip_live: bool,
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn connect(endpoint: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect")
}

/// Grants `n` leases (and puts `prefix<i>` on each) with `concurrency` requests in flight.
async fn grant_with_keys(
    chans: &[Channel],
    n: usize,
    ttl: i64,
    prefix: &str,
    concurrency: usize,
    deadline: Instant,
) -> (Vec<i64>, Duration, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let ch = chans[w % chans.len()].clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut l = LeaseClient::new(ch);
            let mut ids = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let r = l.lease_grant(LeaseGrantRequest { id: 0, ttl }).await;
                ids.push((i, r.expect("grant").into_inner().id));
            }
            ids
        }));
    }
    let mut ids = vec![0i64; n];
    for t in tasks {
        for (i, id) in t.await.expect("grant task") {
            ids[i] = id;
        }
    }
    let grant_time = t0.elapsed();
    let next = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(ids);
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let ch = chans[w % chans.len()].clone();
        let (next, ids, prefix) = (next.clone(), ids.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(ch);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= ids.len() {
                    break;
                }
                kv.put(PutRequest {
                    key: format!("{prefix}{i:08}").into_bytes(),
                    value: b"10.0.0.1:8080".to_vec(),
                    lease: ids[i],
                    ..Default::default()
                })
                .await
                .expect("put with lease");
            }
        }));
    }
    for t in tasks {
        t.await.expect("put task");
    }
    let put_time = t1.elapsed();
    (
        Arc::try_unwrap(ids).unwrap_or_default(),
        grant_time,
        put_time,
    )
}

/// Keeps `ids` alive over `streams` streams for `secs`; returns (answers, bad answers).
async fn keep_alive_all(
    chans: &[Channel],
    ids: Vec<i64>,
    streams: usize,
    window: usize,
    secs: u64,
) -> (u64, u64) {
    let stop = Instant::now() + Duration::from_secs(secs);
    let chunk = ids.len().div_ceil(streams.max(1)).max(1);
    let mut tasks = Vec::new();
    for (s, share) in ids.chunks(chunk).enumerate() {
        let share = share.to_vec();
        let ch = chans[s % chans.len()].clone();
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(window * 2);
            let mut sent = 0usize;
            for _ in 0..window.min(share.len()) {
                let id = share[sent % share.len()];
                tx.send(LeaseKeepAliveRequest { id }).await.expect("queue");
                sent += 1;
            }
            let mut stream = LeaseClient::new(ch)
                .lease_keep_alive(futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|m| (m, rx))
                }))
                .await
                .expect("keep-alive stream")
                .into_inner();
            let (mut ok, mut bad) = (0u64, 0u64);
            let mut outstanding = sent;
            while outstanding > 0 {
                let r = match tokio::time::timeout(Duration::from_secs(30), stream.message()).await
                {
                    Ok(Ok(Some(r))) => r,
                    _ => break,
                };
                outstanding -= 1;
                if r.ttl > 0 {
                    ok += 1;
                } else {
                    bad += 1;
                }
                if Instant::now() < stop {
                    let id = share[sent % share.len()];
                    if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                        break;
                    }
                    sent += 1;
                    outstanding += 1;
                }
            }
            (ok, bad)
        }));
    }
    let (mut ok, mut bad) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.expect("keep-alive task");
        ok += o;
        bad += b;
    }
    (ok, bad)
}

async fn count_prefix(kv: &mut KvClient<Channel>, prefix: &str) -> i64 {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    kv.range(RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: end,
        count_only: true,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().count)
    .unwrap_or(-1)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let mut chans = Vec::new();
    for _ in 0..a.conns.max(1) {
        chans.push(connect(&a.endpoint).await);
    }
    let mut out = serde_json::Map::new();
    let rss0 = status_kib(a.pid, "VmRSS:");
    out.insert("rss_start_mib".into(), (rss0 as f64 / 1024.0).into());

    if !a.skip_live {
        let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
        let (ids, gt, pt) = grant_with_keys(
            &chans,
            a.leases,
            a.live_ttl,
            "live/",
            a.concurrency,
            deadline,
        )
        .await;
        out.insert("live_leases".into(), ids.len().into());
        out.insert(
            "grant_per_s".into(),
            (ids.len() as f64 / gt.as_secs_f64()).round().into(),
        );
        out.insert(
            "put_with_lease_per_s".into(),
            (ids.len() as f64 / pt.as_secs_f64()).round().into(),
        );
        let rss_granted = status_kib(a.pid, "VmRSS:");
        let t = Instant::now();
        let (ok, bad) = keep_alive_all(&chans, ids, a.streams, a.window, a.keepalive_secs).await;
        let secs = t.elapsed().as_secs_f64();
        let rss_live = status_kib(a.pid, "VmRSS:");
        out.insert("keepalive_answers".into(), ok.into());
        out.insert("keepalive_ttl0_answers".into(), bad.into());
        out.insert("keepalive_per_s".into(), (ok as f64 / secs).round().into());
        out.insert(
            "rss_with_leases_mib".into(),
            (rss_granted as f64 / 1024.0).into(),
        );
        out.insert(
            "rss_after_keepalives_mib".into(),
            (rss_live as f64 / 1024.0).into(),
        );
        out.insert(
            "rss_per_lease_bytes".into(),
            ((rss_granted.saturating_sub(rss0) * 1024) as f64 / a.leases.max(1) as f64)
                .round()
                .into(),
        );
    }

    // Phase 2: mass expiry while a client keeps putting.
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let (ids, gt, pt) = grant_with_keys(
        &chans,
        a.expire,
        a.expire_ttl,
        "exp/",
        a.concurrency,
        deadline,
    )
    .await;
    // Leases were granted during [start, start + gt]; they expire within that window
    // after the TTL. Keys were put afterwards.
    let last_grant = Instant::now() - pt;
    let first_expiry = last_grant - gt + Duration::from_secs(a.expire_ttl as u64);
    let last_expiry = last_grant + Duration::from_secs(a.expire_ttl as u64);
    out.insert("expire_leases".into(), ids.len().into());
    let mut before = Histogram::<u64>::new(3).expect("histogram");
    let mut during = Histogram::<u64>::new(3).expect("histogram");
    let mut kv_put = KvClient::new(chans[0].clone());
    let mut kv_count = KvClient::new(chans[1 % chans.len()].clone());
    let mut i = 0u64;
    let mut all_gone = None;
    let mut next_count = Instant::now();
    while Instant::now() < deadline {
        let t = Instant::now();
        kv_put
            .put(PutRequest {
                key: format!("load/{}", i % 1000).into_bytes(),
                value: vec![b'x'; 256],
                ..Default::default()
            })
            .await
            .expect("load put");
        let us = t.elapsed().as_micros() as u64;
        i += 1;
        if t < first_expiry {
            before.record(us).ok();
        } else {
            during.record(us).ok();
        }
        if Instant::now() >= next_count {
            next_count = Instant::now() + Duration::from_millis(100);
            if Instant::now() > first_expiry && count_prefix(&mut kv_count, "exp/").await == 0 {
                all_gone = Some(Instant::now());
                break;
            }
        }
    }
    let gone = all_gone.unwrap_or_else(Instant::now);
    out.insert("all_expired".into(), all_gone.is_some().into());
    out.insert(
        "expiry_span_s".into(),
        ((gone.saturating_duration_since(first_expiry)).as_secs_f64()).into(),
    );
    out.insert(
        "gone_after_last_expiry_s".into(),
        ((gone.saturating_duration_since(last_expiry)).as_secs_f64()).into(),
    );
    out.insert("put_p50_before_ms".into(), ms(&before, 0.5).into());
    out.insert("put_p99_before_ms".into(), ms(&before, 0.99).into());
    out.insert("put_p50_during_ms".into(), ms(&during, 0.5).into());
    out.insert("put_p99_during_ms".into(), ms(&during, 0.99).into());
    out.insert(
        "put_max_during_ms".into(),
        (during.max() as f64 / 1000.0).into(),
    );
    out.insert("puts_during".into(), during.len().into());
    out.insert(
        "rss_peak_mib".into(),
        (status_kib(a.pid, "VmHWM:") as f64 / 1024.0).into(),
    );
    println!("{}", serde_json::Value::Object(out));
}
