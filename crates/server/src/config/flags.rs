//! The clap definition of etcd 3.5's server flags and etcd-style argv handling.
//!
//! Invariants: [`Flags`] holds every implemented flag as raw text with etcd's name and
//! default (typed by `validate::Builder`); [`command`] adds the recognised-but-unsupported
//! and recognised-but-ignored flags, hidden from `--help`; every flag taking a value accepts
//! values starting with `-`; [`normalize_go_flags`] rewrites only known single-dash long
//! flags, never values, and stops at `--`.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::{Arg, ArgAction, Command, CommandFactory, Parser};

use super::{DEFAULT_INITIAL_CLUSTER, DEFAULT_NAME};

/// etcd 3.5's server flags that oxcd implements. Every field is the raw text;
/// [`Builder`] turns it into typed values with etcd's error wording.
#[derive(Debug, Parser)]
#[command(
    name = "oxcd",
    about = "oxcd: a drop-in replacement for the etcd v3 server",
    disable_version_flag = true,
    args_override_self = true
)]
pub(super) struct Flags {
    /// Human-readable name for this member.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    pub(super) name: String,
    /// Path to the data directory [default: <name>.oxcd].
    #[arg(long, value_name = "DIR")]
    pub(super) data_dir: Option<String>,
    /// Path to the dedicated WAL directory.
    #[arg(long, value_name = "DIR")]
    pub(super) wal_dir: Option<String>,
    /// List of URLs to listen on for client traffic.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2379")]
    pub(super) listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2379")]
    pub(super) advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2380")]
    pub(super) listen_peer_urls: String,
    /// List of URLs to listen on for HTTP-only client traffic (the JSON gateway, health,
    /// metrics); the client URLs then serve gRPC only.
    #[arg(long, value_name = "URLS", default_value = "")]
    pub(super) listen_client_http_urls: String,
    /// List of URLs to listen on for the /metrics and /health endpoints.
    #[arg(long, value_name = "URLS", default_value = "")]
    pub(super) listen_metrics_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2380")]
    pub(super) initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (name=url,name=url,...).
    #[arg(long, value_name = "MEMBERS", default_value = DEFAULT_INITIAL_CLUSTER)]
    pub(super) initial_cluster: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, value_name = "TOKEN", default_value = "etcd-cluster")]
    pub(super) initial_cluster_token: String,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, value_name = "STATE", default_value = "new")]
    pub(super) initial_cluster_state: String,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, value_name = "BYTES", default_value = "1572864")]
    pub(super) max_request_bytes: String,
    /// Specify auth token type and its options ('simple' or
    /// 'jwt,pub-key=<path>,priv-key=<path>,sign-method=<alg>,ttl=<duration>').
    #[arg(long, value_name = "TOKEN", default_value = "simple")]
    pub(super) auth_token: String,
    /// The lifetime in seconds of a simple auth token.
    #[arg(long, value_name = "SECONDS", default_value = "300")]
    pub(super) auth_token_ttl: String,
    /// Cost for hashing auth passwords (4..=31).
    #[arg(long, value_name = "COST", default_value = "10")]
    pub(super) bcrypt_cost: String,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, value_name = "N", default_value = "128")]
    pub(super) max_txn_ops: String,
    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, value_name = "N", default_value = "4294967295")]
    pub(super) max_concurrent_streams: String,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, value_name = "N", default_value = "100000")]
    pub(super) snapshot_count: String,
    /// Number of entries for a slow follower to catch up after compacting the raft storage entries.
    #[arg(
        long,
        value_name = "N",
        default_value = "5000",
        alias = "experimental-snapshot-catchup-entries"
    )]
    pub(super) snapshot_catchup_entries: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, value_name = "MS", default_value = "100")]
    pub(super) heartbeat_interval: String,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, value_name = "MS", default_value = "1000")]
    pub(super) election_timeout: String,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, value_name = "BYTES", default_value = "0")]
    pub(super) quota_backend_bytes: String,
    /// Force to create a new one-member cluster.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub(super) force_new_cluster: String,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    pub(super) strict_reconfig_check: String,
    /// Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    pub(super) pre_vote: String,
    /// Configures log level: debug, info, warn, error, dpanic, panic, fatal.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub(super) log_level: String,
    /// Currently only supports 'zap' for structured logging.
    #[arg(long, value_name = "LOGGER", default_value = "zap")]
    pub(super) logger: String,
    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.
    #[arg(long, value_name = "OUTPUTS", default_value = "default")]
    pub(super) log_outputs: String,
    /// Duration of periodic watch progress notifications.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        alias = "watch-progress-notify-interval"
    )]
    pub(super) experimental_watch_progress_notify_interval: String,
    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub(super) experimental_initial_corrupt_check: String,
    /// Duration of time between cluster corruption check passes (0: off).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0s",
        alias = "corrupt-check-time"
    )]
    pub(super) experimental_corrupt_check_time: String,
    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub(super) experimental_enable_lease_checkpoint: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto compaction.
    #[arg(long, value_name = "RETENTION", default_value = "0")]
    pub(super) auto_compaction_retention: String,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, value_name = "MODE", default_value = "periodic")]
    pub(super) auto_compaction_mode: String,
    /// Enable runtime profiling data via HTTP server (accepted, has no effect in oxcd).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub(super) enable_pprof: String,
    /// Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.
    #[arg(long, value_name = "LEVEL", default_value = "basic")]
    pub(super) metrics: String,
    /// Serve the built-in web dashboard at /ui/ on the client and metrics listeners (oxcd only).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    pub(super) enable_ui: String,
    /// Path to the server configuration file (etcd's YAML keys); other flags and ETCD_*
    /// environment variables are then ignored.
    #[arg(long, value_name = "FILE")]
    pub(super) config_file: Option<String>,
    /// Print the version and exit.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    pub(super) version: String,
}

