//! The MVCC store's Prometheus metrics, with etcd's names and help texts (etcd's
//! `mvcc/metrics.go`), in the process-wide default registry the HTTP front exports.
//!
//! Invariants: the op counters count applied requests (a txn counts once as a txn and once
//! per op inside it, as etcd's); the keys gauge is the index's size, set at publish.

use std::sync::LazyLock;

use prometheus::{register_counter, register_gauge, Counter, Gauge};

macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal) => {
        pub static $name: LazyLock<Counter> = LazyLock::new(|| {
            register_counter!($metric, $help).expect(concat!("registering ", $metric))
        });
    };
}

counter!(
    RANGE_TOTAL,
    "etcd_mvcc_range_total",
    "Total number of ranges seen by this member."
);
counter!(
    PUT_TOTAL,
    "etcd_mvcc_put_total",
    "Total number of puts seen by this member."
);
counter!(
    DELETE_TOTAL,
    "etcd_mvcc_delete_total",
    "Total number of deletes seen by this member."
);
counter!(
    TXN_TOTAL,
    "etcd_mvcc_txn_total",
    "Total number of txns seen by this member."
);

pub static KEYS_TOTAL: LazyLock<Gauge> = LazyLock::new(|| {
    register_gauge!("etcd_debugging_mvcc_keys_total", "Total number of keys.")
        .expect("registering etcd_debugging_mvcc_keys_total")
});

/// Registers the metrics at zero, so a scrape before the first request lists them.
pub fn init() {
    for c in [&RANGE_TOTAL, &PUT_TOTAL, &DELETE_TOTAL, &TXN_TOTAL] {
        c.inc_by(0.0);
    }
    LazyLock::force(&KEYS_TOTAL);
}
