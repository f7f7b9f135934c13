//! Turning raw flags into a checked [`Config`], and the bootstrap-only checks.
//!
//! Invariants: every value is parsed with etcd's error wording naming where it came from
//! (`flag -x` or `ETCD_X`); a [`Config`] built here has passed every flag-level check (URL
//! forms, bind hosts, election vs heartbeat, unsupported features disabled);
//! [`Config::verify_bootstrap`] holds the checks etcd runs only on a fresh data dir.

use std::collections::{HashMap, HashSet};

use clap::parser::ValueSource;
use clap::ArgMatches;
use url::Url;

use super::flags::{Flags, IGNORED, UNSUPPORTED};
use super::parse::*;
use super::*;

/// The TLS part of a [`Config`].
struct ParsedTls {
    client: oxcd_tls::TlsInfo,
    peer: oxcd_tls::TlsInfo,
    client_auto: bool,
    peer_auto: bool,
    validity_years: u32,
}

/// Turns the raw [`Flags`] into a [`Config`], knowing where each value came from.
pub(super) struct Builder<'a> {
    pub(super) matches: &'a ArgMatches,
    /// Arg id -> `ETCD_*` variable, for values taken from the environment.
    pub(super) env_origin: HashMap<String, String>,
    pub(super) warnings: Vec<String>,
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
            if name == "debug" {
                continue;
            }
            if self.is_set(name) {
                self.warnings.push(format!(
                    "--{name} is accepted for etcd compatibility but ignored: it has no effect in oxcd"
                ));
            }
        }
        Ok(())
    }

    /// The value of a TLS flag (registered in `flags::TLS_FLAGS`), "" when unset.
    fn tls_value(&self, name: &str) -> String {
        self.matches
            .get_one::<String>(name)
            .cloned()
            .unwrap_or_default()
    }

    fn tls_bool(&self, name: &str) -> Result<bool, ConfigError> {
        let v = self.tls_value(name);
        if v.is_empty() {
            return Ok(false);
        }
        self.parse(name, &v, parse_go_bool)
    }

    /// etcd's client and peer `TLSInfo` from the TLS flags, checked with
    /// `TlsInfo::validate` (file contents are checked when the listeners start).
    fn parse_tls(&self) -> Result<ParsedTls, ConfigError> {
        let list = |name: &str| -> Vec<String> {
            self.tls_value(name)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let cipher_suites = list("cipher-suites");
        let min_version = self.tls_value("tls-min-version");
        let max_version = self.tls_value("tls-max-version");
        let client = oxcd_tls::TlsInfo {
            cert_file: self.tls_value("cert-file"),
            key_file: self.tls_value("key-file"),
            trusted_ca_file: self.tls_value("trusted-ca-file"),
            client_cert_auth: self.tls_bool("client-cert-auth")?,
            crl_file: self.tls_value("client-crl-file"),
            allowed_hostname: list("client-cert-allowed-hostname"),
            cipher_suites: cipher_suites.clone(),
            min_version: min_version.clone(),
            max_version: max_version.clone(),
            ..Default::default()
        };
        let peer = oxcd_tls::TlsInfo {
            cert_file: self.tls_value("peer-cert-file"),
            key_file: self.tls_value("peer-key-file"),
            trusted_ca_file: self.tls_value("peer-trusted-ca-file"),
            client_cert_auth: self.tls_bool("peer-client-cert-auth")?,
            crl_file: self.tls_value("peer-crl-file"),
            allowed_cn: list("peer-cert-allowed-cn"),
            allowed_hostname: list("peer-cert-allowed-hostname"),
            skip_client_san_verify: self
                .tls_bool("experimental-peer-skip-client-san-verification")?,
            cipher_suites,
            min_version,
            max_version,
            ..Default::default()
        };
        // Each shared setting alone first, so the error names its flag.
        let single = [
            (
                "tls-min-version",
                oxcd_tls::TlsInfo {
                    min_version: client.min_version.clone(),
                    ..Default::default()
                },
            ),
            (
                "tls-max-version",
                oxcd_tls::TlsInfo {
                    max_version: client.max_version.clone(),
                    ..Default::default()
                },
            ),
            (
                "cipher-suites",
                oxcd_tls::TlsInfo {
                    cipher_suites: client.cipher_suites.clone(),
                    ..Default::default()
                },
            ),
        ];
        for (flag, info) in &single {
            info.validate()
                .map_err(|e| invalid(&self.tls_value(flag), &self.origin(flag), e.to_string()))?;
        }
        for (info, flag) in [(&client, "cert-file"), (&peer, "peer-cert-allowed-cn")] {
            info.validate()
                .map_err(|e| invalid(&self.tls_value(flag), &self.origin(flag), e.to_string()))?;
        }
        let validity = self.tls_value("self-signed-cert-validity");
        let validity_years = if validity.is_empty() {
            1
        } else {
            self.parse("self-signed-cert-validity", &validity, |s| {
                s.parse::<u32>().map_err(|e| e.to_string())
            })?
        };
        Ok(ParsedTls {
            client,
            peer,
            client_auto: self.tls_bool("auto-tls")?,
            peer_auto: self.tls_bool("peer-auto-tls")?,
            validity_years,
        })
    }

    pub(super) fn build(mut self, f: Flags) -> Result<Config, ConfigError> {
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
        let optional_urls = |s: &str| -> Result<Vec<Url>, String> {
            if s.trim().is_empty() {
                Ok(Vec::new())
            } else {
                parse_urls(s)
            }
        };
        let listen_client_http_urls = self.parse(
            "listen_client_http_urls",
            &f.listen_client_http_urls,
            optional_urls,
        )?;
        let listen_metrics_urls =
            self.parse("listen_metrics_urls", &f.listen_metrics_urls, optional_urls)?;
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
        let max_concurrent_streams =
            self.parse("max_concurrent_streams", &f.max_concurrent_streams, |s| {
                let n = parse_go_usize(s)?;
                u32::try_from(n).map_err(|_| "value out of range".to_owned())
            })?;
        self.parse("auth_token", &f.auth_token, |s| {
            s.parse::<oxcd_etcdserver::TokenOptions>()
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        let auth_token_ttl = self.parse("auth_token_ttl", &f.auth_token_ttl, parse_go_uint)?;
        let bcrypt_cost = self.parse("bcrypt_cost", &f.bcrypt_cost, parse_go_uint)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid(
                &f.bcrypt_cost,
                &self.origin("bcrypt_cost"),
                "bcrypt cost must be between 4 and 31",
            ));
        }
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
        let enable_ui = self.parse("enable_ui", &f.enable_ui, parse_go_bool)?;

        let mut log_level = self.parse("log_level", &f.log_level, parse_log_level)?;
        // etcd 3.4's deprecated `--debug`.
        if let Some(debug) = self.matches.get_one::<String>("debug") {
            if self.parse("debug", debug, parse_go_bool)? {
                log_level = LogLevel::Debug;
            }
        }
        self.parse("logger", &f.logger, |s| match s {
            "zap" => Ok(()),
            "capnslog" => Err("--logger=capnslog is removed in v3.5; use 'zap'".to_owned()),
            _ => Err(format!(
                "unknown logger option {s:?}; only 'zap' is supported"
            )),
        })?;
        let log_outputs = self.parse("log_outputs", &f.log_outputs, parse_log_outputs)?;
        let initial_corrupt_check = self.parse(
            "experimental_initial_corrupt_check",
            &f.experimental_initial_corrupt_check,
            parse_go_bool,
        )?;
        let corrupt_check_time = self.parse(
            "experimental_corrupt_check_time",
            &f.experimental_corrupt_check_time,
            parse_go_duration,
        )?;
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

        self.warn_not_implemented(&NotImplemented {
            wal_dir: wal_dir.is_some(),
            enable_pprof,
        });

        let tls = self.parse_tls()?;

        // Validation in the order of etcd's `embed.Config.Validate`.
        for url in listen_peer_urls
            .iter()
            .chain(&listen_client_urls)
            .chain(&listen_client_http_urls)
            .chain(&listen_metrics_urls)
        {
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
            listen_client_http_urls,
            listen_metrics_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_token: f.initial_cluster_token,
            initial_cluster_state,
            max_request_bytes,
            max_txn_ops,
            max_concurrent_streams,
            auth_token: f.auth_token,
            auth_token_ttl: Duration::from_secs(auth_token_ttl),
            bcrypt_cost: bcrypt_cost as u32,
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
            initial_corrupt_check,
            corrupt_check_time,
            enable_lease_checkpoint,
            auto_compaction,
            enable_pprof,
            enable_ui,
            metrics,
            client_tls: tls.client,
            peer_tls: tls.peer,
            client_auto_tls: tls.client_auto,
            peer_auto_tls: tls.peer_auto,
            self_signed_cert_validity: tls.validity_years,
            warnings: self.warnings,
        })
    }

    /// One warning per setting that is parsed and checked but not acted on yet, naming it
    /// as ignored (the maintenance and metrics work implement them).
    fn warn_not_implemented(&mut self, n: &NotImplemented) {
        let mut ignored = |what: &str, effect: &str| {
            self.warnings.push(format!(
                "{what} is not implemented yet and is ignored: {effect}"
            ));
        };
        if n.wal_dir {
            ignored("--wal-dir", "the WAL stays in <data-dir>/member/wal");
        }
        if n.enable_pprof {
            ignored("--enable-pprof", "oxcd serves no /debug/pprof endpoint");
        }
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

/// The settings [`Builder::warn_not_implemented`] looks at.
struct NotImplemented {
    wal_dir: bool,
    enable_pprof: bool,
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

impl Config {
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