/// An etcd flag oxcd recognises but does not implement.
pub(super) struct Unsupported {
    pub(super) name: &'static str,
    /// Boolean flag (`--flag` / `--flag=false`) rather than one taking a value.
    pub(super) boolean: bool,
    /// Values that mean "feature off" and are therefore accepted (besides
    /// `false` for boolean flags and the empty string).
    pub(super) off: &'static [&'static str],
    pub(super) reason: &'static str,
}

const DISCOVERY: &str = "discovery is not implemented; use --initial-cluster";
const PROXY: &str = "the v2 proxy is not implemented";

const fn unsupported(name: &'static str, boolean: bool, reason: &'static str) -> Unsupported {
    Unsupported {
        name,
        boolean,
        off: &[],
        reason,
    }
}

/// Recognised, rejected when enabled.
pub(super) const UNSUPPORTED: &[Unsupported] = &[
    unsupported("discovery", false, DISCOVERY),
    unsupported("discovery-srv", false, DISCOVERY),
    unsupported("discovery-srv-name", false, DISCOVERY),
    unsupported("discovery-proxy", false, DISCOVERY),
    // The fallback only matters with --discovery (refused above): its values are accepted.
    Unsupported {
        name: "discovery-fallback",
        boolean: false,
        off: &["exit", "proxy"],
        reason: DISCOVERY,
    },
    Unsupported {
        name: "proxy",
        boolean: false,
        off: &["off"],
        reason: PROXY,
    },
    unsupported("enable-v2", true, "the v2 API is not implemented"),
    unsupported(
        "experimental-enable-v2v3",
        false,
        "the v2 API is not implemented",
    ),
];

/// Recognised etcd tuning flags that have no meaning in oxcd: accepted with a
/// warning. `(name, boolean)`.
pub(super) const IGNORED: &[(&str, bool)] = &[
    // The v2 proxy's timings (the proxy itself is refused above).
    ("proxy-failure-wait", false),
    ("proxy-refresh-interval", false),
    ("proxy-dial-timeout", false),
    ("proxy-write-timeout", false),
    ("proxy-read-timeout", false),
    // HTTP CORS / Host checks of etcd's v2 and gateway HTTP endpoints.
    ("cors", false),
    ("host-whitelist", false),
    ("max-snapshots", false),
    ("max-wals", false),
    ("backend-batch-interval", false),
    ("backend-batch-limit", false),
    ("backend-bbolt-freelist-type", false),
    ("grpc-keepalive-min-time", false),
    ("grpc-keepalive-interval", false),
    ("grpc-keepalive-timeout", false),
    ("initial-election-tick-advance", true),
    ("unsafe-no-fsync", true),
    ("enable-grpc-gateway", true),
    ("enable-log-rotation", true),
    ("log-rotation-config-json", false),
    ("socket-reuse-port", true),
    ("socket-reuse-address", true),
    ("experimental-compact-hash-check-enabled", true),
    ("experimental-compact-hash-check-time", false),
    ("experimental-compaction-batch-limit", false),
    ("experimental-warning-apply-duration", false),
    ("experimental-bootstrap-defrag-threshold-megabytes", false),
    ("experimental-wait-cluster-ready-timeout", false),
    ("experimental-memory-mlock", true),
    ("warning-unary-request-duration", false),
    ("experimental-backend-bbolt-freelist-type", false),
    // capnslog's per-package levels (etcd 3.4, removed in 3.5).
    ("log-package-levels", false),
    // etcd 3.4's deprecated `--debug` (= `--log-level=debug`) is handled by the builder.
    ("debug", true),
    ("experimental-warning-unary-request-duration", false),
];

