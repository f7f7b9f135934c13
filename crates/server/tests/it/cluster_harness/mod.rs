//! Multi-member cluster harness of the `cluster_*` integration tests: a thin wrapper over
//! [`oxcd_testkit::Cluster`] that supplies the oxcd binary cargo built for these tests
//! (`env!("CARGO_BIN_EXE_oxcd")`; `OXCD_BIN` still overrides it) and the cluster-sized
//! etcdctl timeouts.
//!
//! Invariants (see `oxcd_testkit::cluster`): every process is started from the test thread
//! and killed by PID on drop; every wait is bounded; on panic the members' log tails and
//! the proxy's events are printed and the temp dir is kept. Cluster tests in one test
//! binary run one at a time ([`serial`]).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

pub use oxcd_testkit::cmd::{parse_member_list, MemberRow};
pub use oxcd_testkit::process::SIGTERM;
pub use oxcd_testkit::{
    is_no_quorum_error, poll, python_bin, run_with_timeout, serial, CmdOutput, MemberStatus as St,
    ServerKind as Kind, SpawnExtras,
};

/// Generous bound for "eventually" conditions (leader elected, members converged).
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a member gets to become ready at cluster start.
pub const START_WAIT: Duration = Duration::from_secs(25);

/// Cluster options ([`Opts::new`]: 100 ms heartbeat, 1 s election, no proxy).
pub type Opts = oxcd_testkit::ClusterOpts;

/// `etcdctl` (API v3) against the given `host:port` endpoints.
pub fn etcdctl_at(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> CmdOutput {
    let t = oxcd_testkit::EtcdctlTimeouts::CLUSTER;
    oxcd_testkit::etcdctl_at(endpoints, args, stdin, t)
}

fn with_test_binary(mut opts: Opts) -> Opts {
    opts.oxcd_bin = Some(PathBuf::from(env!("CARGO_BIN_EXE_oxcd")));
    opts
}

/// A cluster; derefs to [`oxcd_testkit::Cluster`].
pub struct Cluster(oxcd_testkit::Cluster);

impl Cluster {
    /// Starts the cluster and waits until every member agrees on a leader.
    pub fn start(name: &str, opts: Opts) -> Cluster {
        Cluster(oxcd_testkit::Cluster::start(name, with_test_binary(opts)))
    }

    /// Prepares ports, dirs and the proxy, but spawns nothing.
    pub fn prepare(name: &str, opts: Opts) -> Cluster {
        Cluster(oxcd_testkit::Cluster::prepare(name, with_test_binary(opts)))
    }

    /// Connects an `etcd-client` to `url` (bounded).
    pub async fn connect(url: String) -> Result<etcd_client::Client, String> {
        oxcd_testkit::cluster::connect(url).await
    }
}

impl Deref for Cluster {
    type Target = oxcd_testkit::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
