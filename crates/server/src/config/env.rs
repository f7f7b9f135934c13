//! `ETCD_*` environment variables: each flag can be set through
//! `ETCD_<FLAG_IN_UPPER_SNAKE>`.
//!
//! Invariants: an empty variable counts as unset; a flag given on the command line wins
//! and the shadowed variable is reported as a warning; `ETCD_VERSION` is never applied;
//! unrecognised `ETCD_*` variables (not `ETCDCTL_*`) are reported by
//! [`Config::unrecognized_env_warnings`].

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use super::flags::{command, long_names};
use super::{Config, ConfigError};

/// Prefix of the environment variables that mirror the flags.
const ENV_PREFIX: &str = "ETCD_";

/// `ETCD_<NAME>` for a flag name (`data-dir` → `ETCD_DATA_DIR`).
pub(super) fn env_key(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// Flags taken from the environment, as extra `--name=value` arguments.
pub(super) struct EnvArgs {
    pub(super) args: Vec<OsString>,
    /// Arg id -> env var it was taken from.
    pub(super) origin: HashMap<String, String>,
    pub(super) warnings: Vec<String>,
}

/// The `ETCD_*` values (looked up through `env`) for the flags of `cmd` that `cli` did
/// not get on the command line.
pub(super) fn env_args(
    cmd: &Command,
    cli: &ArgMatches,
    env: impl Fn(&str) -> Option<String>,
) -> EnvArgs {
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
    EnvArgs {
        args: from_env,
        origin: env_origin,
        warnings,
    }
}

impl Config {
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
}
