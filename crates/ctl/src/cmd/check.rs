//! check perf|datascale: etcdctl 3.4's load checks, with its workloads, PASS/FAIL lines and
//! exit codes; a progress bar on stderr when it is a terminal (never in pipes or tests).
//!
//! Invariants:
//! - The check refuses to run when its prefix already holds keys (exit 3) and deletes its
//!   keys when done, so it leaves the keyspace as it found it (but for revisions).
//! - Load is bounded: perf by time at a fixed rate, datascale by a key count; every
//!   request's outcome is counted once (latency or error).
//! - The hidden `--duration` (perf, seconds) and `--keys` (datascale) shorten a run for
//!   tests; the printed verdicts use the same thresholds.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxcd_client::{Client, DeleteOptions, GetOptions, PutOptions};

use super::Ctx;
use crate::cli::{CheckCmd, CheckDatascaleArgs, CheckPerfArgs};
use crate::{exit, CtlError, CtlResult};

/// Connections shared by the workers (etcdctl opens one per client; oxcdctl multiplexes
/// the workers over at most this many).
const MAX_CONNS: usize = 32;

fn model(load: &str) -> CtlResult<usize> {
    match load {
        "s" | "small" => Ok(0),
        "m" | "medium" => Ok(1),
        "l" | "large" => Ok(2),
        "xl" | "xLarge" => Ok(3),
        _ => Err(CtlError::new(
            exit::BAD_FEATURE,
            format!("unknown load option {load}"),
        )),
    }
}

/// Latencies of the successful requests and counts of each error.
#[derive(Default)]
struct Report {
    lats: Vec<f64>,
    errors: BTreeMap<String, u64>,
}

