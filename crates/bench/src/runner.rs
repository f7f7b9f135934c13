//! The closed-loop load driver shared by every workload: op tickets, pacing, deadlines and
//! per-worker latency/error recording.
//!
//! Invariants:
//! - [`Pace::next`] hands out each op index in `0..total` at most once, never after the
//!   deadline, and (with a rate) not before `start + index / rate`; so every loop built on it
//!   ends after at most `total` ops and by the deadline.
//! - [`Pace::bounded`] cuts any in-flight future at the deadline ([`OpError::Timeout`]),
//!   so a stuck server cannot keep a run alive.
//! - A [`Recorder`] counts every recorded op exactly once, as success (latency in the
//!   histogram) or as an error (by gRPC code name); recorders merge losslessly.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::time::Instant as TokioInstant;

/// Highest latency the histograms track, in microseconds (larger values are clamped).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Why one op failed.
#[derive(Debug)]
pub enum OpError {
    /// The client library (or the server through it) returned an error.
    Rpc(oxcd_client::Error),
    /// The run's deadline passed while the op was in flight.
    Timeout,
}

impl OpError {
    /// The key errors are counted under: the gRPC code name, `Timeout`, or the client
    /// error's kind.
    pub fn code(&self) -> String {
        match self {
            OpError::Timeout => "Timeout".to_string(),
            OpError::Rpc(e) => match e.code() {
                Some(c) => format!("{c:?}"),
                None => match e {
                    oxcd_client::Error::LeaseExpired(_) => "LeaseExpired".to_string(),
                    oxcd_client::Error::WatchCanceled(_) => "WatchCanceled".to_string(),
                    oxcd_client::Error::StreamClosed(_) => "StreamClosed".to_string(),
                    _ => "ClientError".to_string(),
                },
            },
        }
    }
}

impl From<oxcd_client::Error> for OpError {
    fn from(e: oxcd_client::Error) -> Self {
        OpError::Rpc(e)
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Rpc(e) => write!(f, "{e}"),
            OpError::Timeout => f.write_str("run deadline reached"),
        }
    }
}

/// Op tickets for one measured phase.
#[derive(Debug)]
pub struct Pace {
    next: AtomicU64,
    total: u64,
    start: Instant,
    deadline: Instant,
    /// Ops per second over all workers; 0 = unlimited.
    rate: f64,
}

impl Pace {
    /// Tickets `0..total`, starting now, bounded by `deadline`.
    pub fn new(total: u64, deadline: Instant, rate: f64) -> Self {
        Pace {
            next: AtomicU64::new(0),
            total,
            start: Instant::now(),
            deadline,
            rate,
        }
    }

    /// The next op index, after waiting for its rate slot; `None` once `total` ops were
    /// handed out or the deadline passed.
    pub async fn next(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.total {
            return None;
        }
        if self.rate > 0.0 {
            let at = self.start + Duration::from_secs_f64(i as f64 / self.rate);
            if at >= self.deadline {
                return None;
            }
            tokio::time::sleep_until(TokioInstant::from_std(at)).await;
        }
        (Instant::now() < self.deadline).then_some(i)
    }

    /// Run `fut`, giving up at the deadline.
    pub async fn bounded<T, E, F>(&self, fut: F) -> Result<T, OpError>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<OpError>,
    {
        match tokio::time::timeout_at(TokioInstant::from_std(self.deadline), fut).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(OpError::Timeout),
        }
    }
}

/// A latency histogram in microseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Record a duration (clamped to the histogram's range).
pub fn record_duration(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    h.record(us).expect("value clamped into range");
}

/// Successes (with latencies) and errors of one worker, or of a merged run.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latencies of successful ops, in microseconds.
    pub hist: Histogram<u64>,
    /// Failed ops by error code.
    pub errors: BTreeMap<String, u64>,
    /// First few distinct error messages (for diagnosis).
    pub samples: Vec<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: new_histogram(),
            errors: BTreeMap::new(),
            samples: Vec::new(),
        }
    }
}

impl Recorder {
    /// Record an op that started at `start` and ended now.
    pub fn record<T>(&mut self, start: Instant, res: &Result<T, OpError>) {
        match res {
            Ok(_) => record_duration(&mut self.hist, start.elapsed()),
            Err(e) => self.record_error(e),
        }
    }

    /// Record a failed op.
    pub fn record_error(&mut self, e: &OpError) {
        *self.errors.entry(e.code()).or_default() += 1;
        if self.samples.len() < 3 {
            let msg = e.to_string();
            if !self.samples.contains(&msg) {
                self.samples.push(msg);
            }
        }
    }

    /// Successful ops.
    pub fn ok(&self) -> u64 {
        self.hist.len()
    }

    /// Failed ops.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Add another recorder's counts.
    pub fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for s in &other.samples {
            if self.samples.len() < 3 && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }
}

/// Spawn `n` workers built by `make(worker_index)` and collect their results in order.
pub async fn run_workers<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|w| tokio::spawn(make(w))).collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        match h.await {
            Ok(t) => out.push(t),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// Merge worker recorders into one.
pub fn merge_all<'a>(recs: impl IntoIterator<Item = &'a Recorder>) -> Recorder {
    let mut all = Recorder::default();
    for r in recs {
        all.merge(r);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pace_hands_out_each_ticket_once() {
        let pace = std::sync::Arc::new(Pace::new(
            100,
            Instant::now() + Duration::from_secs(10),
            0.0,
        ));
        let got = run_workers(4, |_| {
            let pace = pace.clone();
            async move {
                let mut v = Vec::new();
                while let Some(i) = pace.next().await {
                    v.push(i);
                }
                v
            }
        })
        .await;
        let mut all: Vec<u64> = got.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn pace_stops_at_deadline_and_rate_limits() {
        let pace = Pace::new(1_000_000, Instant::now() + Duration::from_millis(200), 50.0);
        let mut n = 0;
        while pace.next().await.is_some() {
            n += 1;
        }
        assert!((5..=12).contains(&n), "{n} tickets at 50/s in 0.2 s");
        let r: Result<(), OpError> = pace
            .bounded(std::future::pending::<Result<(), OpError>>())
            .await;
        assert!(matches!(r, Err(OpError::Timeout)));
    }

    #[test]
    fn recorder_counts_and_merges() {
        let mut a = Recorder::default();
        a.record(Instant::now(), &Ok::<(), OpError>(()));
        a.record_error(&OpError::Timeout);
        let mut b = Recorder::default();
        b.record_error(&OpError::Rpc(tonic::Status::unavailable("x").into()));
        b.record_error(&OpError::Timeout);
        a.merge(&b);
        assert_eq!((a.ok(), a.failed()), (1, 3));
        assert_eq!(a.errors["Timeout"], 2);
        assert_eq!(a.errors["Unavailable"], 1);
    }
}
