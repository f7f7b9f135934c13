//! `stm`: contended read-modify-write transactions, like etcd's `benchmark stm` with
//! serializable-snapshot isolation.
//!
//! Each op picks `--keys-per-txn` distinct counters out of `--keys`, reads them (one txn of
//! ranges), then commits `counter + 1` for each in a txn guarded by `mod_revision ==` the
//! revisions read. A failed guard returns fresh values in the same round trip and the op
//! retries until it commits or the deadline passes; latency covers all attempts.
//!
//! Invariants:
//! - Counters start at 0 and only committed txns change them, so after the run the sum of
//!   the counters equals `committed ops * keys_per_txn` (reported as `consistent`).
//! - `retries` counts guard failures only; gRPC errors end the op and are counted as errors.

use std::sync::Arc;
use std::time::Instant;

use oxcd_client::pb::{response_op::Response, TxnResponse};
use oxcd_client::{Client, Cmp, CmpOp, GetOptions, Op, PutOptions, Txn};
use rand::seq::index::sample;

use crate::keys::KeyGen;
use crate::report::Report;
use crate::runner::{merge_all, run_workers, OpError, Pace, Recorder};
use crate::workloads::kv::worker_rng;
use crate::{Ctx, StmArgs};

/// Values and mod revisions of the read set, in key order, from a txn's range responses.
fn read_set(resp: &TxnResponse) -> Vec<(u64, i64)> {
    resp.responses
        .iter()
        .filter_map(|r| match &r.response {
            Some(Response::ResponseRange(rr)) => Some(rr.kvs.first().map_or((0, 0), |kv| {
                let v = std::str::from_utf8(&kv.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (v, kv.mod_revision)
            })),
            _ => None,
        })
        .collect()
}

/// Run one read-modify-write to completion; returns the number of retries.
async fn rmw(c: &Client, pace: &Pace, keys: &[Vec<u8>]) -> Result<u64, OpError> {
    let reads = || {
        keys.iter()
            .map(|k| Op::get(k.clone(), &GetOptions::default()))
    };
    let first = pace.bounded(c.txn(Txn::new().and_then(reads()))).await?;
    let mut state = read_set(&first);
    let mut retries = 0;
    loop {
        let guards = keys
            .iter()
            .zip(&state)
            .map(|(k, (_, rev))| Cmp::mod_revision(k.clone(), CmpOp::Equal, *rev));
        let writes = keys
            .iter()
            .zip(&state)
            .map(|(k, (v, _))| Op::put(k.clone(), (v + 1).to_string(), &PutOptions::default()));
        let txn = Txn::new().when(guards).and_then(writes).or_else(reads());
        let resp = pace.bounded(c.txn(txn)).await?;
        if resp.succeeded {
            return Ok(retries);
        }
        retries += 1;
        state = read_set(&resp);
    }
}

/// `stm`: see the module docs.
pub async fn stm(ctx: &Ctx, a: &StmArgs) -> Result<Report, String> {
    if a.keys == 0 || a.keys_per_txn == 0 || a.keys_per_txn > a.keys {
        return Err(format!(
            "need 1 <= --keys-per-txn ({}) <= --keys ({})",
            a.keys_per_txn, a.keys
        ));
    }
    let keys = Arc::new(KeyGen::new(b"/bench-stm/", 0, a.keys, true));
    let c0 = ctx.client(0);
    let setup = Pace::new(u64::MAX, ctx.deadline, 0.0);
    for i in 0..a.keys {
        setup
            .bounded(c0.put(keys.key(i), "0", &PutOptions::default()))
            .await
            .map_err(|e| format!("stm setup: {e}"))?;
    }
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, ctx.rate));
    let (n, k) = (a.keys as usize, a.keys_per_txn as usize);
    let start = Instant::now();
    let results = run_workers(ctx.workers, |w| {
        let (c, pace, keys) = (ctx.client(w), pace.clone(), keys.clone());
        async move {
            let mut rng = worker_rng(w);
            let mut rec = Recorder::default();
            let mut retries = 0;
            while pace.next().await.is_some() {
                let mut picked: Vec<u64> = sample(&mut rng, n, k)
                    .into_iter()
                    .map(|i| i as u64)
                    .collect();
                picked.sort_unstable();
                let set: Vec<Vec<u8>> = picked.iter().map(|&i| keys.key(i)).collect();
                let t = Instant::now();
                let r = rmw(&c, &pace, &set).await;
                if let Ok(n) = &r {
                    retries += n;
                }
                rec.record(t, &r);
            }
            (rec, retries)
        }
    })
    .await;
    let elapsed = start.elapsed();
    let rec = merge_all(results.iter().map(|(r, _)| r));
    let retries: u64 = results.iter().map(|(_, n)| n).sum();
    let mut report = Report::new("stm", ctx.total, &rec, elapsed);
    report.extra("retries", retries);
    report.extra("retries_per_op", retries as f64 / rec.ok().max(1) as f64);
    let check = Pace::new(u64::MAX, ctx.deadline, 0.0);
    let all = check
        .bounded(c0.range(keys.prefix().to_vec(), &GetOptions::prefix()))
        .await;
    if let Ok(all) = all {
        let sum: u64 = all
            .kvs
            .iter()
            .filter_map(|kv| std::str::from_utf8(&kv.value).ok()?.parse::<u64>().ok())
            .sum();
        // Ops cut by the deadline may still have committed: allow for those.
        let expected = rec.ok() * a.keys_per_txn;
        let in_doubt = rec.errors.get("Timeout").copied().unwrap_or(0) * a.keys_per_txn;
        report.extra("counter_sum", sum);
        report.extra("consistent", sum >= expected && sum <= expected + in_doubt);
    }
    Ok(report)
}
