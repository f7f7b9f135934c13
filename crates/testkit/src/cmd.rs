//! Running short-lived commands (etcdctl, Python) to completion with a time bound.
//!
//! Invariants: a command never outlives its timeout (it is killed, then reaped); both output
//! pipes are drained on helper threads, so a chatty child cannot block on a full pipe.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bins::etcdctl_bin;

/// Output of a finished child process, decoded as UTF-8 (lossy).
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    fn from_output(o: Output) -> Self {
        CmdOutput {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless the command succeeded; returns stdout.
    pub fn ok(&self) -> &str {
        assert!(self.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Panics unless the command failed; returns stderr.
    pub fn err(&self) -> &str {
        assert!(!self.success(), "command unexpectedly succeeded: {self:#?}");
        &self.stderr
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok().trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs a command with an optional stdin, killing it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> CmdOutput {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input).expect("write stdin");
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            eprintln!("command timed out after {timeout:?}: {cmd:?}");
            break s;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    CmdOutput::from_output(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// Time bounds of one etcdctl run: its own `--command-timeout` and the kill deadline.
#[derive(Clone, Copy, Debug)]
pub struct EtcdctlTimeouts {
    pub command_secs: u64,
    pub total: Duration,
}

impl EtcdctlTimeouts {
    /// Against a single member.
    pub const SINGLE: EtcdctlTimeouts = EtcdctlTimeouts {
        command_secs: 10,
        total: Duration::from_secs(30),
    };
    /// Against a cluster (elections may be in progress).
    pub const CLUSTER: EtcdctlTimeouts = EtcdctlTimeouts {
        command_secs: 15,
        total: Duration::from_secs(40),
    };
}

/// `etcdctl` (API v3) against the given `host:port` endpoints, with optional stdin.
pub fn etcdctl_at(
    endpoints: &[String],
    args: &[&str],
    stdin: Option<&str>,
    t: EtcdctlTimeouts,
) -> CmdOutput {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=3s")
        .arg(format!("--command-timeout={}s", t.command_secs))
        .args(args);
    run_with_timeout(cmd, stdin.map(str::as_bytes), t.total)
}

/// `member list -w json` via etcdctl: (id, name, peer urls, client urls, is_learner).
pub type MemberRow = (u64, String, Vec<String>, Vec<String>, bool);

/// Parses `etcdctl member list -w json` output.
pub fn parse_member_list(v: &serde_json::Value) -> Vec<MemberRow> {
    let strs = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["ID"].as_u64().unwrap_or(0),
                        m["name"].as_str().unwrap_or("").to_string(),
                        strs(&m["peerURLs"]),
                        strs(&m["clientURLs"]),
                        m["isLearner"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Describes an exit status including the signal, if any.
pub fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{st:?}"),
    }
}
