//! Server configuration: etcd 3.5's command-line flags and `ETCD_*` environment
//! variables, so that scripts written for `etcd` start `oxcd` unchanged.
//!
//! # Invariants
//!
//! * Every supported flag has etcd 3.5's name and default, and can also be set
//!   through `ETCD_<FLAG_IN_UPPER_SNAKE>` (`--data-dir` ⇔ `ETCD_DATA_DIR`). An
//!   empty environment variable counts as unset (as in etcd). A flag given on the
//!   command line wins over its environment variable; the shadowed variable is
//!   reported in [`Config::warnings`].
//! * Flags are accepted in every form Go's `flag` package accepts: `-name v`,
//!   `-name=v`, `--name v`, `--name=v`; boolean flags take `--flag` or
//!   `--flag=<bool>` (never a separate value). Repeating a flag: the last wins.
//! * Nothing is silently dropped when it matters: etcd features oxcd does not
//!   implement yet (TLS, discovery, proxy, config file, v2 API, JWT tokens) are
//!   recognised and make parsing fail if they are *enabled* (set to anything
//!   but their "off" value). A few etcd tuning knobs with no meaning in oxcd
//!   are accepted with a warning. Anything else unknown is an error.
//! * A [`Config`] returned by [`Config::from_args`] has passed every check that
//!   depends on the flags alone: all URLs are `http://host:port` with no path,
//!   listen URLs bind to an IP or `localhost`, and the election timeout is at
//!   least 5 heartbeats. Checks that only apply when bootstrapping a fresh data
//!   directory (etcd ignores the `--initial-*` flags on restart) live in
//!   [`Config::verify_bootstrap`], which the caller runs only when no WAL exists.
//! * URL lists are de-duplicated and sorted by their etcd string form (as etcd's
//!   `UniqueURLs` does); use [`format_url`] to print a URL the way etcd does
//!   (`http://host:port`, no trailing slash, explicit port).
//!
//! Errors use etcd's wording where practical, e.g.
//! `invalid value "foo" for flag -listen-client-urls: ...` or
//! `invalid value "foo" for ETCD_LISTEN_CLIENT_URLS: ...`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use url::Url;

/// Prefix of the environment variables that mirror the flags.
const ENV_PREFIX: &str = "ETCD_";
/// etcd's default `--initial-cluster`; replaced by `<name>=<advertise peer urls>`
/// when only `--name` is changed (etcd's `UpdateDefaultClusterFromName`).
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
const DEFAULT_NAME: &str = "default";
/// etcd's `maxElectionMs`.
const MAX_ELECTION_MS: u64 = 50_000;

/// Why configuration failed, or that the user asked for `--help` / `--version`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` was given; the payload is the rendered help text (print it to stdout, exit 0).
    #[error("{0}")]
    Help(String),
    /// `--version` was given; print [`Config::version_text`] to stdout and exit 0.
    #[error("{}", Config::version_text())]
    Version,
    /// Malformed command line: unknown flag, missing value, stray argument.
    #[error("{0}")]
    Usage(clap::Error),
    /// A flag or environment variable holds a value that does not parse.
    #[error("invalid value {value:?} for {origin}: {reason}")]
    InvalidValue {
        /// The offending value, verbatim.
        value: String,
        /// `flag -<name>` or the `ETCD_*` variable name.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An etcd feature oxcd does not implement yet was switched on.
    #[error("{flag} is not supported yet by oxcd: {reason}")]
    Unsupported {
        /// The flag (and the environment variable, if that is where it came from).
        flag: String,
        /// Why oxcd refuses instead of ignoring it.
        reason: &'static str,
    },
    /// `--heartbeat-interval` or `--election-timeout` is zero.
    #[error("--{flag} must be >0 (set to 0ms)")]
    ZeroInterval {
        /// The flag's name, without dashes.
        flag: &'static str,
    },
    /// The election timeout is shorter than five heartbeats.
    #[error(
        "--election-timeout[{election_ms}ms] should be at least as 5 times as \
         --heartbeat-interval[{heartbeat_ms}ms]"
    )]
    ElectionTimeoutTooShort {
        /// `--election-timeout` in milliseconds.
        election_ms: u64,
        /// `--heartbeat-interval` in milliseconds.
        heartbeat_ms: u64,
    },
    /// The election timeout exceeds etcd's 50 s maximum.
    #[error(
        "--election-timeout[{election_ms}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
    )]
    ElectionTimeoutTooLong {
        /// `--election-timeout` in milliseconds.
        election_ms: u64,
    },
    /// `--listen-client-urls` was set but `--advertise-client-urls` was not.
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    AdvertiseClientUrlsRequired,
    /// A listen URL names a host other than an IP address or `localhost`.
    #[error("expected IP in URL for binding ({url})")]
    BindUrlNotIp {
        /// The URL, etcd-formatted.
        url: String,
    },
    /// Bootstrap: this member's `--name` is absent from `--initial-cluster`.
    #[error("couldn't find local name {name:?} in the initial cluster configuration")]
    LocalMemberMissing {
        /// This member's name.
        name: String,
    },
    /// Bootstrap: `--initial-advertise-peer-urls` disagrees with `--initial-cluster`.
    #[error("{0}")]
    PeerUrlsMismatch(String),
    /// Bootstrap: one peer URL is listed more than once in `--initial-cluster`.
    #[error("initial cluster {0} has duplicate url")]
    DuplicateClusterUrl(String),
}

impl ConfigError {
    /// The process exit code for this outcome: 0 for `--help`/`--version`, 2 for a
    /// malformed command line or value (as Go's `flag` package), 1 for the rest
    /// (etcd's "failed to verify flags").
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Help(_) | Self::Version => 0,
            Self::Usage(_) | Self::InvalidValue { .. } => 2,
            _ => 1,
        }
    }

    fn from_clap(err: clap::Error) -> Self {
        match err.kind() {
            clap::error::ErrorKind::DisplayHelp => Self::Help(err.render().to_string()),
            clap::error::ErrorKind::DisplayVersion => Self::Version,
            _ => Self::Usage(err),
        }
    }
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrapping a new cluster (`new`).
    New,
    /// Joining a running cluster (`existing`).
    Existing,
}

/// `--log-level` (zap's level names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `dpanic`
    DPanic,
    /// `panic`
    Panic,
    /// `fatal`
    Fatal,
}

impl LogLevel {
    /// The zap name, as accepted by `--log-level` and by `logging::init`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::DPanic => "dpanic",
            Self::Panic => "panic",
            Self::Fatal => "fatal",
        }
    }
}

/// One `--log-outputs` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// `stderr` (also what `default` means).
    Stderr,
    /// `stdout`
    Stdout,
}

/// `--metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    /// `basic`
    Basic,
    /// `extensive`
    Extensive,
}

