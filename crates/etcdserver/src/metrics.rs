//! The core's Prometheus metrics, with etcd's names, help texts and buckets
//! (etcd's `etcdserver/metrics.go`), registered in the process-wide default registry that
//! the HTTP front exports at `/metrics`.
//!
//! Invariants: gauges mirror state the Raft and apply threads already keep (set where that
//! state changes, never computed at scrape time from locks); counters only grow.

use std::sync::LazyLock;

use prometheus::{
    register_counter, register_gauge, register_gauge_vec, register_histogram_vec, Counter, Gauge,
    GaugeVec, HistogramVec,
};

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for a duplicate name: a programming error caught by tests.
    r.unwrap_or_else(|e| panic!("registering a metric: {e}"))
}

pub static HAS_LEADER: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not."
    ))
});
pub static IS_LEADER: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise."
    ))
});
pub static IS_LEARNER: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise."
    ))
});
pub static LEADER_CHANGES: LazyLock<Counter> = LazyLock::new(|| {
    must(register_counter!(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen."
    ))
});
pub static PROPOSALS_COMMITTED: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed."
    ))
});
pub static PROPOSALS_APPLIED: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied."
    ))
});
pub static PROPOSALS_PENDING: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit."
    ))
});
pub static PROPOSALS_FAILED: LazyLock<Counter> = LazyLock::new(|| {
    must(register_counter!(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen."
    ))
});
pub static SLOW_APPLY: LazyLock<Counter> = LazyLock::new(|| {
    must(register_counter!(
        "etcd_server_slow_apply_total",
        "The total number of slow apply requests (likely overloaded from slow disk)."
    ))
});
pub static SERVER_ID: LazyLock<GaugeVec> = LazyLock::new(|| {
    must(register_gauge_vec!(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        &["server_id"]
    ))
});
pub static SERVER_VERSION: LazyLock<GaugeVec> = LazyLock::new(|| {
    must(register_gauge_vec!(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        &["server_version"]
    ))
});
pub static PEER_RTT: LazyLock<HistogramVec> = LazyLock::new(|| {
    must(register_histogram_vec!(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        &["To"],
        prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")
    ))
});
pub static DB_TOTAL_SIZE: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    ))
});
pub static DB_IN_USE_SIZE: LazyLock<Gauge> = LazyLock::new(|| {
    must(register_gauge!(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes."
    ))
});

/// Registers every metric with its initial value (so a scrape before the first change
/// still lists it, as etcd's do).
pub fn init(member_id: u64, version: &str) {
    HAS_LEADER.set(0.0);
    IS_LEADER.set(0.0);
    IS_LEARNER.set(0.0);
    LEADER_CHANGES.inc_by(0.0);
    PROPOSALS_COMMITTED.set(0.0);
    PROPOSALS_APPLIED.set(0.0);
    PROPOSALS_PENDING.set(0.0);
    PROPOSALS_FAILED.inc_by(0.0);
    SLOW_APPLY.inc_by(0.0);
    SERVER_ID
        .with_label_values(&[&format!("{member_id:x}")])
        .set(1.0);
    SERVER_VERSION.with_label_values(&[version]).set(1.0);
    DB_TOTAL_SIZE.set(0.0);
    DB_IN_USE_SIZE.set(0.0);
    LazyLock::force(&PEER_RTT);
    oxcd_storage::metrics::init();
    oxcd_mvcc::metrics::init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_is_exported_under_etcds_name() {
        super::init(0x8e9e05c52164694d, "3.5.0");
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for n in [
            "etcd_server_has_leader",
            "etcd_server_is_leader",
            "etcd_server_leader_changes_seen_total",
            "etcd_server_proposals_committed_total",
            "etcd_server_proposals_applied_total",
            "etcd_server_proposals_pending",
            "etcd_server_proposals_failed_total",
            "etcd_server_id",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_mvcc_db_total_size_in_use_in_bytes",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
    }
}
