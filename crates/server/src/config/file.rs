//! `--config-file`: etcd's YAML configuration file, turned into `--key=value` arguments so
//! that a file goes through exactly the same parsing and checks as flags.
//!
//! Invariants (etcd 3.4/3.5's `configFromFile`):
//! * Top-level keys are etcd's flag names (`data-dir`, `listen-client-urls`, ...). A key
//!   with no value (`wal-dir:`) leaves the flag at its default, as in etcd.
//! * `client-transport-security` / `peer-transport-security` hold `cert-file`, `key-file`,
//!   `client-cert-auth`, `trusted-ca-file`, `auto-tls` (and `crl-file`, `allowed-cn`,
//!   `allowed-hostname`), mapped to the client/peer TLS flags.
//! * Lists (`log-outputs: [stderr]`, `cipher-suites: [...]`) are joined with commas; an
//!   integer given for a duration flag is nanoseconds (Go's `time.Duration` in JSON).
//! * Keys that are no flag are accepted with a warning when they carry a value (etcd's
//!   YAML decoding ignores unknown keys); a value of the wrong shape is an error. Flags
//!   oxcd accepts but ignores warn as they do on the command line.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::Command;
use serde_yaml::Value;

use super::flags::long_names;
use super::ConfigError;

/// Flags whose value is a Go `time.Duration`: a bare integer in YAML is nanoseconds.
const DURATION_FLAGS: &[&str] = &[
    "experimental-watch-progress-notify-interval",
    "watch-progress-notify-interval",
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "backend-batch-interval",
    "experimental-corrupt-check-time",
    "experimental-compact-hash-check-time",
    "experimental-warning-apply-duration",
    "experimental-wait-cluster-ready-timeout",
    "warning-unary-request-duration",
    "experimental-warning-unary-request-duration",
];

/// The arguments a config file stands for, as `(args, origin, warnings)`: `args` are
/// `--flag=value` (no `argv[0]`), `origin` maps each arg id to where its value came from
/// (`data-dir in /etc/etcd.yml`) for error messages.
pub(super) struct FileArgs {
    pub(super) args: Vec<OsString>,
    pub(super) origin: HashMap<String, String>,
    pub(super) warnings: Vec<String>,
}

/// Reads `path` and translates it for `cmd`.
pub(super) fn load(cmd: &Command, path: &str) -> Result<FileArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfigFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    translate(cmd, path, &text)
}

/// Translates the YAML `text` of the file `path` for `cmd`.
pub(super) fn translate(cmd: &Command, path: &str, text: &str) -> Result<FileArgs, ConfigError> {
    let bad = |reason: String| ConfigError::ConfigFile {
        path: path.to_owned(),
        reason,
    };
    let root: Value = serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let map = match root {
        Value::Null => serde_yaml::Mapping::new(),
        Value::Mapping(map) => map,
        _ => {
            return Err(bad(
                "the top level must be a mapping of flag names".to_owned()
            ))
        }
    };
    // Long flag name -> arg id.
    let ids: HashMap<&str, &str> = cmd
        .get_arguments()
        .flat_map(|arg| long_names(arg).map(move |name| (name, arg.get_id().as_str())))
        .collect();

    let mut out = FileArgs {
        args: Vec::new(),
        origin: HashMap::new(),
        warnings: Vec::new(),
    };
    for (key, value) in map {
        let Value::String(key) = key else {
            return Err(bad(format!("key {key:?} is not a string")));
        };
        match key.as_str() {
            "client-transport-security" | "peer-transport-security" => {
                let peer = key.starts_with("peer");
                let Some(entries) =
                    transport_entries(&value).map_err(|r| bad(format!("{key}: {r}")))?
                else {
                    continue;
                };
                for (sub, v) in entries {
                    let Some(flag) = transport_flag(peer, &sub) else {
                        out.warnings.push(format!(
                            "unrecognized key {key}.{sub} in config file {path}; ignored"
                        ));
                        continue;
                    };
                    out.push(&ids, flag, &format!("{key}.{sub}"), path, &v)
                        .map_err(bad)?;
                }
            }
            _ if ids.contains_key(key.as_str()) => {
                out.push(&ids, &key, &key, path, &value).map_err(bad)?
            }
            _ => {
                if !is_empty(&value) {
                    out.warnings.push(format!(
                        "{key} in config file {path} is not an etcd configuration key; ignored"
                    ));
                }
            }
        }
    }
    Ok(out)
}