/// `--auto-compaction-mode` together with a non-zero `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history (an integer retention means hours, as in etcd).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// The validated server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--name`: this member's human-readable name.
    pub name: String,
    /// `--data-dir`; defaults to `<name>.oxcd` (etcd uses `<name>.etcd`).
    pub data_dir: PathBuf,
    /// `--wal-dir`; `None` means the default location inside the data directory.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<Url>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster` as `(name, url)` pairs in the order given (a name may repeat).
    /// See [`Config::initial_cluster_members`] for the grouped view.
    pub initial_cluster: Vec<(String, Url)>,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// `--snapshot-catchup-entries` (alias `--experimental-snapshot-catchup-entries`).
    pub snapshot_catchup_entries: u64,
    /// `--heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// `--election-timeout`.
    pub election_timeout: Duration,
    /// `--quota-backend-bytes`: 0 means the default (2 GiB), negative disables the quota (as etcd).
    pub quota_backend_bytes: i64,
    /// `--force-new-cluster`.
    pub force_new_cluster: bool,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--pre-vote`.
    pub pre_vote: bool,
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--log-outputs`, de-duplicated, never empty.
    pub log_outputs: Vec<LogOutput>,
    /// `--experimental-watch-progress-notify-interval` (alias `--watch-progress-notify-interval`).
    pub watch_progress_notify_interval: Duration,
    /// `--experimental-enable-lease-checkpoint`.
    pub enable_lease_checkpoint: bool,
    /// `--auto-compaction-mode` + `--auto-compaction-retention`; `None` when disabled (retention 0).
    pub auto_compaction: Option<AutoCompaction>,
    /// `--enable-pprof` (accepted; oxcd has no pprof endpoint).
    pub enable_pprof: bool,
    /// `--metrics`.
    pub metrics: Metrics,
    /// Problems worth logging once logging is up (shadowed or unrecognised
    /// environment variables, flags accepted but without effect).
    pub warnings: Vec<String>,
}

/// etcd 3.5's server flags that oxcd implements. Every field is the raw text;
/// [`Builder`] turns it into typed values with etcd's error wording.
#[derive(Debug, Parser)]
#[command(
    name = "oxcd",
    about = "oxcd: a drop-in replacement for the etcd v3 server",
    disable_version_flag = true,
    args_override_self = true
)]
struct Flags {
    /// Human-readable name for this member.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    name: String,
    /// Path to the data directory [default: <name>.oxcd].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Path to the dedicated WAL directory.
    #[arg(long, value_name = "DIR")]
    wal_dir: Option<String>,
    /// List of URLs to listen on for client traffic.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2379")]
    listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2379")]
    advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2380")]
    listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, value_name = "URLS", default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (name=url,name=url,...).
    #[arg(long, value_name = "MEMBERS", default_value = DEFAULT_INITIAL_CLUSTER)]
    initial_cluster: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, value_name = "TOKEN", default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, value_name = "STATE", default_value = "new")]
    initial_cluster_state: String,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, value_name = "BYTES", default_value = "1572864")]
    max_request_bytes: String,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, value_name = "N", default_value = "128")]
    max_txn_ops: String,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, value_name = "N", default_value = "100000")]
    snapshot_count: String,
    /// Number of entries for a slow follower to catch up after compacting the raft storage entries.
    #[arg(
        long,
        value_name = "N",
        default_value = "5000",
        alias = "experimental-snapshot-catchup-entries"
    )]
    snapshot_catchup_entries: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, value_name = "MS", default_value = "100")]
    heartbeat_interval: String,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, value_name = "MS", default_value = "1000")]
    election_timeout: String,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, value_name = "BYTES", default_value = "0")]
    quota_backend_bytes: String,
    /// Force to create a new one-member cluster.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    force_new_cluster: String,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    strict_reconfig_check: String,
    /// Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true")]
    pre_vote: String,
    /// Configures log level: debug, info, warn, error, dpanic, panic, fatal.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Currently only supports 'zap' for structured logging.
    #[arg(long, value_name = "LOGGER", default_value = "zap")]
    logger: String,
    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.
    #[arg(long, value_name = "OUTPUTS", default_value = "default")]
    log_outputs: String,
    /// Duration of periodic watch progress notifications.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        alias = "watch-progress-notify-interval"
    )]
    experimental_watch_progress_notify_interval: String,
    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    experimental_enable_lease_checkpoint: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto compaction.
    #[arg(long, value_name = "RETENTION", default_value = "0")]
    auto_compaction_retention: String,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, value_name = "MODE", default_value = "periodic")]
    auto_compaction_mode: String,
    /// Enable runtime profiling data via HTTP server (accepted, has no effect in oxcd).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    enable_pprof: String,
    /// Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.
    #[arg(long, value_name = "LEVEL", default_value = "basic")]
    metrics: String,
    /// Print the version and exit.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false")]
    version: String,
}

/// An etcd flag oxcd recognises but does not implement.
struct Unsupported {
    name: &'static str,
    /// Boolean flag (`--flag` / `--flag=false`) rather than one taking a value.
    boolean: bool,
    /// Values that mean "feature off" and are therefore accepted (besides
    /// `false` for boolean flags and the empty string).
    off: &'static [&'static str],
    reason: &'static str,
}

const TLS: &str = "oxcd does not implement TLS; refusing to start rather than serve plaintext";
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
const UNSUPPORTED: &[Unsupported] = &[
    unsupported("cert-file", false, TLS),
    unsupported("key-file", false, TLS),
    unsupported("client-cert-auth", true, TLS),
    unsupported("client-crl-file", false, TLS),
    unsupported("client-cert-allowed-hostname", false, TLS),
    unsupported("trusted-ca-file", false, TLS),
    unsupported("auto-tls", true, TLS),
    unsupported("peer-cert-file", false, TLS),
    unsupported("peer-key-file", false, TLS),
    unsupported("peer-client-cert-auth", true, TLS),
    unsupported("peer-trusted-ca-file", false, TLS),
    unsupported("peer-cert-allowed-cn", false, TLS),
    unsupported("peer-cert-allowed-hostname", false, TLS),
    unsupported("peer-auto-tls", true, TLS),
    unsupported("peer-crl-file", false, TLS),
    unsupported("cipher-suites", false, TLS),
    unsupported("tls-min-version", false, TLS),
    unsupported("tls-max-version", false, TLS),
    unsupported(
        "config-file",
        false,
        "configuration files are not implemented; use flags or ETCD_* variables",
    ),
    unsupported("discovery", false, DISCOVERY),
    unsupported("discovery-srv", false, DISCOVERY),
    unsupported("discovery-srv-name", false, DISCOVERY),
    unsupported("discovery-proxy", false, DISCOVERY),
    Unsupported {
        name: "discovery-fallback",
        boolean: false,
        off: &["exit"],
        reason: DISCOVERY,
    },
    Unsupported {
        name: "proxy",
        boolean: false,
        off: &["off"],
        reason: PROXY,
    },
    unsupported("proxy-failure-wait", false, PROXY),
    unsupported("proxy-refresh-interval", false, PROXY),
    unsupported("proxy-dial-timeout", false, PROXY),
    unsupported("proxy-write-timeout", false, PROXY),
    unsupported("proxy-read-timeout", false, PROXY),
    unsupported("enable-v2", true, "the v2 API is not implemented"),
    Unsupported {
        name: "auth-token",
        boolean: false,
        off: &["simple"],
        reason: "only 'simple' auth tokens are implemented",
    },
];

/// Recognised etcd tuning flags that have no meaning in oxcd: accepted with a
/// warning. `(name, boolean)`.
const IGNORED: &[(&str, bool)] = &[
    ("max-snapshots", false),
    ("max-wals", false),
    ("backend-batch-interval", false),
    ("backend-batch-limit", false),
    ("backend-bbolt-freelist-type", false),
    ("grpc-keepalive-min-time", false),
    ("grpc-keepalive-interval", false),
    ("grpc-keepalive-timeout", false),
    ("max-concurrent-streams", false),
    ("initial-election-tick-advance", true),
    ("listen-metrics-urls", false),
    ("unsafe-no-fsync", true),
    ("enable-grpc-gateway", true),
    ("enable-log-rotation", true),
    ("log-rotation-config-json", false),
    ("socket-reuse-port", true),
    ("socket-reuse-address", true),
    ("experimental-initial-corrupt-check", true),
    ("experimental-corrupt-check-time", false),
    ("experimental-compact-hash-check-enabled", true),
    ("experimental-compact-hash-check-time", false),
    ("experimental-compaction-batch-limit", false),
    ("experimental-warning-apply-duration", false),
    ("experimental-bootstrap-defrag-threshold-megabytes", false),
    ("experimental-wait-cluster-ready-timeout", false),
    ("experimental-memory-mlock", true),
    ("warning-unary-request-duration", false),
    ("experimental-warning-unary-request-duration", false),
];

