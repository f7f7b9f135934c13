//! `--max-concurrent-streams` for the JSON gateway. etcd's grpc-gateway calls etcd over one
//! internal gRPC connection, so at most that many gateway calls (a watch or keep-alive
//! stream counts until it ends) run at once and the next one waits; oxcd's gateway calls
//! the services in-process and keeps the same bound, so a configured limit also bounds
//! what HTTP clients can hold open. The default (no flag) is unlimited, as etcd's.
//!
//! Invariant: a call's permit lives until its response body is finished or dropped.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::Semaphore;

/// The gateway's call slots, or `None` for no limit.
#[derive(Clone)]
pub(crate) struct Slots(Option<Arc<Semaphore>>);

impl Slots {
    pub(crate) fn new(max_concurrent_streams: Option<u32>) -> Slots {
        Slots(
            max_concurrent_streams
                // etcd's default is math.MaxUint32: no limit.
                .filter(|n| *n != u32::MAX)
                .map(|n| Arc::new(Semaphore::new((n as usize).min(Semaphore::MAX_PERMITS)))),
        )
    }
}

/// Waits for a slot, runs the call, and keeps the slot until the body ends.
pub(crate) async fn limit(State(slots): State<Slots>, req: Request, next: Next) -> Response {
    let Some(sem) = slots.0 else {
        return next.run(req).await;
    };
    let Ok(permit) = sem.acquire_owned().await else {
        return next.run(req).await;
    };
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
