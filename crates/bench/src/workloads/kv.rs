//! Plain KV workloads: `put`, `range` and `txn-mixed`, plus the preload they share.
//!
//! Invariants:
//! - Each measured loop takes its op indexes from one [`Pace`], so it runs at most
//!   `--total` ops and ends by the deadline.
//! - `range` and `txn-mixed` preload every key of the key space before measuring (unless
//!   told not to), so reads hit existing keys; preload failures are reported in `extra`.

use std::sync::Arc;
use std::time::Instant;

use oxcd_client::{GetOptions, Op, PutOptions, Txn};
use rand::{Rng, SeedableRng};

use crate::keys::{value, KeyGen};
use crate::report::Report;
use crate::runner::{merge_all, run_workers, Pace, Recorder};
use crate::{Consistency, Ctx, KeyArgs, PutArgs, RangeArgs, TxnMixedArgs};

/// A per-worker RNG (seeded by worker index: runs are reproducible).
pub fn worker_rng(w: usize) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(0x0c0d_0000 + w as u64)
}

fn keygen(k: &KeyArgs) -> Arc<KeyGen> {
    Arc::new(KeyGen::new(
        b"",
        k.key_size,
        k.key_space_size,
        k.sequential_keys,
    ))
}

/// Put every key of `keys` once (not measured); returns the number of failed puts.
pub async fn preload(ctx: &Ctx, keys: &Arc<KeyGen>, val_size: usize) -> u64 {
    let pace = Arc::new(Pace::new(keys.space(), ctx.deadline, 0.0));
    let val = Arc::new(value(val_size));
    let recs = run_workers(ctx.workers, |w| {
        let (c, pace, keys, val) = (ctx.client(w), pace.clone(), keys.clone(), val.clone());
        async move {
            let mut rec = Recorder::default();
            while let Some(i) = pace.next().await {
                let t = Instant::now();
                let r = pace
                    .bounded(c.put(keys.key(i), val.as_slice(), &PutOptions::default()))
                    .await;
                rec.record(t, &r);
            }
            rec
        }
    })
    .await;
    merge_all(&recs).failed()
}

/// `put`: `--total` puts of `--val-size` values over the key space (`--txn`: each in a txn).
pub async fn put(ctx: &Ctx, a: &PutArgs) -> Result<Report, String> {
    let keys = keygen(&a.keys);
    let val = Arc::new(value(a.keys.val_size));
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, ctx.rate));
    let start = Instant::now();
    let use_txn = a.txn;
    let recs = run_workers(ctx.workers, |w| {
        let (c, pace, keys, val) = (ctx.client(w), pace.clone(), keys.clone(), val.clone());
        async move {
            let mut rng = worker_rng(w);
            let mut rec = Recorder::default();
            let opts = PutOptions::default();
            while let Some(i) = pace.next().await {
                let key = keys.key(keys.index(i, &mut rng));
                let t = Instant::now();
                let r = if use_txn {
                    let txn = Txn::new().and_then([Op::put(key, val.as_slice(), &opts)]);
                    pace.bounded(async { c.txn(txn).await.map(drop) }).await
                } else {
                    pace.bounded(async { c.put(key, val.as_slice(), &opts).await.map(drop) })
                        .await
                };
                rec.record(t, &r);
            }
            rec
        }
    })
    .await;
    let name = if use_txn { "put-txn" } else { "put" };
    Ok(Report::new(
        name,
        ctx.total,
        &merge_all(&recs),
        start.elapsed(),
    ))
}