/// The full command: [`Flags`] plus the recognised-but-unsupported and
/// recognised-but-ignored flags (hidden from `--help`). Every flag that takes a
/// value accepts values starting with `-`, as Go's `flag` package does.
fn command() -> Command {
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
        .chain(IGNORED.iter().copied());
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

/// `ETCD_<NAME>` for a flag name (`data-dir` → `ETCD_DATA_DIR`).
fn env_key(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// All long names of `arg` (primary first, then aliases).
fn long_names(arg: &Arg) -> impl Iterator<Item = &str> {
    arg.get_long()
        .into_iter()
        .chain(arg.get_all_aliases().into_iter().flatten())
}

/// Rewrites Go-style single-dash long flags (`-name n1`, `-data-dir=x`) to
/// `--name n1`, `--data-dir=x` for the flags `cmd` knows, leaving values alone
/// (`--name -data-dir` keeps `-data-dir` as the value) and stopping at `--`.
fn normalize_go_flags(cmd: &Command, args: Vec<OsString>) -> Vec<OsString> {
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

impl Config {
    /// Parses `args` (including `argv[0]`) and the `ETCD_*` variables visible
    /// through `env`, applying etcd 3.5's defaults and flag-level validation.
    ///
    /// `--help` and `--version` come back as [`ConfigError::Help`] and
    /// [`ConfigError::Version`] (exit code 0). Unrecognised `ETCD_*` variables
    /// cannot be detected through a lookup function; see
    /// [`Config::unrecognized_env_warnings`].
    pub fn from_args(
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let cmd = command();
        let argv = normalize_go_flags(&cmd, args.into_iter().map(Into::into).collect());
        let cli = cmd
            .clone()
            .try_get_matches_from(&argv)
            .map_err(ConfigError::from_clap)?;

        // etcd prints the version before looking at the environment.
        let version = cli
            .get_one::<String>("version")
            .map_or("false", String::as_str);
        if parse_go_bool(version).map_err(|reason| invalid(version, "flag -version", reason))? {
            return Err(ConfigError::Version);
        }

        let mut warnings = Vec::new();
        let mut env_origin = HashMap::new(); // arg id -> env var it was taken from
        let mut from_env: Vec<OsString> = Vec::new();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            for name in long_names(arg) {
                let key = env_key(name);
                let Some(value) = env(&key).filter(|v| !v.is_empty()) else {
                    continue;
                };
                if id == "version" {
                    warnings.push(format!(
                        "cannot set special environment variable {key}={value}"
                    ));
                } else if cli.value_source(id) == Some(ValueSource::CommandLine)
                    || env_origin.contains_key(id)
                {
                    warnings.push(format!(
                        "recognized environment variable {key}={value}, but unused: shadowed by corresponding flag"
                    ));
                } else {
                    from_env.push(format!("--{name}={value}").into());
                    env_origin.insert(id.to_owned(), key);
                }
            }
        }

        let matches = if from_env.is_empty() {
            cli
        } else {
            cmd.try_get_matches_from(argv.into_iter().chain(from_env))
                .map_err(ConfigError::from_clap)?
        };
        let flags = Flags::from_arg_matches(&matches).map_err(ConfigError::from_clap)?;
        Builder {
            matches: &matches,
            env_origin,
            warnings,
        }
        .build(flags)
    }

    /// [`Config::from_args`] on the process's arguments and environment, plus
    /// warnings for unrecognised `ETCD_*` variables.
    pub fn parse() -> Result<Self, ConfigError> {
        let mut config = Self::from_args(std::env::args_os(), |key| std::env::var(key).ok())?;
        let vars = std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        });
        config
            .warnings
            .extend(Self::unrecognized_env_warnings(vars));
        Ok(config)
    }

    /// etcd's `unrecognized environment variable ETCD_FOO=bar` warning for every
    /// `ETCD_*` variable that matches no flag. `ETCDCTL_*` variables are not
    /// `ETCD_*` variables and are ignored.
    pub fn unrecognized_env_warnings(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<String> {
        let cmd = command();
        let known: HashSet<String> = cmd
            .get_arguments()
            .flat_map(long_names)
            .map(env_key)
            .collect();
        vars.into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX) && !known.contains(key))
            .map(|(key, value)| format!("unrecognized environment variable {key}={value}"))
            .collect()
    }

    /// What `--version` prints (no trailing newline).
    pub fn version_text() -> String {
        format!(
            "oxcd Version: {}\netcd API Version: {}\nOS/Arch: {}/{}",
            oxcd_api::OXCD_VERSION,
            oxcd_api::ETCD_API_VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
        )
    }

    /// `--initial-cluster` grouped by member name, names in order of first
    /// appearance, each member's URLs in the order given.
    pub fn initial_cluster_members(&self) -> Vec<(String, Vec<Url>)> {
        let mut members: Vec<(String, Vec<Url>)> = Vec::new();
        for (name, url) in &self.initial_cluster {
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.clone()),
                None => members.push((name.clone(), vec![url.clone()])),
            }
        }
        members
    }

    /// Raft election timeout in heartbeat ticks (`election / heartbeat`, ≥ 5).
    pub fn election_ticks(&self) -> usize {
        let ticks = self.election_timeout.as_millis() / self.heartbeat_interval.as_millis().max(1);
        usize::try_from(ticks).unwrap_or(usize::MAX)
    }

    /// etcd's bootstrap checks (`VerifyBootstrap` / `VerifyJoinExisting`). Run
    /// them only when the data directory holds no WAL yet: like etcd, a member
    /// restarting from its data directory ignores the `--initial-*` flags.
    ///
    /// * `--name` must appear in `--initial-cluster`;
    /// * no peer URL may appear twice in `--initial-cluster`;
    /// * for a new cluster, this member's `--initial-cluster` URLs must equal
    ///   `--initial-advertise-peer-urls` (compared textually; etcd also tries
    ///   resolving host names).
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let members = self.initial_cluster_members();
        let Some((_, cluster_urls)) = members.iter().find(|(name, _)| *name == self.name) else {
            return Err(ConfigError::LocalMemberMissing {
                name: self.name.clone(),
            });
        };
        let mut seen = HashSet::new();
        if self
            .initial_cluster
            .iter()
            .any(|(_, url)| !seen.insert(format_url(url)))
        {
            return Err(ConfigError::DuplicateClusterUrl(format_cluster(
                &self.initial_cluster,
            )));
        }
        if self.initial_cluster_state == ClusterState::New {
            self.advertise_matches_cluster(cluster_urls)?;
        }
        Ok(())
    }

    /// etcd's `advertiseMatchesCluster`, with its messages.
    fn advertise_matches_cluster(&self, cluster_urls: &[Url]) -> Result<(), ConfigError> {
        let advertised: Vec<String> = self
            .initial_advertise_peer_urls
            .iter()
            .map(format_url)
            .collect();
        let listed: Vec<String> = sorted_unique(cluster_urls.iter().map(format_url));
        let advertised_str = advertised.join(",");
        let missing: Vec<String> = listed
            .iter()
            .filter(|url| !advertised.contains(url))
            .map(|url| format!("{}={url}", self.name))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::PeerUrlsMismatch(format!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={advertised_str}",
                missing.join(",")
            )));
        }
        let extra: Vec<&str> = advertised
            .iter()
            .filter(|url| !listed.contains(url))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            let own: Vec<String> = advertised
                .iter()
                .map(|url| format!("{}={url}", self.name))
                .collect();
            return Err(ConfigError::PeerUrlsMismatch(format!(
                "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
                extra.join(","),
                own.join(",")
            )));
        }
        Ok(())
    }
}

