//! Single-member harness of the integration tests: a thin wrapper over
//! [`oxcd_testkit::TestServer`] that supplies the oxcd binary cargo built for these tests
//! (`env!("CARGO_BIN_EXE_oxcd")`; `OXCD_BIN` still overrides it).
//!
//! The server is oxcd or the real etcd (`OXCD_TEST_SERVER=oxcd|etcd`, default oxcd), on
//! free loopback ports with a temporary data dir; it is killed by PID on drop and gets
//! `PR_SET_PDEATHSIG`, so start servers from the test's own thread (or `block_in_place`),
//! never from `spawn_blocking` pool threads. See `oxcd_testkit::bins` for the other
//! environment overrides (`OXCD_ETCD_BIN`, `OXCD_ETCDCTL`, `OXCD_PYTHON`).

pub mod kvreq;
pub mod prom;

use std::ops::{Deref, DerefMut};
use std::path::Path;

pub use oxcd_testkit::server::{channel, etcd_client};
pub use oxcd_testkit::{describe_status, etcdctl_bin, run_with_timeout, CmdOutput, ServerKind};

/// The oxcd binary cargo built for these tests.
fn oxcd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oxcd"))
}

/// Which server the tests run against (`OXCD_TEST_SERVER`).
pub fn server_kind() -> ServerKind {
    ServerKind::from_env()
}

/// The failpoints build of oxcd (`OXCD_FAILPOINTS_BIN`, built by the test command); `None`
/// only where skipping is allowed (never in CI: there its absence fails `test`).
pub fn failpoints_bin(test: &str) -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("OXCD_FAILPOINTS_BIN")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file());
    if bin.is_none() {
        oxcd_testkit::skip_or_fail(
            test,
            "OXCD_FAILPOINTS_BIN (the failpoints build of oxcd) is not set or missing",
        );
    }
    bin
}

/// The reviewed allow-list of tests that cannot run against etcd, each with its reason.
const OXCD_ONLY: &str = include_str!("../oxcd_only.txt");

/// Marks `test` (its `module::name` path) as oxcd-only. It must be on the allow-list, and it
/// fails when run against etcd: the compat pass skips listed tests, so nothing passes there
/// by not running.
pub fn oxcd_only(test: &str) {
    let listed = OXCD_ONLY
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.split_whitespace().next() == Some(test));
    assert!(
        listed,
        "{test} is oxcd-only but not on tests/it/oxcd_only.txt, the reviewed allow-list"
    );
    let kind = server_kind();
    assert_eq!(
        kind,
        ServerKind::Oxcd,
        "{test} is oxcd-only (tests/it/oxcd_only.txt gives the reason) and cannot run on etcd"
    );
}

/// A single-member server; derefs to [`oxcd_testkit::TestServer`].
pub struct TestServer(oxcd_testkit::TestServer);

impl TestServer {
    /// Starts a server with the default flags and waits until it is ready.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags (e.g. `["--max-txn-ops", "3"]`) and waits until ready.
    pub fn start_with(args: &[&str]) -> TestServer {
        TestServer(oxcd_testkit::TestServer::start_with(oxcd(), args))
    }
}

impl Deref for TestServer {
    type Target = oxcd_testkit::TestServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
