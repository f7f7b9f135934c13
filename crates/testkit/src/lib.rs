//! oxcd-testkit: the harness shared by the server's integration tests and the robustness
//! suite. It starts real server processes (oxcd, or etcd for compatibility runs) on
//! loopback with free ports and temporary directories, and injects process and network
//! faults.
//!
//! Layout:
//! - [`ports`]: free-port allocation; [`bins`]: locating oxcd/etcd/etcdctl/python;
//!   [`cmd`]: bounded command runs and the etcdctl runner.
//! - [`process`]: one spawned process with its log file, signalled by PID, killed on drop;
//!   [`flags`]: the etcd-style command line of a member.
//! - [`server`]: a single-member [`TestServer`]; [`cluster`]: multi-member [`Cluster`]s;
//!   [`proxy`]: the fault-injecting TCP proxy for peer links; [`status`]: Maintenance.Status
//!   probes; [`util`]: polling and test serialisation.
//! - [`skip`]: the skip policy (fail unless `OXCD_ALLOW_SKIP=1`, never skip in CI);
//!   [`power_loss`]: the `crash-journal` build and simulated power loss of its WAL.
//!
//! Invariants of the kit as a whole:
//! - Only processes it spawned are ever signalled, always by PID, and all of them are killed
//!   on drop; children also get `PR_SET_PDEATHSIG`, so start them from the test's own thread
//!   (never from `spawn_blocking` pool threads).
//! - Every wait is bounded in time; every loop is bounded in count or time.
//! - Servers and proxies listen on 127.0.0.1 only.

pub mod bins;
pub mod cluster;
pub mod cmd;
pub mod flags;
pub mod ports;
pub mod power_loss;
pub mod process;
pub mod proxy;
pub mod rng;
pub mod server;
pub mod skip;
pub mod status;
pub mod util;

pub use bins::{etcdctl_bin, oxcd_bin, python_bin, workspace_root, ServerKind};
pub use cluster::{Acked, Cluster, ClusterOpts, Member, SpawnExtras, WriterReport};
pub use cmd::{describe_status, etcdctl_at, run_with_timeout, CmdOutput, EtcdctlTimeouts};
pub use ports::{free_port, free_ports};
pub use proxy::{LinkFault, Proxy};
pub use server::TestServer;
pub use skip::{skip_allowed, skip_or_fail};
pub use status::MemberStatus;
pub use util::{is_no_quorum_error, poll, serial};