impl Report {
    fn add(&mut self, start: Instant, r: Result<(), oxcd_client::Error>) {
        match r {
            Ok(()) => self.lats.push(start.elapsed().as_secs_f64()),
            Err(e) => *self.errors.entry(super::describe(&e)).or_default() += 1,
        }
    }
    fn slowest(&self) -> f64 {
        self.lats.iter().cloned().fold(0.0, f64::max)
    }
    fn stddev(&self) -> f64 {
        let n = self.lats.len() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mean = self.lats.iter().sum::<f64>() / n;
        (self.lats.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt()
    }
    fn print_errors(&self) -> bool {
        if self.errors.is_empty() {
            return false;
        }
        println!("FAIL: too many errors");
        for (k, v) in &self.errors {
            println!("FAIL: ERROR({k}) -> {v}");
        }
        true
    }
}

/// A key of `len` bytes: `prefix`, then a varint of a random number in zero padding
/// (etcdctl's `binary.PutVarint` into a zeroed buffer).
fn key(prefix: &str, len: usize, rng: &mut u64) -> Vec<u8> {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let mut k = vec![0u8; len];
    let mut x = ((*rng >> 1) as i64 as u64) << 1; // zig-zag of a non-negative number
    let mut i = 0;
    while x >= 0x80 && i < len {
        k[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    if i < len {
        k[i] = x as u8;
    }
    let mut out = prefix.as_bytes().to_vec();
    out.extend(k);
    out
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t | 1
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
struct Bar {
    total: u64,
    tty: bool,
}

impl Bar {
    fn new(total: u64) -> Bar {
        Bar {
            total,
            tty: std::io::stderr().is_terminal(),
        }
    }
    fn draw(&self, done: u64) {
        if !self.tty {
            return;
        }
        let w = 40u64;
        let filled = (done.min(self.total) * w)
            .checked_div(self.total)
            .unwrap_or(w);
        eprint!(
            "\r{done} / {} [{}{}] {}%",
            self.total,
            "=".repeat(filled as usize),
            " ".repeat((w - filled) as usize),
            (done * 100).checked_div(self.total).unwrap_or(100)
        );
    }
    fn finish(&self) {
        if self.tty {
            self.draw(self.total);
            eprintln!();
        }
    }
}

async fn connections(ctx: &Ctx, n: usize) -> CtlResult<Vec<Client>> {
    let mut v = Vec::new();
    for _ in 0..n.clamp(1, MAX_CONNS) {
        v.push(ctx.client().await?);
    }
    Ok(v)
}

/// Refuse a prefix that holds keys (etcdctl's check).
async fn empty_prefix(ctx: &Ctx, c: &Client, prefix: &str) -> CtlResult {
    let o = GetOptions {
        prefix: true,
        limit: 1,
        ..Default::default()
    };
    let r = ctx.timed(c.range(prefix, &o)).await?;
    if !r.kvs.is_empty() {
        return Err(CtlError::new(
            exit::INVALID_INPUT,
            format!("prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"),
        ));
    }
    Ok(())
}

/// Delete the check's keys, then compact and defragment if asked.
async fn cleanup(
    ctx: &Ctx,
    c: &Client,
    prefix: &str,
    compact: bool,
    defrag: bool,
    eps: &[String],
) -> CtlResult {
    let d = DeleteOptions {
        prefix: true,
        ..Default::default()
    };
    let r = tokio::time::timeout(Duration::from_secs(30), c.delete(prefix, &d))
        .await
        .map_err(|_| CtlError::new(exit::ERROR, "context deadline exceeded"))??;
    if compact {
        let rev = r.header.map_or(0, |h| h.revision);
        println!("Compacting with revision {rev}");
        c.compact(rev, true).await?;
        println!("Compacted with revision {rev}");
    }
    if defrag {
        for ep in eps {
            println!("Defragmenting {ep:?}");
            let one = ctx.client_of(std::slice::from_ref(ep)).await?;
            one.defragment().await?;
            println!("Defragmented {ep:?}");
        }
    }
    Ok(())
}

pub async fn check(ctx: &Ctx, cmd: CheckCmd) -> CtlResult {
    match cmd {
        CheckCmd::Perf(a) => perf(ctx, a).await,
        CheckCmd::Datascale(a) => datascale(ctx, a).await,
    }
}

async fn perf(ctx: &Ctx, a: CheckPerfArgs) -> CtlResult {
    // (puts per second, clients, seconds) of etcdctl's s, m, l, xl.
    const CFG: [(u64, usize, u64); 4] = [
        (150, 50, 60),
        (1000, 200, 60),
        (8000, 500, 60),
        (15000, 1000, 60),
    ];
    let (limit, clients, mut secs) = CFG[model(&a.load)?];
    if let Some(d) = a.duration {
        secs = d.max(1);
    }
    let conns = connections(ctx, clients).await?;
    empty_prefix(ctx, &conns[0], &a.prefix).await?;
    let report = Arc::new(Mutex::new(Report::default()));
    let (tx, rx) = async_channel(clients);
    let value = vec![0u8; 1024];
    let mut workers = Vec::new();
    for i in 0..clients {
        let c = conns[i % conns.len()].clone();
        let rx = rx.clone();
        let report = report.clone();
        let value = value.clone();
        workers.push(tokio::spawn(async move {
            while let Ok(k) = rx.recv().await {
                let st = Instant::now();
                let r = c.put(k, value.clone(), &PutOptions::default()).await;
                report.lock().expect("report").add(st, r.map(|_| ()));
            }
        }));
    }
    drop(rx);
    let bar = Bar::new(secs);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    // etcdctl paces puts with a limiter of `limit`/s and a burst of one; timers here tick
    // at about 1 ms, so a lag of up to 10 ms of puts may be made up at once.
    let max_lag = limit / 100 + 1;
    let mut rng = seed();
    let mut shown = 0;
    let mut sent: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now.duration_since(start).as_secs_f64() * limit as f64) as u64 + 1;
        sent = sent.max(due.saturating_sub(max_lag));
        if sent >= due {
            let next = start + Duration::from_secs_f64(sent as f64 / limit as f64);
            tokio::time::sleep_until(next.into()).await;
            continue;
        }
        if tx.send(key(&a.prefix, 256, &mut rng)).await.is_err() {
            break;
        }
        sent += 1;
        let s = start.elapsed().as_secs();
        if s != shown {
            shown = s;
            bar.draw(s);
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let took = start.elapsed().as_secs_f64();
    bar.finish();
    cleanup(
        ctx,
        &conns[0],
        &a.prefix,
        a.auto_compact,
        a.auto_defrag,
        &ctx.g.endpoints,
    )
    .await?;

    let r = report.lock().expect("report");
    let mut ok = !r.print_errors();
    let rps = r.lats.len() as f64 / took;
    if rps / limit as f64 <= 0.9 {
        println!("FAIL: Throughput too low: {} writes/s", rps as i64 + 1);
        ok = false;
    } else {
        println!("PASS: Throughput is {} writes/s", rps as i64 + 1);
    }
    let slowest = r.slowest();
    if slowest > 0.5 {
        println!("Slowest request took too long: {slowest:.6}s");
        ok = false;
    } else {
        println!("PASS: Slowest request took {slowest:.6}s");
    }
    let sd = r.stddev();
    if sd > 0.1 {
        println!("Stddev too high: {sd:.6}s");
        ok = false;
    } else {
        println!("PASS: Stddev is {sd:.6}s");
    }
    if ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        Err(CtlError::new(exit::ERROR, ""))
    }
}

/// A bounded multi-consumer queue of keys.
fn async_channel(cap: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    (Sender(tx), Receiver(rx))
}

struct Sender(tokio::sync::mpsc::Sender<Vec<u8>>);

impl Sender {
    async fn send(&self, k: Vec<u8>) -> Result<(), ()> {
        self.0.send(k).await.map_err(|_| ())
    }
}

#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<u8>>>>);

impl Receiver {
    async fn recv(&self) -> Result<Vec<u8>, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

/// `process_resident_memory_bytes` from the endpoint's `/metrics`, or 0 (after printing
/// why, as etcdctl does) when it cannot be read.
async fn resident_memory(ep: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const KEY: &str = "process_resident_memory_bytes";
    let host = ep.trim_start_matches("http://");
    if host.starts_with("https://") {
        println!("fetch error: {ep}/metrics: https is not supported by oxcdctl's datascale check");
        return 0.0;
    }
    let host = host.trim_end_matches('/');
    let body = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = match tokio::time::timeout(Duration::from_secs(10), body).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            println!("fetch error: Get \"http://{host}/metrics\": {e}");
            return 0.0;
        }
        Err(_) => {
            println!("fetch error: Get \"http://{host}/metrics\": timeout");
            return 0.0;
        }
    };
    let Some(v) = text
        .lines()
        .find(|l| l.starts_with(KEY))
        .map(|l| l[KEY.len()..].trim().to_string())
    else {
        println!("could not find: {KEY}");
        return 0.0;
    };
    match v.parse::<f64>() {
        Ok(b) => b,
        Err(e) => {
            println!("parse error: {e}");
            0.0
        }
    }
}

async fn datascale(ctx: &Ctx, a: CheckDatascaleArgs) -> CtlResult {
    // (keys, bytes per key-value, clients) of etcdctl's s, m, l, xl.
    const CFG: [(u64, usize, usize); 4] = [
        (10_000, 1024, 50),
        (100_000, 1024, 200),
        (1_000_000, 1024, 500),
        (3_000_000, 1024, 1000),
    ];
    let (mut limit, kv_size, clients) = CFG[model(&a.load)?];
    if let Some(k) = a.keys {
        limit = k;
    }
    let conns = connections(ctx, clients).await?;
    empty_prefix(ctx, &conns[0], &a.prefix).await?;
    let ep = ctx.g.endpoints.first().cloned().unwrap_or_default();
    let before = resident_memory(&ep).await;
    if before == 0.0 {
        println!("FAIL: Could not read process_resident_memory_bytes before the put operations.");
        return Err(CtlError::new(exit::ERROR, ""));
    }
    println!("Start data scale check for work load [{limit} key-value pairs, {kv_size} bytes per key-value, {clients} concurrent clients].");
    let report = Arc::new(Mutex::new(Report::default()));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (tx, rx) = async_channel(clients);
    let value = vec![0u8; 512];
    let mut workers = Vec::new();
    for i in 0..clients {
        let c = conns[i % conns.len()].clone();
        let (rx, report, value, done) = (rx.clone(), report.clone(), value.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while let Ok(k) = rx.recv().await {
                let st = Instant::now();
                let r = c.put(k, value.clone(), &PutOptions::default()).await;
                report.lock().expect("report").add(st, r.map(|_| ()));
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    drop(rx);
    let bar = Arc::new(Bar::new(limit));
    let drawer = {
        let (bar, done) = (bar.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bar.draw(done.load(std::sync::atomic::Ordering::Relaxed));
            }
        })
    };
    let mut rng = seed();
    for _ in 0..limit {
        if tx.send(key(&a.prefix, 512, &mut rng)).await.is_err() {
            break;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    drawer.abort();
    bar.finish();
    let after = resident_memory(&ep).await;
    if after == 0.0 {
        println!("FAIL: Could not read process_resident_memory_bytes after the put operations.");
        return Err(CtlError::new(exit::ERROR, ""));
    }
    cleanup(
        ctx,
        &conns[0],
        &a.prefix,
        a.auto_compact,
        a.auto_defrag,
        &ctx.g.endpoints,
    )
    .await?;
    let r = report.lock().expect("report");
    if r.print_errors() {
        return Err(CtlError::new(exit::ERROR, ""));
    }
    let mb = (after - before) / (1024.0 * 1024.0);
    println!("PASS: Approximate system memory used : {mb:.2} MB.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_prefix_and_size_and_differ() {
        let mut rng = 7;
        let a = key("/p/", 256, &mut rng);
        let b = key("/p/", 256, &mut rng);
        assert_eq!(a.len(), 3 + 256);
        assert!(a.starts_with(b"/p/"));
        assert_ne!(a, b);
    }

    #[test]
    fn report_stats() {
        let r = Report {
            lats: vec![0.1, 0.3],
            ..Default::default()
        };
        assert!((r.slowest() - 0.3).abs() < 1e-9);
        assert!((r.stddev() - 0.1).abs() < 1e-9);
        assert!(!r.print_errors());
        assert!(model("xLarge").is_ok() && model("x").is_err());
    }
}