impl FileArgs {
    /// Adds `--flag=<value>` unless `value` is empty (null).
    fn push(
        &mut self,
        ids: &HashMap<&str, &str>,
        flag: &str,
        key: &str,
        path: &str,
        value: &Value,
    ) -> Result<(), String> {
        let Some(text) = scalar_text(flag, value).map_err(|r| format!("{key}: {r}"))? else {
            return Ok(());
        };
        let id = ids
            .get(flag)
            .copied()
            .ok_or_else(|| format!("{key}: no such flag --{flag}"))?;
        self.args.push(format!("--{flag}={text}").into());
        self.origin
            .insert(id.to_owned(), format!("{key} in config file {path}"));
        Ok(())
    }
}

/// The entries of a `*-transport-security` mapping; `None` when it is empty.
fn transport_entries(value: &Value) -> Result<Option<Vec<(String, Value)>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) => Ok((k.clone(), v.clone())),
                other => Err(format!("key {other:?} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(format!("expected a mapping, got {other:?}")),
    }
}

/// The flag a `*-transport-security` key stands for.
fn transport_flag(peer: bool, key: &str) -> Option<&'static str> {
    Some(match (peer, key) {
        (false, "cert-file") => "cert-file",
        (false, "key-file") => "key-file",
        (false, "client-cert-auth") => "client-cert-auth",
        (false, "trusted-ca-file" | "ca-file") => "trusted-ca-file",
        (false, "auto-tls") => "auto-tls",
        (false, "crl-file") => "client-crl-file",
        (false, "allowed-hostname") => "client-cert-allowed-hostname",
        (true, "cert-file") => "peer-cert-file",
        (true, "key-file") => "peer-key-file",
        (true, "client-cert-auth") => "peer-client-cert-auth",
        (true, "trusted-ca-file" | "ca-file") => "peer-trusted-ca-file",
        (true, "auto-tls") => "peer-auto-tls",
        (true, "crl-file") => "peer-crl-file",
        (true, "allowed-cn") => "peer-cert-allowed-cn",
        (true, "allowed-hostname") => "peer-cert-allowed-hostname",
        _ => return None,
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(map) => map.is_empty(),
        _ => false,
    }
}