/// etcd's TLS flags, read by the builder into `oxcd_tls::TlsInfo`. `(name, boolean)`.
pub(super) const TLS_FLAGS: &[(&str, bool)] = &[
    ("cert-file", false),
    ("key-file", false),
    ("client-cert-auth", true),
    ("client-crl-file", false),
    ("client-cert-allowed-hostname", false),
    ("trusted-ca-file", false),
    ("auto-tls", true),
    ("peer-cert-file", false),
    ("peer-key-file", false),
    ("peer-client-cert-auth", true),
    ("peer-trusted-ca-file", false),
    ("peer-cert-allowed-cn", false),
    ("peer-cert-allowed-hostname", false),
    ("peer-auto-tls", true),
    ("peer-crl-file", false),
    ("cipher-suites", false),
    ("tls-min-version", false),
    ("tls-max-version", false),
    ("self-signed-cert-validity", false),
    ("experimental-peer-skip-client-san-verification", true),
];

/// The full command: [`Flags`] plus the recognised-but-unsupported and
/// recognised-but-ignored flags (hidden from `--help`). Every flag that takes a
/// value accepts values starting with `-`, as Go's `flag` package does.
pub(super) fn command() -> Command {
    let cmd = Flags::command().mut_args(|arg| {
        if arg.is_require_equals_set() {
            arg
        } else {
            arg.allow_hyphen_values(true)
        }
    });
    let compat = UNSUPPORTED
        .iter()
        .map(|u| (u.name, u.boolean))
        .chain(IGNORED.iter().copied())
        .chain(TLS_FLAGS.iter().copied());
    cmd.args(compat.map(|(name, boolean)| {
        let arg = Arg::new(name).long(name).hide(true).action(ArgAction::Set);
        if boolean {
            arg.num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
        } else {
            arg.allow_hyphen_values(true)
        }
    }))
}

/// All long names of `arg` (primary first, then aliases).
pub(super) fn long_names(arg: &Arg) -> impl Iterator<Item = &str> {
    arg.get_long()
        .into_iter()
        .chain(arg.get_all_aliases().into_iter().flatten())
}

/// Rewrites Go-style single-dash long flags (`-name n1`, `-data-dir=x`) to
/// `--name n1`, `--data-dir=x` for the flags `cmd` knows, leaving values alone
/// (`--name -data-dir` keeps `-data-dir` as the value) and stopping at `--`.
pub(super) fn normalize_go_flags(cmd: &Command, args: Vec<OsString>) -> Vec<OsString> {
    // Known long name -> whether it consumes the next argument as its value.
    let mut known: HashMap<&str, bool> = HashMap::from([("help", false)]);
    for arg in cmd.get_arguments() {
        let separate_value = !arg.is_require_equals_set() && arg.get_action().takes_values();
        known.extend(long_names(arg).map(|name| (name, separate_value)));
    }

    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next()); // argv[0]
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let Some(body) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            out.push(arg);
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, _)) => (name, true),
            None => (body, false),
        };
        match known.get(name) {
            Some(&separate_value) => {
                out.push(if text.starts_with("--") {
                    arg.clone()
                } else {
                    format!("-{text}").into()
                });
                if separate_value && !inline_value {
                    out.extend(args.next());
                }
            }
            None => out.push(arg),
        }
    }
    out
}
