//! The result of one workload run: throughput, latency percentiles and errors, printed as
//! text or as one JSON object.
//!
//! Invariants:
//! - `ops` counts successful ops only and `ops_per_sec = ops / elapsed_s`; failed ops are
//!   in `errors` (by gRPC code), so `ops + errors.values().sum()` is every op attempted.
//! - Latencies are reported in milliseconds, from the same HDR histogram as `ops` (so the
//!   percentiles describe exactly the counted ops).
//! - The JSON form is one object on one line; its field names are stable (compare.sh and
//!   `oxcd-bench table` read them).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::runner::Recorder;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Fastest op.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest op.
    pub max: f64,
}

impl Latency {
    /// Summarize a microsecond histogram (all zeros when empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One workload's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Workload name (`put`, `range`, ...).
    pub workload: String,
    /// Ops asked for (`--total`, or the workload's own count).
    pub requested: u64,
    /// Successful ops.
    pub ops: u64,
    /// Wall time of the measured phase in seconds.
    pub elapsed_s: f64,
    /// `ops / elapsed_s`.
    pub ops_per_sec: f64,
    /// Latency of successful ops.
    pub latency_ms: Latency,
    /// Failed ops by error code.
    pub errors: BTreeMap<String, u64>,
    /// A few error messages, for diagnosis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
    /// Whether the run hit its `--timeout` before finishing.
    pub timed_out: bool,
    /// Workload-specific numbers (retries, events/s, per-kind latencies...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The options the run used.
    #[serde(default)]
    pub params: serde_json::Value,
}

impl Report {
    /// Build a report from a merged recorder.
    pub fn new(workload: &str, requested: u64, rec: &Recorder, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            workload: workload.to_string(),
            requested,
            ops: rec.ok(),
            elapsed_s: elapsed.as_secs_f64(),
            ops_per_sec: rec.ok() as f64 / secs,
            latency_ms: Latency::from_histogram(&rec.hist),
            errors: rec.errors.clone(),
            error_samples: rec.samples.clone(),
            timed_out: false,
            extra: BTreeMap::new(),
            params: serde_json::Value::Null,
        }
    }

    /// Add a workload-specific number.
    pub fn extra(&mut self, key: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.extra.insert(key.to_string(), v);
    }

    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }

    /// The report as human-readable text.
    pub fn to_text(&self) -> String {
        let l = &self.latency_ms;
        let mut s = format!(
            "Summary ({}):\n  Requested:\t{}\n  Succeeded:\t{}\n  Total:\t{:.4} secs.\n  \
             Requests/sec:\t{:.1}\n  Latency (ms):\tmin {:.3}  mean {:.3}  p50 {:.3}  p90 {:.3}  \
             p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            self.workload,
            self.requested,
            self.ops,
            self.elapsed_s,
            self.ops_per_sec,
            l.min,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
        if self.timed_out {
            s.push_str("  Stopped by --timeout before finishing.\n");
        }
        if !self.errors.is_empty() {
            s.push_str("  Errors:\n");
            for (code, n) in &self.errors {
                s.push_str(&format!("    {code}: {n}\n"));
            }
            for m in &self.error_samples {
                s.push_str(&format!("    e.g. {m}\n"));
            }
        }
        for (k, v) in &self.extra {
            s.push_str(&format!("  {k}:\t{v}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{record_duration, OpError};

    #[test]
    fn report_from_recorder() {
        let mut rec = Recorder::default();
        for ms in 1..=100u64 {
            record_duration(&mut rec.hist, Duration::from_millis(ms));
        }
        rec.record_error(&OpError::Timeout);
        let mut r = Report::new("put", 101, &rec, Duration::from_secs(2));
        r.extra("retries", 3);
        assert_eq!(r.ops, 100);
        assert!((r.ops_per_sec - 50.0).abs() < 1e-9);
        assert!((r.latency_ms.p50 - 50.0).abs() < 0.1, "{:?}", r.latency_ms);
        assert!((r.latency_ms.max - 100.0).abs() < 0.1);
        assert_eq!(r.errors["Timeout"], 1);
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back.latency_ms, r.latency_ms);
        assert_eq!(back.extra["retries"], 3);
        assert!(r.to_text().contains("Timeout: 1"));
    }
}
