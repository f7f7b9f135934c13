//! The robustness suite's cluster: an [`oxcd_testkit::Cluster`] of the real `oxcd` binary
//! (`$OXCD_BIN`, else `target/debug/oxcd`) with fast timeouts and frequent snapshots, so
//! faults cause elections and snapshot transfers within a short scenario. With
//! `OXCD_TEST_SERVER=etcd` the same scenarios run against Debian's etcd, which calibrates the
//! checkers on a server known to be correct.
//!
//! Invariants (see `oxcd_testkit::cluster`): only children the harness spawned are
//! signalled, by PID, and all are killed on drop; with more than one member every peer link
//! goes through the fault-injecting proxy; each member slot keeps a data generation that
//! changes only when its data dir is wiped (remove/re-add).

use std::time::Duration;

pub use oxcd_testkit::status::lazy_channel as channel;
pub use oxcd_testkit::{Cluster, ClusterOpts, ServerKind};

/// The suite's settings for a cluster of `members`.
pub fn opts(members: usize) -> ClusterOpts {
    ClusterOpts {
        kind: ServerKind::from_env(),
        oxcd_bin: None,
        proxy: members > 1,
        heartbeat_ms: 50,
        election_ms: 500,
        snapshot_count: Some(200),
        catchup_entries: Some(100),
        token: "oxcd-robustness".into(),
        status_timeout: Duration::from_secs(2),
        start_wait: Duration::from_secs(30),
        ..ClusterOpts::new(members)
    }
}

/// Starts a cluster of `members` and waits (bounded) for an agreed leader.
pub fn start(name: &str, members: usize) -> Result<Cluster, String> {
    Cluster::try_start(&format!("rb-{name}"), opts(members))
}