impl Default for Config {
    /// etcd's defaults, with no flags and no environment.
    fn default() -> Self {
        Self::from_args(["oxcd"], |_| None).expect("the default configuration is valid")
    }
}

/// Formats a URL as etcd does: `scheme://host:port`, explicit port, no trailing slash.
pub fn format_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn format_cluster(cluster: &[(String, Url)]) -> String {
    let entries: Vec<String> = cluster
        .iter()
        .map(|(name, url)| format!("{name}={}", format_url(url)))
        .collect();
    entries.join(",")
}

fn sorted_unique(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.into_iter().collect();
    items.sort();
    items.dedup();
    items
}

fn invalid(value: &str, origin: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        value: value.to_owned(),
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

/// Turns the raw [`Flags`] into a [`Config`], knowing where each value came from.
struct Builder<'a> {
    matches: &'a ArgMatches,
    /// Arg id -> `ETCD_*` variable, for values taken from the environment.
    env_origin: HashMap<String, String>,
    warnings: Vec<String>,
}

impl Builder<'_> {
    /// `ETCD_X` if the arg's value came from the environment, else `flag -x`.
    fn origin(&self, id: &str) -> String {
        self.env_origin
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("flag -{}", id.replace('_', "-")))
    }

    /// Whether the flag was set on the command line or through the environment.
    fn is_set(&self, id: &str) -> bool {
        self.matches.value_source(id) == Some(ValueSource::CommandLine)
    }

    fn parse<T>(
        &self,
        id: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(raw).map_err(|reason| invalid(raw, &self.origin(id), reason))
    }

    /// Rejects enabled unsupported flags and warns about ignored ones.
    fn check_compat_flags(&mut self) -> Result<(), ConfigError> {
        for flag in UNSUPPORTED {
            let Some(value) = self.matches.get_one::<String>(flag.name) else {
                continue;
            };
            let off = if flag.boolean {
                !self.parse(flag.name, value, parse_go_bool)?
            } else {
                value.is_empty() || flag.off.contains(&value.as_str())
            };
            if !off {
                let shown = match self.env_origin.get(flag.name) {
                    Some(key) => format!("--{} (set via {key})", flag.name),
                    None => format!("--{}", flag.name),
                };
                return Err(ConfigError::Unsupported {
                    flag: shown,
                    reason: flag.reason,
                });
            }
        }
        for &(name, _) in IGNORED {
            if self.is_set(name) {
                self.warnings.push(format!(
                    "--{name} is accepted for etcd compatibility but has no effect in oxcd"
                ));
            }
        }
        Ok(())
    }

    fn build(mut self, f: Flags) -> Result<Config, ConfigError> {
        self.check_compat_flags()?;

        let data_dir = match f.data_dir.as_deref() {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(format!("{}.oxcd", f.name)),
        };
        let wal_dir = f.wal_dir.filter(|dir| !dir.is_empty()).map(PathBuf::from);

        let listen_client_urls =
            self.parse("listen_client_urls", &f.listen_client_urls, parse_urls)?;
        let advertise_client_urls = self.parse(
            "advertise_client_urls",
            &f.advertise_client_urls,
            parse_urls,
        )?;
        let listen_peer_urls = self.parse("listen_peer_urls", &f.listen_peer_urls, parse_urls)?;
        let initial_advertise_peer_urls = self.parse(
            "initial_advertise_peer_urls",
            &f.initial_advertise_peer_urls,
            parse_urls,
        )?;

        // etcd: `etcd --name abc` alone bootstraps `abc=<advertise peer urls>`.
        let initial_cluster =
            if f.name != DEFAULT_NAME && f.initial_cluster == DEFAULT_INITIAL_CLUSTER {
                initial_advertise_peer_urls
                    .iter()
                    .map(|url| (f.name.clone(), url.clone()))
                    .collect()
            } else {
                self.parse("initial_cluster", &f.initial_cluster, parse_initial_cluster)?
            };

        let initial_cluster_state = self.parse(
            "initial_cluster_state",
            &f.initial_cluster_state,
            |s| match s {
                "new" => Ok(ClusterState::New),
                "existing" => Ok(ClusterState::Existing),
                _ => Err(r#"valid values are "new", "existing""#.to_owned()),
            },
        )?;

        let max_request_bytes =
            self.parse("max_request_bytes", &f.max_request_bytes, parse_go_usize)?;
        let max_txn_ops = self.parse("max_txn_ops", &f.max_txn_ops, parse_go_usize)?;
        let snapshot_count = self.parse("snapshot_count", &f.snapshot_count, parse_go_uint)?;
        let snapshot_catchup_entries = self.parse(
            "snapshot_catchup_entries",
            &f.snapshot_catchup_entries,
            parse_go_uint,
        )?;
        let heartbeat_ms =
            self.parse("heartbeat_interval", &f.heartbeat_interval, parse_go_uint)?;
        let election_ms = self.parse("election_timeout", &f.election_timeout, parse_go_uint)?;
        let quota_backend_bytes =
            self.parse("quota_backend_bytes", &f.quota_backend_bytes, parse_go_int)?;

        let force_new_cluster =
            self.parse("force_new_cluster", &f.force_new_cluster, parse_go_bool)?;
        let strict_reconfig_check = self.parse(
            "strict_reconfig_check",
            &f.strict_reconfig_check,
            parse_go_bool,
        )?;
        let pre_vote = self.parse("pre_vote", &f.pre_vote, parse_go_bool)?;
        let enable_lease_checkpoint = self.parse(
            "experimental_enable_lease_checkpoint",
            &f.experimental_enable_lease_checkpoint,
            parse_go_bool,
        )?;
        let enable_pprof = self.parse("enable_pprof", &f.enable_pprof, parse_go_bool)?;

        let log_level = self.parse("log_level", &f.log_level, parse_log_level)?;
        self.parse("logger", &f.logger, |s| match s {
            "zap" => Ok(()),
            "capnslog" => Err("--logger=capnslog is removed in v3.5; use 'zap'".to_owned()),
            _ => Err(format!(
                "unknown logger option {s:?}; only 'zap' is supported"
            )),
        })?;
        let log_outputs = self.parse("log_outputs", &f.log_outputs, parse_log_outputs)?;
        let watch_progress_notify_interval = self.parse(
            "experimental_watch_progress_notify_interval",
            &f.experimental_watch_progress_notify_interval,
            parse_go_duration,
        )?;
        let auto_compaction =
            self.parse_auto_compaction(&f.auto_compaction_mode, &f.auto_compaction_retention)?;
        let metrics = self.parse("metrics", &f.metrics, |s| match s {
            "basic" => Ok(Metrics::Basic),
            "extensive" => Ok(Metrics::Extensive),
            _ => Err(r#"valid values are "basic", "extensive""#.to_owned()),
        })?;

        // Validation in the order of etcd's `embed.Config.Validate`.
        for url in listen_peer_urls.iter().chain(&listen_client_urls) {
            check_bind_url(url)?;
        }
        if heartbeat_ms == 0 {
            return Err(ConfigError::ZeroInterval {
                flag: "heartbeat-interval",
            });
        }
        if election_ms == 0 {
            return Err(ConfigError::ZeroInterval {
                flag: "election-timeout",
            });
        }
        if heartbeat_ms.saturating_mul(5) > election_ms {
            return Err(ConfigError::ElectionTimeoutTooShort {
                election_ms,
                heartbeat_ms,
            });
        }
        if election_ms > MAX_ELECTION_MS {
            return Err(ConfigError::ElectionTimeoutTooLong { election_ms });
        }
        if self.is_set("listen_client_urls") && !self.is_set("advertise_client_urls") {
            return Err(ConfigError::AdvertiseClientUrlsRequired);
        }

        Ok(Config {
            name: f.name,
            data_dir,
            wal_dir,
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_token: f.initial_cluster_token,
            initial_cluster_state,
            max_request_bytes,
            max_txn_ops,
            snapshot_count,
            snapshot_catchup_entries,
            heartbeat_interval: Duration::from_millis(heartbeat_ms),
            election_timeout: Duration::from_millis(election_ms),
            quota_backend_bytes,
            force_new_cluster,
            strict_reconfig_check,
            pre_vote,
            log_level,
            log_outputs,
            watch_progress_notify_interval,
            enable_lease_checkpoint,
            auto_compaction,
            enable_pprof,
            metrics,
            warnings: self.warnings,
        })
    }

    /// etcd's `parseCompactionRetention`: an integer is hours (periodic) or
    /// revisions (revision); otherwise a Go duration (periodic only here).
    fn parse_auto_compaction(
        &self,
        mode: &str,
        retention: &str,
    ) -> Result<Option<AutoCompaction>, ConfigError> {
        let periodic = match mode {
            "periodic" => true,
            "revision" => false,
            _ => {
                return Err(invalid(
                    mode,
                    &self.origin("auto_compaction_mode"),
                    r#"valid values are "periodic", "revision""#,
                ))
            }
        };
        let compaction = self.parse("auto_compaction_retention", retention, |s| {
            match (s.parse::<u64>(), periodic) {
                (Ok(0), _) => Ok(None),
                (Ok(hours), true) => Ok(Some(AutoCompaction::Periodic(Duration::from_secs(
                    hours.saturating_mul(3600),
                )))),
                (Ok(revisions), false) => Ok(Some(AutoCompaction::Revision(revisions))),
                (Err(_), true) => {
                    let duration = parse_go_duration(s)?;
                    Ok((!duration.is_zero()).then_some(AutoCompaction::Periodic(duration)))
                }
                (Err(_), false) => {
                    Err("revision retention must be a non-negative integer".to_owned())
                }
            }
        })?;
        Ok(compaction)
    }
}

/// etcd's `checkBindURLs`: a listen URL's host must be an IP or `localhost`.
fn check_bind_url(url: &Url) -> Result<(), ConfigError> {
    match url.host() {
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Ok(()),
        Some(url::Host::Domain("localhost")) => Ok(()),
        _ => Err(ConfigError::BindUrlNotIp {
            url: format_url(url),
        }),
    }
}

/// A comma-separated URL list (etcd's `UniqueURLs`): each URL checked by
/// [`parse_url`], then de-duplicated and sorted by etcd string form.
fn parse_urls(s: &str) -> Result<Vec<Url>, String> {
    let mut urls = s
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(parse_url)
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("no valid URLs given".to_owned());
    }
    urls.sort_by_cached_key(format_url);
    urls.dedup_by_key(|url| format_url(url));
    Ok(urls)
}

