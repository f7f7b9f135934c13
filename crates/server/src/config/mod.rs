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
//! * `--config-file` (or `ETCD_CONFIG_FILE`) names a YAML file with etcd's keys; as in
//!   etcd, its settings then replace the command line and the environment entirely
//!   (ignored flags are reported in [`Config::warnings`]). The file goes through the same
//!   parsing and checks as flags, with errors naming the key and the file.
//! * Nothing is silently dropped: etcd features oxcd does not implement yet (
//!   discovery, proxy, v2 API, JWT tokens) are recognised and make parsing fail if they
//!   are *enabled* (set to anything but their "off" value). etcd flags that oxcd accepts
//!   but does not act on (tuning knobs, and settings not implemented yet such as
//!   `--wal-dir`) each add a warning
//!   saying they are ignored. Anything else unknown is an error.
//! * A [`Config`] returned by [`Config::from_args`] has passed every check that
//!   depends on the flags alone: all URLs are `http(s)://host:port` with no path,
//!   listen URLs bind to an IP or `localhost`, and the election timeout is at
//!   least 5 heartbeats. Checks that only apply when bootstrapping a fresh data
//!   directory (etcd ignores the `--initial-*` flags on restart) live in
//!   [`Config::verify_bootstrap`], which the caller runs only when no WAL exists.
//! * URL lists are de-duplicated and sorted by their etcd string form (as etcd's
//!   `UniqueURLs` does); use [`format_url`] to print a URL the way etcd does
//!   (`http://host:port`, no trailing slash, explicit port).
//!
//! Layout: this module holds [`Config`], its types and accessors; `flags` the clap
//! definitions and Go-style argv normalisation; `env` the `ETCD_*` variables; `file` the
//! config file; `validate`
//! the typed build and bootstrap checks; `parse` the value parsers; `tests` the unit tests.
//!
//! Errors use etcd's wording where practical, e.g.
//! `invalid value "foo" for flag -listen-client-urls: ...` or
//! `invalid value "foo" for ETCD_LISTEN_CLIENT_URLS: ...`.

mod env;
mod file;
mod flags;
mod parse;
#[cfg(test)]
mod tests;
mod validate;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::FromArgMatches;
use url::Url;

use env::{env_args, EnvArgs};
use flags::{command, normalize_go_flags, Flags};
use parse::parse_go_bool;
use validate::Builder;

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
    /// `--config-file` cannot be read or is not etcd's YAML.
    #[error("cannot load config file {path}: {reason}")]
    ConfigFile {
        /// The file, as given.
        path: String,
        /// What is wrong with it.
        reason: String,
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
    /// `--listen-client-http-urls` (empty: the client URLs serve HTTP too).
    pub listen_client_http_urls: Vec<Url>,
    /// `--listen-metrics-urls`.
    pub listen_metrics_urls: Vec<Url>,
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
    /// `--max-concurrent-streams`: HTTP/2 streams per client connection.
    pub max_concurrent_streams: u32,
    /// `--auth-token` (checked to parse as `oxcd_etcdserver::TokenOptions`).
    pub auth_token: String,
    /// `--auth-token-ttl`: a simple token's lifetime.
    pub auth_token_ttl: Duration,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
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
    /// `--experimental-initial-corrupt-check`: compare HashKV with the peers before serving.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time` (zero: no periodic check).
    pub corrupt_check_time: Duration,
    /// `--experimental-enable-lease-checkpoint`.
    pub enable_lease_checkpoint: bool,
    /// `--auto-compaction-mode` + `--auto-compaction-retention`; `None` when disabled (retention 0).
    pub auto_compaction: Option<AutoCompaction>,
    /// `--enable-pprof` (accepted; oxcd has no pprof endpoint).
    pub enable_pprof: bool,
    /// `--enable-ui`: the web dashboard at `/ui/` (an oxcd addition; default on).
    pub enable_ui: bool,
    /// `--metrics`.
    pub metrics: Metrics,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`,
    /// `--client-crl-file`, `--cipher-suites`, `--tls-{min,max}-version`: the client
    /// listeners' TLS (empty unless set).
    pub client_tls: oxcd_tls::TlsInfo,
    /// The `--peer-*` TLS flags (with the shared cipher suites and versions).
    pub peer_tls: oxcd_tls::TlsInfo,
    /// `--auto-tls`.
    pub client_auto_tls: bool,
    /// `--peer-auto-tls`.
    pub peer_auto_tls: bool,
    /// `--self-signed-cert-validity` in years (default 1).
    pub self_signed_cert_validity: u32,
    /// Problems worth logging once logging is up (shadowed or unrecognised
    /// environment variables, flags accepted but without effect).
    pub warnings: Vec<String>,
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

        let config_file = cli
            .get_one::<String>("config_file")
            .cloned()
            .or_else(|| env(&env::env_key("config-file")))
            .filter(|path| !path.is_empty());
        if let Some(path) = config_file {
            return Self::from_file(&cmd, &cli, &path);
        }

        let EnvArgs {
            args: from_env,
            origin: env_origin,
            warnings,
        } = env_args(&cmd, &cli, env);

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

    /// etcd's `configFromFile`: the file's settings alone, flags and environment ignored.
    fn from_file(
        cmd: &clap::Command,
        cli: &clap::ArgMatches,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let file::FileArgs {
            args,
            origin,
            mut warnings,
        } = file::load(cmd, path)?;
        let ignored: Vec<String> = cmd
            .get_arguments()
            .filter(|arg| {
                let id = arg.get_id().as_str();
                id != "config_file"
                    && cli.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|arg| format!("--{}", arg.get_long().unwrap_or_default()))
            .collect();
        if !ignored.is_empty() {
            warnings.push(format!(
                "loaded server configuration from {path}; command-line flags {} are ignored",
                ignored.join(" ")
            ));
        }
        let argv = std::iter::once(OsString::from("oxcd")).chain(args);
        let matches = cmd
            .clone()
            .try_get_matches_from(argv)
            .map_err(ConfigError::from_clap)?;
        let flags = Flags::from_arg_matches(&matches).map_err(ConfigError::from_clap)?;
        Builder {
            matches: &matches,
            env_origin: origin,
            warnings,
        }
        .build(flags)
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
}

impl Default for Config {
    /// etcd's defaults, with no flags and no environment.
    fn default() -> Self {
        Self::from_args(["oxcd"], |_| None).expect("the default configuration is valid")
    }
}

/// Formats a URL as etcd does: `scheme://host:port`, explicit port, no trailing slash.
pub use oxcd_etcdserver::format_url;

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
