//! The etcd-style command line of one member (the flags oxcd and etcd share).
//!
//! Invariant: the same flags start oxcd and etcd; optional flags are only passed when set,
//! so a single-member server gets exactly `--name`, `--data-dir`, the four URL flags,
//! `--initial-cluster` and its extra arguments.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a member is started with.
#[derive(Clone, Debug)]
pub struct MemberFlags {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub listen_peer_url: String,
    /// `--initial-advertise-peer-urls` (a proxy's URL when proxied).
    pub adv_peer_url: String,
    pub initial_cluster: String,
    /// `--initial-cluster-token`, if any.
    pub token: Option<String>,
    /// `--initial-cluster-state existing|new`, if given.
    pub state_existing: Option<bool>,
    pub extra_args: Vec<String>,
}

impl MemberFlags {
    /// `bin` with these flags, run in `cwd`.
    pub fn command(&self, bin: &Path, cwd: &Path) -> Command {
        let c = &self.client_url;
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", c, "--advertise-client-urls", c])
            .args(["--listen-peer-urls", &self.listen_peer_url])
            .args(["--initial-advertise-peer-urls", &self.adv_peer_url])
            .args(["--initial-cluster", &self.initial_cluster]);
        if let Some(t) = &self.token {
            cmd.args(["--initial-cluster-token", t]);
        }
        if let Some(existing) = self.state_existing {
            cmd.args([
                "--initial-cluster-state",
                if existing { "existing" } else { "new" },
            ]);
        }
        cmd.args(&self.extra_args).current_dir(cwd);
        cmd
    }
}

/// `http://127.0.0.1:<port>`.
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}