/// One URL, checked like etcd's `types.NewURLs`: scheme, `host:port`, no path.
/// Only `http` is accepted for now.
fn parse_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    // The url crate normalises away what etcd checks (explicit port, empty
    // path), so check the raw text first: `scheme://[userinfo@]host:port[/path]...`.
    let (scheme, rest) = raw.split_once(':').unwrap_or(("", raw));
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => {
            return Err(format!(
                "https URLs need TLS, which is not supported yet: {raw}"
            ))
        }
        "unix" | "unixs" => return Err(format!("unix socket URLs are not supported yet: {raw}")),
        _ => {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {raw}"
            ))
        }
    }
    let after_slashes = rest.strip_prefix("//").unwrap_or("");
    let authority_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (authority, tail) = after_slashes.split_at(authority_end);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    if !has_host_port_form(host_port) {
        return Err(format!(
            r#"URL address does not have the form "host:port": {raw}"#
        ));
    }
    if tail.starts_with('/') {
        return Err(format!("URL must not contain a path: {raw}"));
    }
    Url::parse(raw).map_err(|err| format!("parse {raw:?}: {err}"))
}

/// Go's `net.SplitHostPort` succeeding with a non-empty port.
fn has_host_port_form(host_port: &str) -> bool {
    let port = if let Some(rest) = host_port.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => None,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => Some(port),
            _ => None,
        }
    };
    port.is_some_and(|port| !port.is_empty())
}

/// `name=url,name=url,...`; a name may appear several times.
fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, String> {
    let members = s
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((name, url)) if !name.is_empty() => Ok((name.to_owned(), parse_url(url)?)),
            _ => Err(format!("{entry:?} is not of the form name=url")),
        })
        .collect::<Result<Vec<_>, String>>()?;
    if members.is_empty() {
        return Err("no members given".to_owned());
    }
    Ok(members)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".to_owned()),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, or `0x`/`0o`/`0b`/`0` prefixed,
/// underscores allowed only after a prefix.
fn parse_go_uint(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.as_bytes() {
        [b'0', b'x' | b'X', ..] => (&s[2..], 16),
        [b'0', b'o' | b'O', ..] => (&s[2..], 8),
        [b'0', b'b' | b'B', ..] => (&s[2..], 2),
        [b'0', _, ..] => (&s[1..], 8),
        _ => (s, 10),
    };
    let digits = if radix == 10 {
        digits.to_owned()
    } else {
        digits.replace('_', "")
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err("parse error".to_owned());
    }
    u64::from_str_radix(&digits, radix).map_err(|err| match err.kind() {
        std::num::IntErrorKind::PosOverflow => "value out of range".to_owned(),
        _ => "parse error".to_owned(),
    })
}

fn parse_go_usize(s: &str) -> Result<usize, String> {
    usize::try_from(parse_go_uint(s)?).map_err(|_| "value out of range".to_owned())
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Result<i64, String> {
    let (negative, magnitude) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let magnitude = i128::from(parse_go_uint(magnitude)?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| "value out of range".to_owned())
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
}

/// Go's `time.ParseDuration`, minus negative durations: a sequence of decimal
/// numbers with optional fraction and a unit (`ns us µs ms s m h`), or `0`.
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return if rest == "-0" {
            Ok(Duration::ZERO)
        } else {
            Err("negative durations are not allowed".to_owned())
        };
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let (int_part, after) = split_digits(rest);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        // 24 digits are finer than a nanosecond and keep `frac * unit_ns` within u128.
        let frac_digits = &frac_part[..frac_part.len().min(24)];
        let frac: u128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse().map_err(|_| invalid())?
        };
        let frac_ns = frac * unit_ns / 10u128.pow(frac_digits.len() as u32);
        total_ns = int
            .checked_mul(unit_ns)
            .and_then(|ns| ns.checked_add(frac_ns))
            .and_then(|ns| ns.checked_add(total_ns))
            .ok_or_else(invalid)?;
        rest = after;
    }
    u64::try_from(total_ns)
        .map(Duration::from_nanos)
        .map_err(|_| invalid())
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    Ok(match s {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "dpanic" => LogLevel::DPanic,
        "panic" => LogLevel::Panic,
        "fatal" => LogLevel::Fatal,
        _ => {
            return Err(
                "valid values are debug, info, warn, error, dpanic, panic, fatal".to_owned(),
            )
        }
    })
}

