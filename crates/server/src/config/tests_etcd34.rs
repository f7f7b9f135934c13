//! Go-style number/duration parsing, and every flag of etcd 3.4.23 being known.

use super::*;

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

/// Every flag of Debian's etcd 3.4.23 (`etcd --help`) is known: implemented, refused when
/// enabled, or accepted with a warning; none is an unknown-flag error.
#[test]
fn every_etcd_34_flag_is_known() {
    const ETCD_34_FLAGS: &[&str] = &[
        "advertise-client-urls",
        "auth-token",
        "auth-token-ttl",
        "auto-compaction-mode",
        "auto-compaction-retention",
        "auto-tls",
        "backend-batch-interval",
        "backend-batch-limit",
        "bcrypt-cost",
        "cert-file",
        "cipher-suites",
        "client-cert-allowed-hostname",
        "client-cert-auth",
        "client-crl-file",
        "cors",
        "data-dir",
        "debug",
        "discovery",
        "discovery-fallback",
        "discovery-proxy",
        "discovery-srv",
        "discovery-srv-name",
        "election-timeout",
        "enable-pprof",
        "enable-v2",
        "experimental-backend-bbolt-freelist-type",
        "experimental-compaction-batch-limit",
        "experimental-corrupt-check-time",
        "experimental-enable-lease-checkpoint",
        "experimental-enable-v2v3",
        "experimental-initial-corrupt-check",
        "experimental-peer-skip-client-san-verification",
        "experimental-warning-apply-duration",
        "experimental-watch-progress-notify-interval",
        "force-new-cluster",
        "grpc-keepalive-interval",
        "grpc-keepalive-min-time",
        "grpc-keepalive-timeout",
        "heartbeat-interval",
        "host-whitelist",
        "initial-advertise-peer-urls",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "initial-election-tick-advance",
        "key-file",
        "listen-client-urls",
        "listen-metrics-urls",
        "listen-peer-urls",
        "log-level",
        "log-outputs",
        "log-package-levels",
        "logger",
        "max-concurrent-streams",
        "max-request-bytes",
        "max-snapshots",
        "max-txn-ops",
        "max-wals",
        "metrics",
        "name",
        "peer-auto-tls",
        "peer-cert-allowed-cn",
        "peer-cert-allowed-hostname",
        "peer-cert-file",
        "peer-client-cert-auth",
        "peer-crl-file",
        "peer-key-file",
        "peer-trusted-ca-file",
        "pre-vote",
        "proxy",
        "proxy-dial-timeout",
        "proxy-failure-wait",
        "proxy-read-timeout",
        "proxy-refresh-interval",
        "proxy-write-timeout",
        "quota-backend-bytes",
        "snapshot-count",
        "strict-reconfig-check",
        "trusted-ca-file",
        "wal-dir",
    ];
    let cmd = super::flags::command();
    let known: Vec<&str> = cmd
        .get_arguments()
        .flat_map(super::flags::long_names)
        .collect();
    let unknown: Vec<&&str> = ETCD_34_FLAGS
        .iter()
        .filter(|f| !known.contains(f) && **f != "help")
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(ok(&["--debug"]).log_level, LogLevel::Debug);
    assert_eq!(ok(&["--debug=false"]).log_level, LogLevel::Info);
}
