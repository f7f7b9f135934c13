//! Server memory per idle watcher: opens `--streams` watch streams (one watcher each),
//! reads the server's RSS, adds watchers up to `--watchers`, waits for every `created`,
//! reads the RSS again and prints the difference per added watcher (the streams
//! themselves are in the baseline). Watchers are on one prefix, or each on its own key
//! with `--distinct-keys`.
//!
//! ```text
//! cargo run --release -p oxcd-bench --example watch_memory -- \
//!     --endpoint http://127.0.0.1:2379 --pid $(pidof oxcd) --watchers 100000 --streams 100
//! ```
//!
//! Bounded: every wait has a timeout; the streams close when the program exits.

use std::time::{Duration, Instant};

use clap::Parser;
use oxcd_client::{Client, WatchOptions, WatchStream, Watcher};

#[derive(Parser, Debug)]
struct Args {
    /// Client URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoint: String,
    /// PID of the server process (its /proc/PID/status is read).
    #[arg(long)]
    pid: u32,
    /// Total watchers.
    #[arg(long, default_value_t = 100_000)]
    watchers: usize,
    /// Streams they are spread over.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// One key per watcher instead of one shared prefix.
    #[arg(long)]
    distinct_keys: bool,
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn target(args: &Args, i: usize) -> (Vec<u8>, WatchOptions) {
    if args.distinct_keys {
        (
            format!("/mem-watch/key-{i:08}").into_bytes(),
            WatchOptions::default(),
        )
    } else {
        (b"/mem-watch/".to_vec(), WatchOptions::prefix())
    }
}

/// Waits (bounded) for `n` created responses on `stream`.
async fn created(stream: &mut WatchStream, n: usize) -> Result<(), String> {
    let mut got = 0;
    while got < n {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .map_err(|_| "timed out waiting for created".to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("stream ended")?;
        if r.canceled {
            return Err(format!("watch refused: {}", r.cancel_reason));
        }
        if r.created {
            got += 1;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let client = Client::connect([args.endpoint.clone()])
        .await
        .map_err(|e| e.to_string())?;
    let streams = args.streams.max(1);
    let mut opened: Vec<(Watcher, WatchStream)> = Vec::new();
    for i in 0..streams {
        let (key, opts) = target(&args, i);
        opened.push(client.watch(key, &opts).await.map_err(|e| e.to_string())?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss_kib(args.pid);
    let start = Instant::now();
    let per_stream = args.watchers.saturating_sub(streams) / streams;
    // In batches per stream, each confirmed before the next (etcd resets streams that
    // pipeline too many creates).
    const BATCH: usize = 100;
    for (s, (watcher, stream)) in opened.iter_mut().enumerate() {
        let mut done = 0;
        while done < per_stream {
            let n = BATCH.min(per_stream - done);
            for j in done..done + n {
                let (key, opts) = target(&args, streams + s * per_stream + j);
                watcher
                    .create(key, &opts)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            created(stream, n).await?;
            done += n;
        }
    }
    let added = per_stream * streams;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(args.pid);
    let per = (after.saturating_sub(base) as f64 * 1024.0) / added as f64;
    println!(
        "{{\"watchers_added\":{added},\"streams\":{streams},\"distinct_keys\":{},\"rss_base_kib\":{base},\"rss_after_kib\":{after},\"bytes_per_watcher\":{per:.1},\"create_secs\":{:.2}}}",
        args.distinct_keys,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