/// `--log-outputs`: `default`/`stderr`/`stdout`; files and journald are not supported yet.
fn parse_log_outputs(s: &str) -> Result<Vec<LogOutput>, String> {
    let mut outputs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let output = match part {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            _ => {
                return Err(format!(
                    "log output {part:?} is not supported yet (only default, stderr, stdout)"
                ))
            }
        };
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    if outputs.is_empty() {
        outputs.push(LogOutput::Stderr);
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("oxcd").chain(args.iter().copied()), no_env)
    }

    fn parse_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_args(
            std::iter::once("oxcd").chain(args.iter().copied()),
            move |k| env.get(k).cloned(),
        )
    }

    fn ok(args: &[&str]) -> Config {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        match parse(args) {
            Ok(cfg) => panic!("{args:?} parsed: {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(urls: &[Url]) -> Vec<String> {
        urls.iter().map(format_url).collect()
    }

    #[test]
    fn defaults_match_etcd() {
        let cfg = ok(&[]);
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir, PathBuf::from("default.oxcd"));
        assert_eq!(cfg.wal_dir, None);
        assert_eq!(strings(&cfg.listen_client_urls), ["http://localhost:2379"]);
        assert_eq!(
            strings(&cfg.advertise_client_urls),
            ["http://localhost:2379"]
        );
        assert_eq!(strings(&cfg.listen_peer_urls), ["http://localhost:2380"]);
        assert_eq!(
            strings(&cfg.initial_advertise_peer_urls),
            ["http://localhost:2380"]
        );
        assert_eq!(
            cfg.initial_cluster,
            [("default".to_owned(), url("http://localhost:2380"))]
        );
        assert_eq!(cfg.initial_cluster_token, "etcd-cluster");
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
        assert_eq!(cfg.max_request_bytes, 1_572_864);
        assert_eq!(cfg.max_txn_ops, 128);
        assert_eq!(cfg.snapshot_count, 100_000);
        assert_eq!(cfg.snapshot_catchup_entries, 5_000);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(cfg.election_timeout, Duration::from_millis(1000));
        assert_eq!(cfg.election_ticks(), 10);
        assert_eq!(cfg.quota_backend_bytes, 0);
        assert!(!cfg.force_new_cluster);
        assert!(cfg.strict_reconfig_check);
        assert!(cfg.pre_vote);
        assert_eq!(cfg.log_level, LogLevel::Info);
        assert_eq!(cfg.log_outputs, [LogOutput::Stderr]);
        assert_eq!(cfg.watch_progress_notify_interval, Duration::from_secs(600));
        assert!(!cfg.enable_lease_checkpoint);
        assert_eq!(cfg.auto_compaction, None);
        assert!(!cfg.enable_pprof);
        assert_eq!(cfg.metrics, Metrics::Basic);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg, Config::default());
        cfg.verify_bootstrap().unwrap();
    }

    /// Every flag set on the command line, in a mix of Go's accepted forms.
    #[test]
    fn every_flag_via_argv() {
        let cfg = ok(&[
            "--name",
            "n1",
            "--data-dir=/var/lib/oxcd",
            "--wal-dir",
            "/wal",
            "--listen-client-urls",
            "http://0.0.0.0:2379,http://127.0.0.1:22379",
            "--advertise-client-urls",
            "http://10.0.0.1:2379",
            "--listen-peer-urls=http://10.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
            "--initial-cluster",
            "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380",
            "--initial-cluster-token",
            "tok",
            "--initial-cluster-state",
            "existing",
            "--max-request-bytes",
            "0x100",
            "--max-txn-ops",
            "1000",
            "--snapshot-count",
            "10",
            "--snapshot-catchup-entries",
            "7",
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--quota-backend-bytes",
            "8589934592",
            "--force-new-cluster",
            "--strict-reconfig-check=false",
            "--pre-vote=0",
            "--log-level",
            "debug",
            "--logger",
            "zap",
            "--log-outputs",
            "stdout,stderr,default",
            "--experimental-watch-progress-notify-interval",
            "1m30s",
            "--experimental-enable-lease-checkpoint=true",
            "--auto-compaction-retention",
            "5",
            "--auto-compaction-mode",
            "revision",
            "--enable-pprof",
            "--metrics",
            "extensive",
        ]);
        assert_eq!(cfg.name, "n1");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/oxcd"));
        assert_eq!(cfg.wal_dir, Some(PathBuf::from("/wal")));
        assert_eq!(
            strings(&cfg.listen_client_urls),
            ["http://0.0.0.0:2379", "http://127.0.0.1:22379"]
        );
        assert_eq!(
            strings(&cfg.advertise_client_urls),
            ["http://10.0.0.1:2379"]
        );
        assert_eq!(strings(&cfg.listen_peer_urls), ["http://10.0.0.1:2380"]);
        assert_eq!(
            strings(&cfg.initial_advertise_peer_urls),
            ["http://10.0.0.1:2380"]
        );
        assert_eq!(cfg.initial_cluster.len(), 2);
        assert_eq!(cfg.initial_cluster_token, "tok");
        assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
        assert_eq!(cfg.max_request_bytes, 256);
        assert_eq!(cfg.max_txn_ops, 1000);
        assert_eq!(cfg.snapshot_count, 10);
        assert_eq!(cfg.snapshot_catchup_entries, 7);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(cfg.election_timeout, Duration::from_millis(500));
        assert_eq!(cfg.quota_backend_bytes, 8 << 30);
        assert!(cfg.force_new_cluster);
        assert!(!cfg.strict_reconfig_check);
        assert!(!cfg.pre_vote);
        assert_eq!(cfg.log_level, LogLevel::Debug);
        assert_eq!(cfg.log_outputs, [LogOutput::Stdout, LogOutput::Stderr]);
        assert_eq!(cfg.watch_progress_notify_interval, Duration::from_secs(90));
        assert!(cfg.enable_lease_checkpoint);
        assert_eq!(cfg.auto_compaction, Some(AutoCompaction::Revision(5)));
        assert!(cfg.enable_pprof);
        assert_eq!(cfg.metrics, Metrics::Extensive);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn every_flag_via_env() {
        let cfg = parse_env(
            &[],
            &[
                ("ETCD_NAME", "n1"),
                ("ETCD_DATA_DIR", "/d"),
                ("ETCD_WAL_DIR", "/w"),
                ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:1"),
                ("ETCD_ADVERTISE_CLIENT_URLS", "http://a:1"),
                ("ETCD_LISTEN_PEER_URLS", "http://127.0.0.1:2"),
                ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "http://a:2"),
                ("ETCD_INITIAL_CLUSTER", "n1=http://a:2"),
                ("ETCD_INITIAL_CLUSTER_TOKEN", "t"),
                ("ETCD_INITIAL_CLUSTER_STATE", "existing"),
                ("ETCD_MAX_REQUEST_BYTES", "10"),
                ("ETCD_MAX_TXN_OPS", "11"),
                ("ETCD_SNAPSHOT_COUNT", "12"),
                ("ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES", "13"),
                ("ETCD_HEARTBEAT_INTERVAL", "10"),
                ("ETCD_ELECTION_TIMEOUT", "50"),
                ("ETCD_QUOTA_BACKEND_BYTES", "-1"),
                ("ETCD_FORCE_NEW_CLUSTER", "true"),
                ("ETCD_STRICT_RECONFIG_CHECK", "false"),
                ("ETCD_PRE_VOTE", "false"),
                ("ETCD_LOG_LEVEL", "warn"),
                ("ETCD_LOGGER", "zap"),
                ("ETCD_LOG_OUTPUTS", "stdout"),
                ("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "500ms"),
                ("ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", "1"),
                ("ETCD_AUTO_COMPACTION_RETENTION", "1h30m"),
                ("ETCD_AUTO_COMPACTION_MODE", "periodic"),
                ("ETCD_ENABLE_PPROF", "true"),
                ("ETCD_METRICS", "extensive"),
                ("ETCD_UNUSED_EMPTY", ""),
            ],
        )
        .unwrap();
        assert_eq!(cfg.name, "n1");
        assert_eq!(cfg.data_dir, PathBuf::from("/d"));
        assert_eq!(cfg.wal_dir, Some(PathBuf::from("/w")));
        assert_eq!(strings(&cfg.listen_client_urls), ["http://127.0.0.1:1"]);
        assert_eq!(strings(&cfg.advertise_client_urls), ["http://a:1"]);
        assert_eq!(strings(&cfg.listen_peer_urls), ["http://127.0.0.1:2"]);
        assert_eq!(strings(&cfg.initial_advertise_peer_urls), ["http://a:2"]);
        assert_eq!(cfg.initial_cluster, [("n1".to_owned(), url("http://a:2"))]);
        assert_eq!(cfg.initial_cluster_token, "t");
        assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
        assert_eq!((cfg.max_request_bytes, cfg.max_txn_ops), (10, 11));
        assert_eq!((cfg.snapshot_count, cfg.snapshot_catchup_entries), (12, 13));
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(10));
        assert_eq!(cfg.election_timeout, Duration::from_millis(50));
        assert_eq!(cfg.quota_backend_bytes, -1);
        assert!(cfg.force_new_cluster && !cfg.strict_reconfig_check && !cfg.pre_vote);
        assert_eq!(cfg.log_level, LogLevel::Warn);
        assert_eq!(cfg.log_outputs, [LogOutput::Stdout]);
        assert_eq!(
            cfg.watch_progress_notify_interval,
            Duration::from_millis(500)
        );
        assert!(cfg.enable_lease_checkpoint && cfg.enable_pprof);
        assert_eq!(
            cfg.auto_compaction,
            Some(AutoCompaction::Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(cfg.metrics, Metrics::Extensive);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn flag_beats_env_with_warning() {
        let cfg = parse_env(
            &["--name", "from-flag"],
            &[("ETCD_NAME", "from-env"), ("ETCD_MAX_TXN_OPS", "9")],
        )
        .unwrap();
        assert_eq!(cfg.name, "from-flag");
        assert_eq!(cfg.max_txn_ops, 9);
        assert_eq!(cfg.warnings.len(), 1);
        assert!(
            cfg.warnings[0].contains("ETCD_NAME=from-env"),
            "{:?}",
            cfg.warnings
        );
        assert!(cfg.warnings[0].contains("shadowed"), "{:?}", cfg.warnings);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let e = parse_env(&[], &[("ETCD_MAX_TXN_OPS", "lots")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid value "lots" for ETCD_MAX_TXN_OPS: parse error"#
        );
        assert_eq!(e.exit_code(), 2);
        let e = parse_env(&[], &[("ETCD_CERT_FILE", "/c.pem")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--cert-file (set via ETCD_CERT_FILE) is not supported yet"),
            "{e}"
        );
    }

    #[test]
    fn version_env_var_is_special() {
        let cfg = parse_env(&[], &[("ETCD_VERSION", "3.5.0")]).unwrap();
        assert_eq!(
            cfg.warnings,
            ["cannot set special environment variable ETCD_VERSION=3.5.0"]
        );
    }

    #[test]
    fn single_dash_go_style() {
        let cfg = ok(&[
            "-name",
            "n1",
            "-data-dir=/x",
            "-initial-cluster",
            "n1=http://localhost:2380",
            "-force-new-cluster",
            "-pre-vote=false",
            "-initial-cluster-token",
            "-dashy-token",
        ]);
        assert_eq!(cfg.name, "n1");
        assert_eq!(cfg.data_dir, PathBuf::from("/x"));
        assert!(cfg.force_new_cluster);
        assert!(!cfg.pre_vote);
        assert_eq!(cfg.initial_cluster_token, "-dashy-token");
        // A value that looks like a flag is still a value.
        assert_eq!(ok(&["--name", "-data-dir"]).name, "-data-dir");
        assert!(matches!(parse(&["-version"]), Err(ConfigError::Version)));
        assert!(matches!(parse(&["-help"]), Err(ConfigError::Help(_))));
        assert!(matches!(parse(&["-h"]), Err(ConfigError::Help(_))));
    }

    #[test]
    fn repeated_flag_last_wins() {
        assert_eq!(ok(&["--name", "a", "-name=b"]).name, "b");
    }

    #[test]
    fn bool_flags_do_not_take_separate_values() {
        let e = parse(&["--force-new-cluster", "false"]).unwrap_err();
        assert!(matches!(e, ConfigError::Usage(_)), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(err(&["--pre-vote=maybe"]).contains(r#"invalid value "maybe" for flag -pre-vote"#));
    }

    #[test]
    fn bad_urls() {
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1"]),
            r#"invalid value "http://127.0.0.1" for flag -listen-client-urls: URL address does not have the form "host:port": http://127.0.0.1"#
        );
        assert_eq!(
            err(&["--listen-client-urls", "foo"]),
            r#"invalid value "foo" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo"#
        );
        assert!(err(&["--listen-peer-urls", "http://127.0.0.1:2380/x"])
            .contains("URL must not contain a path"));
        assert!(err(&["--listen-peer-urls", "http://127.0.0.1:2380/"])
            .contains("URL must not contain a path"));
        assert!(err(&["--advertise-client-urls", "https://a:2379"])
            .contains("TLS, which is not supported yet"));
        assert!(err(&["--advertise-client-urls", "unix://a:2379"]).contains("not supported yet"));
        assert!(err(&["--advertise-client-urls", "http://a:b:2379"])
            .contains(r#"does not have the form "host:port""#));
        assert!(err(&["--advertise-client-urls", "http://a:99999"]).contains("invalid port"));
        assert!(err(&["--advertise-client-urls", ""]).contains("no valid URLs given"));
        assert_eq!(
            err(&[
                "--listen-client-urls",
                "http://example.com:2379",
                "--advertise-client-urls",
                "http://a:1"
            ]),
            "expected IP in URL for binding (http://example.com:2379)"
        );
        let cfg = ok(&[
            "--advertise-client-urls",
            " http://b:1, http://[::1]:80,http://b:1,http://user@a:1 ",
        ]);
        assert_eq!(
            strings(&cfg.advertise_client_urls),
            ["http://[::1]:80", "http://a:1", "http://b:1"]
        );
    }

    #[test]
    fn listen_client_urls_needs_advertise() {
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1:2379"]),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        );
        let e =
            parse_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]).unwrap_err();
        assert!(matches!(e, ConfigError::AdvertiseClientUrlsRequired));
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn bad_enum_values() {
        assert_eq!(
            err(&["--initial-cluster-state", "old"]),
            r#"invalid value "old" for flag -initial-cluster-state: valid values are "new", "existing""#
        );
        assert!(err(&["--log-level", "loud"]).contains("-log-level"));
        assert!(err(&["--logger", "capnslog"]).contains("removed in v3.5"));
        assert!(err(&["--log-outputs", "/var/log/etcd.log"]).contains("not supported yet"));
        assert!(err(&["--metrics", "all"]).contains("-metrics"));
        assert!(err(&["--auto-compaction-mode", "hourly"]).contains("-auto-compaction-mode"));
        assert!(err(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1h"
        ])
        .contains("-auto-compaction-retention"));
        assert!(err(&["--max-txn-ops", "-1"]).contains("parse error"));
        assert!(err(&["--snapshot-count", "99999999999999999999"]).contains("value out of range"));
    }

    #[test]
    fn unknown_flag_is_usage_error() {
        let e = parse(&["--no-such-flag"]).unwrap_err();
        assert!(matches!(e, ConfigError::Usage(_)), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--no-such-flag"), "{e}");
        assert!(matches!(parse(&["stray"]), Err(ConfigError::Usage(_))));
        assert!(matches!(
            parse(&["--", "-name"]),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(parse(&["--name"]), Err(ConfigError::Usage(_))));
    }

    #[test]
    fn unsupported_flags_rejected_only_when_enabled() {
        for args in [
            &["--cert-file", "/c.pem"][..],
            &["--client-cert-auth"],
            &["-peer-auto-tls=true"],
            &["--config-file=/etc/etcd.yml"],
            &["--discovery", "https://discovery.etcd.io/x"],
            &["--proxy", "on"],
            &["--enable-v2"],
            &["--auth-token", "jwt,pub-key=x"],
        ] {
            let e = parse(args).unwrap_err();
            assert!(
                matches!(e, ConfigError::Unsupported { .. }),
                "{args:?}: {e}"
            );
            assert!(e.to_string().contains("not supported yet"), "{e}");
        }
        let cfg = ok(&[
            "--client-cert-auth=false",
            "--auto-tls=false",
            "--cert-file=",
            "--proxy=off",
            "--discovery-fallback=exit",
            "--auth-token=simple",
            "--enable-v2=false",
        ]);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn ignored_flags_warn() {
        let cfg = ok(&["--max-wals", "5", "-experimental-initial-corrupt-check"]);
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("--max-wals"));
    }

    #[test]
    fn election_timeout_rule() {
        assert_eq!(
            err(&["--heartbeat-interval", "250", "--election-timeout", "1000"]),
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[250ms]"
        );
        ok(&["--heartbeat-interval", "200", "--election-timeout", "1000"]);
        assert_eq!(
            err(&["--heartbeat-interval", "0"]),
            "--heartbeat-interval must be >0 (set to 0ms)"
        );
        assert_eq!(
            err(&[
                "--heartbeat-interval",
                "10000",
                "--election-timeout",
                "60000"
            ]),
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
        );
    }

    #[test]
    fn initial_cluster_grouping() {
        let cfg = ok(&[
            "--name", "b",
            "--initial-advertise-peer-urls", "http://10.0.0.2:2380,http://10.0.0.12:2380",
            "--initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380,b=http://10.0.0.12:2380",
        ]);
        let members = cfg.initial_cluster_members();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            strings(&members[1].1),
            ["http://10.0.0.2:2380", "http://10.0.0.12:2380"]
        );
        cfg.verify_bootstrap().unwrap();

        assert!(err(&["--initial-cluster", "a"]).contains(r#""a" is not of the form name=url"#));
        assert!(err(&["--initial-cluster", "a=foo"]).contains("-initial-cluster"));
    }

    #[test]
    fn name_alone_bootstraps_itself() {
        let cfg = ok(&["--name", "solo"]);
        assert_eq!(
            cfg.initial_cluster,
            [("solo".to_owned(), url("http://localhost:2380"))]
        );
        assert_eq!(cfg.data_dir, PathBuf::from("solo.oxcd"));
        cfg.verify_bootstrap().unwrap();
    }

    #[test]
    fn bootstrap_checks() {
        let cfg = ok(&[
            "--name",
            "n1",
            "--initial-cluster",
            "n2=http://10.0.0.2:2380",
        ]);
        let e = cfg.verify_bootstrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"couldn't find local name "n1" in the initial cluster configuration"#
        );

        let cfg = ok(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://10.0.0.9:2380",
            "--initial-cluster",
            "n1=http://10.0.0.1:2380",
        ]);
        assert_eq!(
            cfg.verify_bootstrap().unwrap_err().to_string(),
            "--initial-cluster has n1=http://10.0.0.1:2380 but missing from \
             --initial-advertise-peer-urls=http://10.0.0.9:2380"
        );

        let cfg = ok(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380,http://10.0.0.9:2380",
            "--initial-cluster",
            "n1=http://10.0.0.1:2380",
        ]);
        assert_eq!(
            cfg.verify_bootstrap().unwrap_err().to_string(),
            "--initial-advertise-peer-urls has http://10.0.0.9:2380 but missing from \
             --initial-cluster=n1=http://10.0.0.1:2380,n1=http://10.0.0.9:2380"
        );

        // Joining an existing cluster does not compare advertised URLs...
        let mut existing = cfg.clone();
        existing.initial_cluster_state = ClusterState::Existing;
        existing.verify_bootstrap().unwrap();

        // ...but still rejects duplicate URLs.
        let cfg = ok(&[
            "--initial-cluster-state",
            "existing",
            "--initial-cluster",
            "default=http://localhost:2380,other=http://localhost:2380",
        ]);
        assert!(matches!(
            cfg.verify_bootstrap(),
            Err(ConfigError::DuplicateClusterUrl(_))
        ));
    }

    #[test]
    fn version_and_help() {
        let text = Config::version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("oxcd Version: {}", oxcd_api::OXCD_VERSION)
        );
        assert_eq!(
            lines[1],
            format!("etcd API Version: {}", oxcd_api::ETCD_API_VERSION)
        );
        assert_eq!(
            lines[2],
            format!(
                "OS/Arch: {}/{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            )
        );

        let e = parse(&["--version"]).unwrap_err();
        assert!(matches!(e, ConfigError::Version));
        assert_eq!((e.exit_code(), e.to_string()), (0, text));
        assert!(parse(&["--version=false"]).is_ok());

        let e = parse(&["--help"]).unwrap_err();
        assert_eq!(e.exit_code(), 0);
        let help = e.to_string();
        assert!(help.contains("--initial-cluster-state"), "{help}");
        assert!(!help.contains("--cert-file"), "{help}");
    }

    #[test]
    fn unrecognized_env_vars() {
        let vars = [
            ("ETCD_NAME", "n"),
            ("ETCD_FOO", "bar"),
            ("ETCDCTL_API", "3"),
            ("ETCD_CERT_FILE", "x"),
            ("ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES", "1"),
            ("HOME", "/root"),
        ];
        let warnings =
            Config::unrecognized_env_warnings(vars.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(warnings, ["unrecognized environment variable ETCD_FOO=bar"]);
    }

    #[test]
    fn go_number_and_duration_parsing() {
        assert_eq!(parse_go_uint("0x1_0"), Ok(16));
        assert_eq!(parse_go_uint("010"), Ok(8));
        assert_eq!(parse_go_uint("0b11"), Ok(3));
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert!(parse_go_uint("+1").is_err());
        assert!(parse_go_uint("1_000").is_err());
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_go_int("9223372036854775808").is_err());

        let d = |s| parse_go_duration(s);
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("1h2m3s4ms5us6ns"), Ok(Duration::new(3723, 4_005_006)));
        assert_eq!(d("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(d(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(
            d("10"),
            Err(r#"time: missing unit in duration "10""#.to_owned())
        );
        assert_eq!(
            d("10x"),
            Err(r#"time: unknown unit "x" in duration "10x""#.to_owned())
        );
        for bad in ["", ".", "m", "1.s.", "-1s", "99999999999h"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
