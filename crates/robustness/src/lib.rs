//! oxcd robustness suite (issue 7): random concurrent traffic against a 1- or 3-member
//! cluster of the real `oxcd` binary while faults are injected; every operation is recorded
//! with its invoke/return times and result, then the history is checked.
//!
//! Layout:
//! - [`cluster`]: the suite's cluster settings over `oxcd_testkit`, which spawns and
//!   signals member processes (kill -9, SIGSTOP/SIGCONT, restart, remove/re-add);
//!   [`proxy`]: `oxcd_testkit`'s fault-injecting TCP proxy on peer links (partitions,
//!   delay, loss).
//! - [`history`]: the recorded operations; [`client`]: a recording client over the raw
//!   gRPC API; [`traffic`]: the traffic profiles; [`watcher`]: recording watchers.
//! - [`faults`]: fault injectors ([`failpoints`]: crashes at the server's fail points);
//!   [`scenario`]: runs one scenario end to end.
//! - Checkers: [`wgl`] (generic Wing–Gong–Lowe search + history shrinking),
//!   [`register`] (per-key register model for WGL), [`replay`] (revision-order and
//!   state-replay check), [`watchcheck`] (watch guarantees), [`serializable`]; [`coverage`]
//!   fails a run that exercised too little for the checks to mean anything.
//!
//! Invariants of the suite as a whole:
//! - Only processes started by the harness are ever signalled, always by PID, also on drop.
//! - Every loop is bounded in iterations or time; every RPC has a timeout.
//! - Servers and proxies listen on 127.0.0.1 only.
//! - Every value written by traffic is unique (client id + sequence number), so an observed
//!   value identifies the one operation that wrote it.

pub mod client;
pub mod cluster;
pub mod coverage;
pub mod failpoints;
pub mod faults;
pub mod history;
pub mod register;
pub mod replay;
pub mod scenario;
pub mod serializable;
pub mod traffic;
pub mod watchcheck;
pub mod watcher;
pub mod wgl;

pub use oxcd_testkit::proxy;
