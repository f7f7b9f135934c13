//! Locating the binaries the tests run: the server under test (oxcd or etcd, chosen by
//! `OXCD_TEST_SERVER=oxcd|etcd`), `etcdctl` and the project's Python.
//!
//! Invariant: an environment override always wins over a default: `OXCD_BIN` (oxcd),
//! `OXCD_ETCD_BIN` (default /usr/bin/etcd), `OXCD_ETCDCTL` (default /usr/bin/etcdctl),
//! `OXCD_PYTHON` (default `<workspace>/.venv/bin/python`). The oxcd default is the path the
//! caller passes (e.g. `env!("CARGO_BIN_EXE_oxcd")`), else `target/debug/oxcd`.

use std::path::{Path, PathBuf};

/// Which server binary the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Oxcd,
    Etcd,
}

impl ServerKind {
    /// From `OXCD_TEST_SERVER` (`oxcd` by default).
    pub fn from_env() -> ServerKind {
        match std::env::var("OXCD_TEST_SERVER").as_deref() {
            Ok("etcd") => ServerKind::Etcd,
            Ok("oxcd") | Ok("") | Err(_) => ServerKind::Oxcd,
            Ok(other) => panic!("OXCD_TEST_SERVER must be `oxcd` or `etcd`, not {other:?}"),
        }
    }

    /// The binary of this kind; `oxcd` is the default oxcd path (see [`oxcd_bin`]).
    pub fn binary(self, oxcd: Option<&Path>) -> PathBuf {
        match self {
            ServerKind::Oxcd => oxcd_bin(oxcd),
            ServerKind::Etcd => std::env::var_os("OXCD_ETCD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
        }
    }
}

/// The oxcd binary: `$OXCD_BIN`, else `default`, else `target/debug/oxcd` under the
/// workspace root (or `$CARGO_TARGET_DIR/debug/oxcd`).
pub fn oxcd_bin(default: Option<&Path>) -> PathBuf {
    if let Some(p) = std::env::var_os("OXCD_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = default {
        return p.to_path_buf();
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    target.join("debug").join("oxcd")
}

/// Path of the `etcdctl` binary (`OXCD_ETCDCTL` or `/usr/bin/etcdctl`).
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCDCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcdctl"))
}

/// Root of the cargo workspace (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Python interpreter of the project venv (`OXCD_PYTHON`, else `<root>/.venv/bin/python`).
pub fn python_bin() -> PathBuf {
    std::env::var_os("OXCD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}
