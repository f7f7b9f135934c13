//! `watch` and `watch-latency`: W watchers on one prefix spread over S streams, then
//! `--total` puts under that prefix; every put's value starts with its send time, so each
//! received event yields one put→event latency.
//!
//! Invariants:
//! - All watchers are created (server confirmed) before the first put, so every watcher is
//!   owed exactly one event per successful put; `missing_events` is what was owed but not
//!   received by the end of the grace period.
//! - Receivers stop once they have what they are owed, or a few seconds after the last put,
//!   or at the deadline, whichever comes first.
//! - The report's `ops`/`ops_per_sec`/`latency_ms` describe received events; the puts
//!   themselves are in `extra` (`puts`, `put_ops_per_sec`, `put_latency_ms`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use oxcd_client::{Client, PutOptions, WatchOptions, WatchStream, Watcher};

use crate::keys::KeyGen;
use crate::report::{Latency, Report};
use crate::runner::{merge_all, record_duration, run_workers, OpError, Pace, Recorder};
use crate::workloads::kv::worker_rng;
use crate::{Ctx, WatchArgs};

/// Prefix of the watched keys.
const PREFIX: &[u8] = b"/bench-watch/";
/// How long receivers wait for stragglers after the last put.
const GRACE: Duration = Duration::from_secs(5);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A value of `size` bytes (at least 8) starting with the current time.
fn stamped_value(size: usize) -> Vec<u8> {
    let nanos = epoch().elapsed().as_nanos() as u64;
    let mut v = nanos.to_le_bytes().to_vec();
    v.resize(size.max(8), b'x');
    v
}

/// Time since the stamp in `value` was taken.
fn since_stamp(value: &[u8]) -> Option<Duration> {
    let nanos = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    Some(
        epoch()
            .elapsed()
            .saturating_sub(Duration::from_nanos(nanos)),
    )
}

/// Open one stream with `n` watchers on [`PREFIX`] and wait until all are created.
async fn open_stream(c: &Client, n: usize, pace: &Pace) -> Result<(Watcher, WatchStream), OpError> {
    let opts = WatchOptions::prefix();
    let (watcher, mut stream) = pace.bounded(c.watch(PREFIX.to_vec(), &opts)).await?;
    for _ in 1..n {
        pace.bounded(watcher.create(PREFIX.to_vec(), &opts)).await?;
    }
    let mut created = 1;
    while created < n {
        match pace.bounded(stream.message()).await? {
            Some(r) if r.canceled => {
                return Err(OpError::Rpc(oxcd_client::Error::WatchCanceled(
                    r.cancel_reason,
                )))
            }
            Some(r) if r.created => created += 1,
            Some(_) => {}
            None => return Err(OpError::Rpc(oxcd_client::Error::StreamClosed("watch"))),
        }
    }
    Ok((watcher, stream))
}

/// Shared receiver state.
struct Progress {
    /// Events received over all streams.
    events: AtomicU64,
    /// Set when receivers must stop.
    stop: AtomicBool,
}

/// Count events of one stream; `_watcher` keeps the stream's request side open until done.
async fn receive(
    (_watcher, mut stream): (Watcher, WatchStream),
    owed_per_put: u64,
    total: u64,
    progress: Arc<Progress>,
    deadline: Instant,
) -> Recorder {
    let mut rec = Recorder::default();
    let owed = owed_per_put * total;
    let mut got = 0;
    while got < owed && !progress.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), stream.message()).await {
            Err(_) => continue,
            Ok(Ok(Some(resp))) => {
                for ev in &resp.events {
                    if let Some(d) = ev.kv.as_ref().and_then(|kv| since_stamp(&kv.value)) {
                        record_duration(&mut rec.hist, d);
                        got += 1;
                    }
                }
                progress
                    .events
                    .fetch_add(resp.events.len() as u64, Ordering::Relaxed);
            }
            Ok(Ok(None)) => {
                rec.record_error(&OpError::Rpc(oxcd_client::Error::StreamClosed("watch")));
                break;
            }
            Ok(Err(e)) => {
                rec.record_error(&OpError::Rpc(e));
                break;
            }
        }
    }
    rec
}

/// `watch` / `watch-latency` (see the module docs); `put_rate` 0 = unlimited.
pub async fn watch(ctx: &Ctx, a: &WatchArgs, name: &str, put_rate: f64) -> Result<Report, String> {
    let streams = a.streams.clamp(1, a.watchers.max(1));
    let watchers = a.watchers.max(streams);
    let setup = Pace::new(u64::MAX, ctx.deadline, 0.0);
    let mut opened = Vec::with_capacity(streams);
    for s in 0..streams {
        // Spread watchers evenly: the first `watchers % streams` streams get one more.
        let n = watchers / streams + usize::from(s < watchers % streams);
        let stream = open_stream(&ctx.client(s), n, &setup)
            .await
            .map_err(|e| format!("creating watchers: {e}"))?;
        opened.push((stream, n as u64));
    }
    let progress = Arc::new(Progress {
        events: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let receivers: Vec<_> = opened
        .into_iter()
        .map(|(stream, n)| {
            tokio::spawn(receive(
                stream,
                n,
                ctx.total,
                progress.clone(),
                ctx.deadline,
            ))
        })
        .collect();

    let keys = Arc::new(KeyGen::new(
        PREFIX,
        a.keys.key_size,
        a.keys.key_space_size,
        a.keys.sequential_keys,
    ));
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, put_rate));
    let val_size = a.keys.val_size;
    let start = Instant::now();
    let puts = run_workers(ctx.workers, |w| {
        let (c, pace, keys) = (ctx.client(w), pace.clone(), keys.clone());
        async move {
            let mut rng = worker_rng(w);
            let mut rec = Recorder::default();
            while let Some(i) = pace.next().await {
                let key = keys.key(keys.index(i, &mut rng));
                let t = Instant::now();
                let r = pace
                    .bounded(c.put(key, stamped_value(val_size), &PutOptions::default()))
                    .await;
                rec.record(t, &r);
            }
            rec
        }
    })
    .await;
    let puts = merge_all(&puts);
    let put_elapsed = start.elapsed();

    let owed = puts.ok() * watchers as u64;
    let grace_end = (Instant::now() + GRACE).min(ctx.deadline);
    while progress.events.load(Ordering::Relaxed) < owed && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    let mut events = Recorder::default();
    for r in receivers {
        events.merge(&r.await.map_err(|e| format!("watch receiver: {e}"))?);
    }
    let elapsed = start.elapsed();
    let mut report = Report::new(name, owed, &events, elapsed);
    for (code, n) in &puts.errors {
        *report.errors.entry(format!("put:{code}")).or_default() += n;
    }
    report.error_samples.extend(puts.samples.iter().cloned());
    report.extra("events_per_sec", report.ops_per_sec);
    report.extra("watchers", watchers);
    report.extra("streams", streams);
    report.extra("puts", puts.ok());
    report.extra(
        "put_ops_per_sec",
        puts.ok() as f64 / put_elapsed.as_secs_f64().max(1e-9),
    );
    report.extra("put_latency_ms", Latency::from_histogram(&puts.hist));
    report.extra("missing_events", owed.saturating_sub(events.ok()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let v = stamped_value(4);
        assert_eq!(v.len(), 8, "values grow to hold the stamp");
        std::thread::sleep(Duration::from_millis(2));
        let d = since_stamp(&v).unwrap();
        assert!(
            d >= Duration::from_millis(2) && d < Duration::from_secs(5),
            "{d:?}"
        );
        assert!(since_stamp(b"short").is_none());
        assert_eq!(stamped_value(100).len(), 100);
    }
}
