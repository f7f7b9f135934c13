//! The workloads. Each takes a [`crate::Ctx`] and its options and returns one
//! [`crate::report::Report`]; setup work (preloading, creating watchers and leases) is
//! bounded by the same deadline but not measured.

pub mod kv;
pub mod lease;
pub mod stm;
pub mod watch;