/// `range`: `--total` reads of one key, or of `--prefix-keys` consecutive keys.
pub async fn range(ctx: &Ctx, a: &RangeArgs) -> Result<Report, String> {
    let keys = keygen(&a.keys);
    let preload_errors = if a.no_preload {
        0
    } else {
        preload(ctx, &keys, a.keys.val_size).await
    };
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, ctx.rate));
    let serializable = a.consistency == Consistency::S;
    let span = a.prefix_keys;
    let start = Instant::now();
    let results = run_workers(ctx.workers, |w| {
        let (c, pace, keys) = (ctx.client(w), pace.clone(), keys.clone());
        async move {
            let mut rng = worker_rng(w);
            let mut rec = Recorder::default();
            let mut returned = 0u64;
            while let Some(i) = pace.next().await {
                let mut idx = keys.index(i, &mut rng);
                let mut opts = GetOptions {
                    serializable,
                    ..Default::default()
                };
                if span > 0 {
                    // A read of `span` consecutive keys: start low enough not to wrap.
                    idx = idx.min(keys.space().saturating_sub(span));
                    opts.range_end = Some(keys.key(idx + span));
                    if idx + span >= keys.space() {
                        // Just past the last key (key(space) would wrap to key(0)).
                        let mut end = keys.key(keys.space() - 1);
                        end.push(0);
                        opts.range_end = Some(end);
                    }
                }
                let t = Instant::now();
                let r = pace.bounded(c.range(keys.key(idx), &opts)).await;
                if let Ok(resp) = &r {
                    returned += resp.kvs.len() as u64;
                }
                rec.record(t, &r);
            }
            (rec, returned)
        }
    })
    .await;
    let rec = merge_all(results.iter().map(|(r, _)| r));
    let returned: u64 = results.iter().map(|(_, n)| n).sum();
    let mut report = Report::new("range", ctx.total, &rec, start.elapsed());
    report.extra("preload_errors", preload_errors);
    report.extra("kvs_per_read", returned as f64 / rec.ok().max(1) as f64);
    Ok(report)
}

/// `txn-mixed`: txns holding one range (read) or one put (write), `--rw-ratio` reads per
/// write, chosen at random per op.
pub async fn txn_mixed(ctx: &Ctx, a: &TxnMixedArgs) -> Result<Report, String> {
    if !(a.rw_ratio >= 0.0 && a.rw_ratio.is_finite()) {
        return Err(format!("--rw-ratio must be >= 0, got {}", a.rw_ratio));
    }
    let keys = keygen(&a.keys);
    let preload_errors = if a.no_preload {
        0
    } else {
        preload(ctx, &keys, a.keys.val_size).await
    };
    let val = Arc::new(value(a.keys.val_size));
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, ctx.rate));
    let read_share = a.rw_ratio / (a.rw_ratio + 1.0);
    let serializable = a.consistency == Consistency::S;
    let start = Instant::now();
    let results = run_workers(ctx.workers, |w| {
        let (c, pace, keys, val) = (ctx.client(w), pace.clone(), keys.clone(), val.clone());
        async move {
            let mut rng = worker_rng(w);
            let (mut reads, mut writes) = (Recorder::default(), Recorder::default());
            let get = GetOptions {
                serializable,
                ..Default::default()
            };
            while let Some(i) = pace.next().await {
                let key = keys.key(keys.index(i, &mut rng));
                let is_read = rng.gen_bool(read_share);
                let op = if is_read {
                    Op::get(key, &get)
                } else {
                    Op::put(key, val.as_slice(), &PutOptions::default())
                };
                let t = Instant::now();
                let r = pace.bounded(c.txn(Txn::new().and_then([op]))).await;
                if is_read { &mut reads } else { &mut writes }.record(t, &r);
            }
            (reads, writes)
        }
    })
    .await;
    let reads = merge_all(results.iter().map(|(r, _)| r));
    let writes = merge_all(results.iter().map(|(_, w)| w));
    let mut all = reads.clone();
    all.merge(&writes);
    let mut report = Report::new("txn-mixed", ctx.total, &all, start.elapsed());
    report.extra("preload_errors", preload_errors);
    report.extra("reads", reads.ok());
    report.extra("writes", writes.ok());
    report.extra(
        "read_latency_ms",
        crate::report::Latency::from_histogram(&reads.hist),
    );
    report.extra(
        "write_latency_ms",
        crate::report::Latency::from_histogram(&writes.hist),
    );
    Ok(report)
}
