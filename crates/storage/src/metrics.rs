//! The storage layer's Prometheus metrics, with etcd's names, help texts and buckets
//! (etcd's `wal/metrics.go` and `mvcc/backend/metrics.go`), in the process-wide default
//! registry the HTTP front exports at `/metrics`.
//!
//! Invariant: observed on the write path itself, around the call being timed.

use std::sync::LazyLock;

use prometheus::{register_histogram, Histogram};

fn buckets() -> Vec<f64> {
    // etcd: prometheus.ExponentialBuckets(0.001, 2, 14), 1 ms .. 8 s.
    prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

pub static WAL_FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        buckets()
    )
    .expect("registering etcd_disk_wal_fsync_duration_seconds")
});

pub static BACKEND_COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        buckets()
    )
    .expect("registering etcd_disk_backend_commit_duration_seconds")
});

/// Registers the metrics, so a scrape before the first write lists them.
pub fn init() {
    LazyLock::force(&WAL_FSYNC_SECONDS);
    LazyLock::force(&BACKEND_COMMIT_SECONDS);
}
