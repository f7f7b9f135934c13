//! `lease-keepalive`: each worker grants one lease (TTL 60 s, not measured), opens one
//! keep-alive stream for it and then refreshes it once per op (send, wait for the answer).
//!
//! Invariants:
//! - Every lease granted here is revoked at the end (best effort, within the deadline).
//! - A worker whose grant or stream fails counts one error and stops; the others go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::report::Report;
use crate::runner::{merge_all, run_workers, Pace, Recorder};
use crate::Ctx;

/// TTL of the benchmark's leases, in seconds.
const TTL: i64 = 60;

/// `lease-keepalive` (see the module docs).
pub async fn keepalive(ctx: &Ctx) -> Result<Report, String> {
    let pace = Arc::new(Pace::new(ctx.total, ctx.deadline, ctx.rate));
    let setup_errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let recs = run_workers(ctx.workers, |w| {
        let (c, pace, setup_errors) = (ctx.client(w), pace.clone(), setup_errors.clone());
        async move {
            let mut rec = Recorder::default();
            let lease = match pace.bounded(c.lease_grant(TTL, 0)).await {
                Ok(l) => l.id,
                Err(e) => {
                    rec.record_error(&e);
                    setup_errors.fetch_add(1, Ordering::Relaxed);
                    return rec;
                }
            };
            match pace.bounded(c.lease_keep_alive(lease)).await {
                Ok(mut ka) => {
                    while pace.next().await.is_some() {
                        let t = Instant::now();
                        let r = pace.bounded(ka.keep_alive()).await;
                        rec.record(t, &r);
                    }
                }
                Err(e) => {
                    rec.record_error(&e);
                    setup_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = pace.bounded(c.lease_revoke(lease)).await;
            rec
        }
    })
    .await;
    // Includes one grant and one revoke per worker: negligible next to --total ops.
    let elapsed = start.elapsed();
    let mut report = Report::new("lease-keepalive", ctx.total, &merge_all(&recs), elapsed);
    report.extra("setup_errors", setup_errors.load(Ordering::Relaxed));
    Ok(report)
}
