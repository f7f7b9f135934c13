//! The oxcd binary's integration tests, one binary (`cargo test -p <crate> --test it`), one module per
//! concern; shared helpers live in their own modules.

mod cluster_harness;
mod common;
mod crash_support;
mod watch_support;

mod auth;
mod auth_enable_load;
mod auth_model;
mod cluster_clients;
mod cluster_failover;
mod cluster_membership;
mod cluster_partition;
mod cluster_recovery;
mod cluster_snapshot;
mod corruption;
mod crash;
mod disk_faults;
mod errors;
mod etcdctl_kv;
mod gateway_curl;
mod kv_client;
mod lease_etcdctl;
mod lease_grpc;
mod lease_restart;
mod lock_election;
mod maintenance;
mod range_stream;
mod require_leader;
mod snapshot_restore;
mod tls;
mod watch_checker;
mod watch_clients;
mod watch_etcdctl;
mod watch_grpc;
