//! Unit tests of flag and environment parsing, validation and the Go-style value parsers.

use std::collections::HashMap;

use super::parse::{parse_go_duration, parse_go_int, parse_go_uint};
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
    assert!(cfg.enable_ui);
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
    assert_only_not_implemented_warnings(&cfg);
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
    assert_only_not_implemented_warnings(&cfg);
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
    let e = parse_env(&[], &[("ETCD_TLS_MIN_VERSION", "TLS1.0")]).unwrap_err();
    assert!(e.to_string().contains("ETCD_TLS_MIN_VERSION"), "{e}");
}

#[test]
fn tls_flags_and_env_fill_tls_info() {
    let cfg = parse_env(
        &[
            "--cert-file=/s.crt",
            "--key-file=/s.key",
            "--trusted-ca-file=/ca.crt",
            "--client-cert-auth",
            "--client-crl-file=/c.crl",
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "--tls-min-version=TLS1.2",
            "--listen-client-urls=https://127.0.0.1:2379",
            "--advertise-client-urls=https://127.0.0.1:2379",
            "--peer-cert-allowed-cn=member",
            "--peer-auto-tls",
        ],
        &[
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true"),
            ("ETCD_PEER_TRUSTED_CA_FILE", "/p.crt"),
        ],
    )
    .unwrap();
    let c = &cfg.client_tls;
    assert_eq!(
        (c.cert_file.as_str(), c.key_file.as_str()),
        ("/s.crt", "/s.key")
    );
    assert_eq!(c.trusted_ca_file, "/ca.crt");
    assert!(c.client_cert_auth);
    assert_eq!(c.crl_file, "/c.crl");
    assert_eq!(c.cipher_suites, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
    assert_eq!(c.min_version, "TLS1.2");
    assert_eq!(cfg.listen_client_urls[0].scheme(), "https");
    let p = &cfg.peer_tls;
    assert!(p.client_cert_auth);
    assert_eq!(p.trusted_ca_file, "/p.crt");
    assert_eq!(p.allowed_cn, ["member"]);
    assert!(cfg.peer_auto_tls && !cfg.client_auto_tls);
    assert_eq!(cfg.self_signed_cert_validity, 1);
    // etcd's TLSInfo checks.
    let e = parse(&["--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"]).unwrap_err();
    assert!(e.to_string().contains("mutually exclusive"), "{e}");
    let e = parse(&["--cipher-suites=NOT_A_SUITE"]).unwrap_err();
    assert!(e.to_string().contains("NOT_A_SUITE"), "{e}");
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
    assert!(parse(&["--advertise-client-urls", "https://a:2379"]).is_ok());
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
    let e = parse_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]).unwrap_err();
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
        &["--discovery", "https://discovery.etcd.io/x"][..],
        &["--proxy", "on"],
        &["--enable-v2"],
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
        "--discovery-fallback=proxy",
        "--auth-token=simple",
        "--enable-v2=false",
    ]);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn ignored_flags_warn() {
    let cfg = ok(&[
        "--max-wals",
        "5",
        "-experimental-compact-hash-check-enabled",
    ]);
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("--max-wals"));
    assert!(
        cfg.warnings.iter().all(|w| w.contains("ignored")),
        "{:?}",
        cfg.warnings
    );
}

/// Parsed settings that oxcd does not act on yet each warn, and nothing else does.
fn assert_only_not_implemented_warnings(cfg: &Config) {
    assert!(
        cfg.warnings
            .iter()
            .all(|w| w.contains("is not implemented yet and is ignored")),
        "{:?}",
        cfg.warnings
    );
    // `--metrics=extensive` is implemented (gRPC handling-time histograms).
    assert!(
        !cfg.warnings.iter().any(|w| w.starts_with("--metrics")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn parsed_but_not_implemented_settings_warn() {
    for (args, flag) in [
        (&["--wal-dir", "/tmp/wal"][..], "--wal-dir"),
        (&["--enable-pprof"], "--enable-pprof"),
    ] {
        let cfg = ok(args);
        assert_eq!(cfg.warnings.len(), 1, "{args:?}: {:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].starts_with(&format!("{flag} is not implemented yet and is ignored")),
            "{args:?}: {:?}",
            cfg.warnings
        );
    }
    // Their "off" values say nothing.
    let cfg = ok(&[
        "--quota-backend-bytes=0",
        "--auto-compaction-retention=0",
        "--enable-pprof=false",
        "--metrics=basic",
        "--wal-dir=",
    ]);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
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

// The value parsers and the list of etcd 3.4 flags, in their own file.
#[path = "tests_etcd34.rs"]
mod etcd34;

#[test]
fn enable_ui_flag_env_and_file() {
    assert!(ok(&["--enable-ui"]).enable_ui);
    assert!(!ok(&["--enable-ui=false"]).enable_ui);
    assert!(err(&["--enable-ui=maybe"]).contains("maybe"));
    let env = |k: &str| (k == "ETCD_ENABLE_UI").then(|| "false".to_owned());
    assert!(!Config::from_args(["oxcd"], env).unwrap().enable_ui);
}
