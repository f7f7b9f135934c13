//! Test harness shared by the integration tests: starts a single-member server (oxcd or the
//! real etcd, chosen by `OXCD_TEST_SERVER=oxcd|etcd`, default oxcd) on free loopback ports
//! with a temporary data dir, and offers helpers to run `etcdctl` and Python against it.
//!
//! Every spawned process is killed by PID when its [`TestServer`] is dropped, and also gets
//! SIGKILL from the kernel (PR_SET_PDEATHSIG) if the thread that spawned it exits, so a
//! test binary that dies cannot leave servers behind. Consequence: start servers from the
//! test's own thread (or `block_in_place`), never from `spawn_blocking` pool threads.
//!
//! Env: `OXCD_TEST_SERVER=oxcd|etcd`, `OXCD_BIN` (oxcd binary, default the one cargo built),
//! `OXCD_ETCD_BIN` (default /usr/bin/etcd), `OXCD_ETCDCTL` (default /usr/bin/etcdctl),
//! `OXCD_PYTHON` (default `<repo>/.venv/bin/python`).
#![allow(dead_code)]

pub mod kvreq;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxcd_api::etcdserverpb::{RangeRequest, StatusRequest};

/// How long a server gets to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the process is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const PR_SET_PDEATHSIG: i32 = 1;

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

    pub fn binary(self) -> PathBuf {
        match self {
            ServerKind::Oxcd => std::env::var_os("OXCD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oxcd"))),
            ServerKind::Etcd => std::env::var_os("OXCD_ETCD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
        }
    }
}

pub fn server_kind() -> ServerKind {
    ServerKind::from_env()
}

/// Path of the `etcdctl` binary (`OXCD_ETCDCTL` or `/usr/bin/etcdctl`).
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCDCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcdctl"))
}

/// Root of the cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Picks a free loopback TCP port (bind to port 0 and release it). A port is never handed
/// out twice in one test process, so parallel tests cannot be given the same port.
pub fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
    panic!("no unused free port found in 100 tries");
}

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
    // Read both pipes on helper threads so a chatty child cannot block on a full pipe.
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

/// A running (or stopped) single-member server in its own temp dir.
pub struct TestServer {
    pub kind: ServerKind,
    dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
    starts: u32,
}

impl TestServer {
    /// Starts a server with the default flags and waits until it is ready.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags (e.g. `["--max-txn-ops", "3"]`) and waits until ready.
    pub fn start_with(args: &[&str]) -> TestServer {
        let mut s = Self::new_stopped(args);
        s.spawn_and_wait();
        s
    }

    /// Prepares ports and the temp dir but spawns nothing yet.
    pub fn new_stopped(args: &[&str]) -> TestServer {
        let kind = server_kind();
        let dir = tempfile::Builder::new()
            .prefix("oxcd-test-")
            .tempdir()
            .expect("tempdir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let client_port = free_port();
        let peer_port = free_port();
        TestServer {
            kind,
            dir,
            data_dir,
            client_port,
            peer_port,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            log_path,
            starts: 0,
        }
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// `127.0.0.1:PORT`, the form etcdctl's `--endpoints` prints back.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's captured stderr/stdout (all starts, appended).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn command(&self) -> Command {
        let c = self.client_url();
        let p = self.peer_url();
        let mut cmd = Command::new(self.kind.binary());
        cmd.arg("--name")
            .arg("n1")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .arg("--initial-cluster")
            .arg(format!("n1={p}"))
            .args(&self.extra_args)
            .current_dir(self.dir.path());
        cmd
    }

    /// Spawns the process (no readiness wait). Output goes to the log file.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        writeln!(log, "===== start #{} ({:?}) =====", self.starts, self.kind).unwrap();
        let log2 = log.try_clone().expect("clone log fd");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        // SAFETY: prctl is async-signal-safe; the closure touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGKILL as u64, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.kind.binary()));
        self.child = Some(child);
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
            if let Some(child) = self.child.as_mut() {
                if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                    self.child = None;
                    return Err(format!("server exited early with {st}"));
                }
            } else {
                return Err("server not running".into());
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
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL by PID and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on our own child's PID (not yet reaped, so not reused).
            unsafe {
                kill(child.id() as i32, SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// SIGTERM by PID and wait (bounded by [`STOP_TIMEOUT`], then SIGKILL). Returns the status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let pid = self.child.as_ref()?.id();
        // SAFETY: as in kill9.
        unsafe {
            kill(pid as i32, SIGTERM);
        }
        match self.wait_exit(STOP_TIMEOUT) {
            Some(st) => Some(st),
            None => {
                eprintln!("server {pid} ignored SIGTERM for {STOP_TIMEOUT:?}; killing");
                self.kill9();
                None
            }
        }
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
        let mut cmd = Command::new(etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=10s")
            .args(args);
        run_with_timeout(cmd, stdin.map(str::as_bytes), Duration::from_secs(30))
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = {
                let start = log.len().saturating_sub(20_000);
                let mut i = start;
                while !log.is_char_boundary(i) {
                    i += 1;
                }
                log[i..].to_string()
            };
            eprintln!(
                "--- {:?} server log ({}; tail) ---\n{tail}\n--- end of server log ---",
                self.kind,
                self.log_path.display()
            );
        }
    }
}

/// Python interpreter of the project venv (`OXCD_PYTHON`, else `<root>/.venv/bin/python`).
pub fn python_bin() -> PathBuf {
    std::env::var_os("OXCD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// One readiness probe on a private runtime in a helper thread (so it is safe to call from
/// inside an async test): Status must report a leader and a Range must succeed.
fn probe_ready(url: &str) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let fut = async {
                let ch = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| e.to_string())?
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let st = MaintenanceClient::new(ch.clone())
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| format!("status: {e}"))?
                    .into_inner();
                if st.leader == 0 {
                    return Err("no leader yet".to_string());
                }
                KvClient::new(ch)
                    .range(RangeRequest {
                        key: b"oxcd-test-readiness-probe".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("range: {e}"))?;
                Ok(())
            };
            tokio::time::timeout(Duration::from_secs(3), fut)
                .await
                .map_err(|_| "probe timed out".to_string())?
        })
    })
    .join()
    .map_err(|_| "probe thread panicked".to_string())?
}

/// Describes an exit status including the signal, if any.
pub fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{st:?}"),
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

/// Skips (returns true and prints why) when the test only applies to oxcd.
pub fn skip_unless_oxcd(test: &str) -> bool {
    if server_kind() != ServerKind::Oxcd {
        eprintln!(
            "SKIP {test}: oxcd-only test (OXCD_TEST_SERVER={:?})",
            server_kind()
        );
        return true;
    }
    false
}
