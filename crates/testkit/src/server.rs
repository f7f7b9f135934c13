//! A single-member server (oxcd, or etcd with `OXCD_TEST_SERVER=etcd`) on free loopback
//! ports with a temporary data dir, plus helpers to run etcdctl and Python against it.
//!
//! Invariants: the process is killed by PID when the [`TestServer`] is dropped (see
//! [`crate::process`]); on a panic the tail of its log is printed. Ports and the data dir
//! stay the same across restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::bins::{python_bin, ServerKind};
use crate::cmd::{etcdctl_at, run_with_timeout, CmdOutput, EtcdctlTimeouts};
use crate::flags::{local_url, MemberFlags};
use crate::ports::free_port;
use crate::process::Proc;
use crate::status::probe_ready;

/// How long a server gets to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the process is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) single-member server in its own temp dir.
pub struct TestServer {
    pub kind: ServerKind,
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    extra_args: Vec<String>,
    /// Extra environment of the process (e.g. `FAILPOINTS` for a failpoints build).
    pub env: Vec<(String, String)>,
    proc: Proc,
}

impl TestServer {
    /// Starts a server with extra flags (e.g. `["--max-txn-ops", "3"]`) and waits until
    /// ready. `oxcd` is the default oxcd binary (`OXCD_BIN` overrides it).
    pub fn start_with(oxcd: &Path, args: &[&str]) -> TestServer {
        let mut s = Self::new_stopped(oxcd, args);
        s.spawn_and_wait();
        s
    }

    /// Prepares ports and the temp dir but spawns nothing yet.
    pub fn new_stopped(oxcd: &Path, args: &[&str]) -> TestServer {
        let kind = ServerKind::from_env();
        Self::new_stopped_kind(kind, kind.binary(Some(oxcd)), args)
    }

    /// Like [`TestServer::new_stopped`] but always oxcd, running exactly `bin` (no
    /// `OXCD_BIN` override): for special builds such as the `crash-journal` one.
    pub fn new_stopped_exact(bin: &Path, args: &[&str]) -> TestServer {
        Self::new_stopped_kind(ServerKind::Oxcd, bin.to_path_buf(), args)
    }

    fn new_stopped_kind(kind: ServerKind, bin: PathBuf, args: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("oxcd-test-")
            .tempdir()
            .expect("tempdir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        TestServer {
            kind,
            bin,
            dir,
            data_dir,
            client_port: free_port(),
            peer_port: free_port(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            proc: Proc::new(log_path),
        }
    }

    pub fn client_url(&self) -> String {
        local_url(self.client_port)
    }

    pub fn peer_url(&self) -> String {
        local_url(self.peer_port)
    }

    /// `127.0.0.1:PORT`, the form etcdctl's `--endpoints` prints back.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_running()
    }

    /// The server's captured stderr/stdout (all starts, appended).
    pub fn log(&self) -> String {
        self.proc.log()
    }

    fn command(&self) -> Command {
        let p = self.peer_url();
        let mut cmd = MemberFlags {
            name: "n1".into(),
            data_dir: self.data_dir.clone(),
            client_url: self.client_url(),
            listen_peer_url: p.clone(),
            adv_peer_url: p.clone(),
            initial_cluster: format!("n1={p}"),
            token: None,
            state_existing: None,
            extra_args: self.extra_args.clone(),
        }
        .command(&self.bin, self.dir.path());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Spawns the process (no readiness wait). Output goes to the log file.
    pub fn spawn(&mut self) {
        assert!(!self.proc.is_running(), "server already running");
        let cmd = self.command();
        let label = format!("({:?})", self.kind);
        self.proc
            .spawn(cmd, &label)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Spawns and waits until ready; panics (printing the log) if it does not get ready.
    pub fn spawn_and_wait(&mut self) {
        self.spawn();
        if let Err(e) = self.wait_ready(READY_TIMEOUT) {
            let log = self.log();
            self.kill9();
            panic!(
                "{:?} server did not become ready: {e}\n--- server log ---\n{log}",
                self.kind
            );
        }
    }

    /// Waits until the server answers gRPC Status with a leader and a linearizable Range.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let url = self.client_url();
        let mut last_err = String::from("no attempt");
        while Instant::now() < deadline {
            if !self.proc.is_running() {
                return Err("server not running".into());
            }
            if let Some(st) = self.proc.exited() {
                return Err(format!("server exited early with {st}"));
            }
            match probe_ready(&url) {
                Ok(()) => return Ok(()),
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "timed out after {timeout:?}; last error: {last_err}"
        ))
    }

    /// Waits (bounded) for the process to exit on its own; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    /// SIGKILL by PID and reap.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// SIGTERM by PID and wait (bounded by [`STOP_TIMEOUT`], then SIGKILL). Returns the status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let who = format!("server {}", self.pid()?);
        self.proc.stop(STOP_TIMEOUT, &who)
    }

    /// Stops gracefully (if running) and starts again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// `etcdctl` (API v3) against this server.
    pub fn etcdctl(&self, args: &[&str]) -> CmdOutput {
        self.etcdctl_stdin(args, None)
    }

    /// `etcdctl` with the given bytes on stdin (for `txn`).
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> CmdOutput {
        etcdctl_at(&[self.endpoint()], args, stdin, EtcdctlTimeouts::SINGLE)
    }

    /// Runs a Python script with the project venv's python, with `OXCD_ENDPOINT` set.
    pub fn python(&self, script: &Path, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new(python_bin());
        cmd.arg(script)
            .args(args)
            .env("OXCD_ENDPOINT", self.endpoint());
        run_with_timeout(cmd, None, Duration::from_secs(120))
    }
}

/// Connects an `etcd-client` to the server (bounded timeouts).
pub async fn etcd_client(server: &TestServer) -> etcd_client::Client {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10));
    etcd_client::Client::connect([server.client_url()], Some(opts))
        .await
        .expect("etcd-client connect")
}

/// A raw tonic channel to the server (for the `oxcd_api` generated clients).
pub async fn channel(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(server.client_url())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("tonic connect")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- {:?} server log ({}; tail) ---\n{}\n--- end of server log ---",
                self.kind,
                self.proc.log_path().display(),
                self.proc.tail(20_000)
            );
        }
    }
}