/// A YAML value as flag text: `None` for null; lists joined with commas.
fn scalar_text(flag: &str, value: &Value) -> Result<Option<String>, String> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if DURATION_FLAGS.contains(&flag) && n.is_u64() => format!("{n}ns"),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let parts = items
                .iter()
                .map(|item| match scalar_text(flag, item)? {
                    Some(text) => Ok(text),
                    None => Err("a list item is empty".to_owned()),
                })
                .collect::<Result<Vec<_>, String>>()?;
            parts.join(",")
        }
        Value::Mapping(_) => return Err("expected a value, got a mapping".to_owned()),
        Value::Tagged(tagged) => return scalar_text(flag, &tagged.value),
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::super::{ClusterState, Config, ConfigError, LogLevel, LogOutput};
    use crate::config::format_url;

    fn write(yaml: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(yaml.as_bytes()).unwrap();
        f
    }

    fn load(yaml: &str, extra: &[&str]) -> Result<Config, ConfigError> {
        let f = write(yaml);
        let path = f.path().to_str().unwrap().to_owned();
        let args = ["oxcd", "--config-file", &path]
            .into_iter()
            .chain(extra.iter().copied());
        Config::from_args(args, |_| None)
    }

    #[test]
    fn enable_ui_key() {
        assert!(!load("enable-ui: false\n", &[]).unwrap().enable_ui);
        assert!(load("enable-ui: true\n", &[]).unwrap().enable_ui);
    }

    #[test]
    fn etcd_sample_keys_load() {
        let sample = include_str!("../../../../scripts/e2e/etcd.conf.yml.sample");
        let cfg = load(sample, &[]).unwrap();
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir.to_str(), Some("default.oxcd"));
        assert_eq!(cfg.snapshot_count, 10_000);
        assert!(!cfg.strict_reconfig_check);
        assert_eq!(cfg.log_outputs, vec![LogOutput::Stderr]);
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
        let urls: Vec<String> = cfg.listen_client_urls.iter().map(format_url).collect();
        assert_eq!(urls, ["http://localhost:2379"]);
        // pprof, max-snapshots/wals and the proxy timings are ignored, loudly.
        for flag in ["--enable-pprof", "--max-wals", "--proxy-dial-timeout"] {
            assert!(
                cfg.warnings
                    .iter()
                    .any(|w| w.contains(flag) && w.contains("ignored")),
                "{flag}: {:?}",
                cfg.warnings
            );
        }
    }

    #[test]
    fn file_replaces_flags_and_environment() {
        let f = write("name: from-file\ninitial-cluster: from-file=http://localhost:2380\n");
        let path = f.path().to_str().unwrap().to_owned();
        let env = |k: &str| match k {
            "ETCD_NAME" => Some("from-env".to_owned()),
            "ETCD_CONFIG_FILE" => Some(path.clone()),
            _ => None,
        };
        let cfg = Config::from_args(["oxcd", "--name", "from-flag"], env).unwrap();
        assert_eq!(cfg.name, "from-file");
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("--name") && w.contains("ignored")),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn values_lists_durations_and_debug() {
        let cfg = load(
            "log-outputs: [stdout, stderr]\n\
             experimental-watch-progress-notify-interval: 2000000000\n\
             heartbeat-interval: 50\n\
             election-timeout: 500\n\
             force-new-cluster: true\n\
             debug: true\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.log_outputs, vec![LogOutput::Stdout, LogOutput::Stderr]);
        assert_eq!(cfg.watch_progress_notify_interval.as_secs(), 2);
        assert_eq!(cfg.heartbeat_interval.as_millis(), 50);
        assert!(cfg.force_new_cluster);
        assert_eq!(cfg.log_level, LogLevel::Debug);
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let e = load("heartbeat-interval: fast\n", &[]).unwrap_err();
        assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e}");
        assert!(
            e.to_string().contains("heartbeat-interval in config file"),
            "{e}"
        );

        let e = load(
            "peer-transport-security:\n  allowed-cn: a\n  allowed-hostname: b\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
        let cfg = load(
            "client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  \
             client-cert-auth: true\n  trusted-ca-file: /ca.pem\n\
             peer-transport-security:\n  auto-tls: true\n  allowed-cn: member\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.client_tls.cert_file, "/c.pem");
        assert_eq!(cfg.client_tls.key_file, "/k.pem");
        assert!(cfg.client_tls.client_cert_auth);
        assert_eq!(cfg.client_tls.trusted_ca_file, "/ca.pem");
        assert!(cfg.peer_auto_tls);
        assert_eq!(cfg.peer_tls.allowed_cn, ["member"]);

        for bad in [
            "name: [a: b]\n",
            "- just\n- a list\n",
            "name: {a: b}\n",
            "{{{",
        ] {
            let e = load(bad, &[]).unwrap_err();
            assert!(matches!(e, ConfigError::ConfigFile { .. }), "{bad:?}: {e}");
        }
        let e =
            Config::from_args(["oxcd", "--config-file=/no/such/file.yml"], |_| None).unwrap_err();
        assert!(matches!(e, ConfigError::ConfigFile { .. }), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn unknown_and_inert_keys_warn() {
        let cfg = load(
            "no-such-key: 1\nlog-package-levels: etcdserver=DEBUG\nempty-unknown:\n\
             peer-transport-security:\n  auto-tls: false\n  bogus: 1\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 3, "{:?}", cfg.warnings);
        assert!(cfg.warnings.iter().all(|w| w.contains("ignored")));
    }
}
