//! Multi-member cluster harness for the `cluster_*` integration tests (issue 5).
//!
//! Spawns N members of the real server binary (oxcd, or etcd with `OXCD_TEST_SERVER=etcd`)
//! on loopback with free ports, each in its own temp dir with its combined stdout/stderr in
//! `<dir>/member.log`. Optionally every member's *advertised* peer URL points at a
//! fault-injecting TCP proxy ([`Proxy`]) that forwards to the member's real peer port and
//! can blackhole all traffic to and from chosen members (a network partition).
//!
//! Invariants:
//! - Every process is started from the test thread (so `PR_SET_PDEATHSIG` fires if the test
//!   thread dies) and killed by PID on drop; nothing else is ever signalled.
//! - Every wait is bounded in time; every loop is bounded in count or time.
//! - On panic, the tail of each member's log is printed and the temp dirs are kept (their
//!   paths are printed) so the full logs can be read.
//! - Cluster tests in one test binary run one at a time ([`serial`]): the machine has two
//!   cores, and two clusters under write load at once would make timing assertions flaky.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

/// A member's keys under a prefix: key -> (value, mod revision).
type Dump = BTreeMap<String, (String, i64)>;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGSTOP: i32 = 19;
pub const SIGCONT: i32 = 18;
const PR_SET_PDEATHSIG: i32 = 1;

/// Generous bound for "eventually" conditions (leader elected, members converged).
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a member gets to become ready at cluster start.
pub const START_WAIT: Duration = Duration::from_secs(25);

// ---------------------------------------------------------------------------------------
// Serialisation of cluster tests within one test binary.

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the per-binary cluster-test lock (poison-tolerant: one failed test must not fail
/// the others).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Which binary.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Oxcd,
    Etcd,
}

pub fn kind() -> Kind {
    match std::env::var("OXCD_TEST_SERVER").as_deref() {
        Ok("etcd") => Kind::Etcd,
        Ok("oxcd") | Ok("") | Err(_) => Kind::Oxcd,
        Ok(other) => panic!("OXCD_TEST_SERVER must be `oxcd` or `etcd`, not {other:?}"),
    }
}

pub fn binary(k: Kind) -> PathBuf {
    match k {
        Kind::Oxcd => std::env::var_os("OXCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oxcd"))),
        Kind::Etcd => std::env::var_os("OXCD_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
    }
}

pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCDCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcdctl"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

pub fn python_bin() -> PathBuf {
    std::env::var_os("OXCD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// Reserves `n` distinct free loopback ports (all listeners held until all are picked).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

// ---------------------------------------------------------------------------------------
// Commands.

#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
    pub fn ok(&self) -> &str {
        assert!(self.success(), "command failed: {self:#?}");
        &self.stdout
    }
    pub fn err(&self) -> &str {
        assert!(!self.success(), "command unexpectedly succeeded: {self:#?}");
        &self.stderr
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok().trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

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
    let o = Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    };
    CmdOutput {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `etcdctl` (API v3) against the given `host:port` endpoints.
pub fn etcdctl_at(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> CmdOutput {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=15s")
        .args(args);
    run_with_timeout(cmd, stdin.map(str::as_bytes), Duration::from_secs(40))
}

// ---------------------------------------------------------------------------------------
// Cluster options and members.

#[derive(Clone, Debug)]
pub struct Opts {
    pub members: usize,
    /// Route peer traffic through a [`Proxy`].
    pub proxy: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: Option<u64>,
    /// `--snapshot-catchup-entries` (oxcd only; etcd 3.4 has no such flag).
    pub catchup_entries: Option<u64>,
    pub token: String,
}

impl Opts {
    pub fn new(members: usize) -> Opts {
        Opts {
            members,
            proxy: false,
            heartbeat_ms: 100,
            election_ms: 1000,
            snapshot_count: None,
            catchup_entries: None,
            token: "oxcd-test-cluster".into(),
        }
    }
}

/// Raft status of one member (from Maintenance.Status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct St {
    pub member_id: u64,
    pub leader: u64,
    pub term: u64,
    pub raft_index: u64,
    pub applied: u64,
    pub revision: i64,
    pub is_learner: bool,
}

pub struct Member {
    pub name: String,
    dir: Option<tempfile::TempDir>,
    pub dir_path: PathBuf,
    pub data_dir: PathBuf,
    pub client_port: u16,
    /// The port the member listens on for peers.
    pub peer_port: u16,
    /// The port advertised to the other members (a proxy port when proxied).
    pub adv_peer_port: u16,
    /// `--initial-cluster` given to this member.
    pub initial_cluster: String,
    pub state_existing: bool,
    pub token: String,
    pub extra_args: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
    starts: u32,
    /// Member id, learned from Status.
    pub id: u64,
    stopped_by_signal: bool,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
    pub fn adv_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.adv_peer_port)
    }
    pub fn listen_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn command(&self, k: Kind) -> Command {
        let c = self.client_url();
        let mut cmd = Command::new(binary(k));
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &self.listen_peer_url()])
            .args(["--initial-advertise-peer-urls", &self.adv_peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args([
                "--initial-cluster-state",
                if self.state_existing {
                    "existing"
                } else {
                    "new"
                },
            ])
            .args(&self.extra_args)
            .current_dir(&self.dir_path);
        if k == Kind::Etcd {
            cmd.args(["--logger", "zap", "--log-outputs", "stderr"]);
        }
        cmd
    }

    fn spawn(&mut self, k: Kind) {
        assert!(self.child.is_none(), "{} already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open member log");
        writeln!(
            log,
            "===== {} start #{} ({:?}) =====",
            self.name, self.starts, k
        )
        .unwrap();
        let log2 = log.try_clone().expect("clone log fd");
        let mut cmd = self.command(k);
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
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", binary(k)));
        self.child = Some(child);
        self.stopped_by_signal = false;
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain syscall on our own (unreaped) child's PID.
            unsafe {
                kill(c.id() as i32, sig);
            }
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `signal`.
            unsafe {
                kill(child.id() as i32, SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to 15 s (then SIGKILL).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.as_ref()?;
        if self.stopped_by_signal {
            self.signal(SIGCONT);
        }
        self.signal(SIGTERM);
        match self.wait_exit(Duration::from_secs(15)) {
            Some(st) => Some(st),
            None => {
                eprintln!("{} ignored SIGTERM for 15s; killing", self.name);
                self.kill9();
                None
            }
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn stop_signal_only(&self) {
        self.signal(SIGTERM);
    }

    /// Waits (bounded) for the process to exit on its own.
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

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(st)
    }

    fn tail(&self, bytes: usize) -> String {
        let log = self.log();
        let mut i = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(i) {
            i += 1;
        }
        log[i..].to_string()
    }
}

// ---------------------------------------------------------------------------------------
// The cluster.

pub struct Cluster {
    pub kind: Kind,
    pub opts: Opts,
    pub members: Vec<Member>,
    pub proxy: Option<Proxy>,
    pub rt: tokio::runtime::Runtime,
    name: String,
    started: Instant,
}

/// An acknowledged put: key, value, revision from the response header.
pub type Acked = (String, String, i64);

#[derive(Debug, Default)]
pub struct WriterReport {
    pub acked: Vec<Acked>,
    pub errors: usize,
    pub last_error: Option<String>,
}

impl Cluster {
    /// Prepares and starts an `opts.members`-member cluster and waits until every member
    /// agrees on a leader. `name` labels logs.
    pub fn start(name: &str, opts: Opts) -> Cluster {
        let mut c = Cluster::prepare(name, opts);
        let all: Vec<usize> = (0..c.members.len()).collect();
        for i in all.clone() {
            c.spawn(i);
        }
        c.wait_leader(&all, START_WAIT);
        c
    }

    /// Prepares ports, dirs and the proxy, but spawns nothing.
    pub fn prepare(name: &str, opts: Opts) -> Cluster {
        let kind = kind();
        let n = opts.members;
        let ports = free_ports(3 * n);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut members = Vec::new();
        for i in 0..n {
            let client_port = ports[3 * i];
            let peer_port = ports[3 * i + 1];
            let adv_peer_port = if opts.proxy {
                ports[3 * i + 2]
            } else {
                peer_port
            };
            let dir = tempfile::Builder::new()
                .prefix(&format!("oxcd-{name}-n{}-", i + 1))
                .tempdir()
                .expect("tempdir");
            let dir_path = dir.path().to_path_buf();
            let mut extra = vec![
                format!("--heartbeat-interval={}", opts.heartbeat_ms),
                format!("--election-timeout={}", opts.election_ms),
            ];
            if let Some(s) = opts.snapshot_count {
                extra.push(format!("--snapshot-count={s}"));
            }
            if let (Some(c), Kind::Oxcd) = (opts.catchup_entries, kind) {
                extra.push(format!("--snapshot-catchup-entries={c}"));
            }
            members.push(Member {
                name: format!("n{}", i + 1),
                data_dir: dir_path.join("data"),
                log_path: dir_path.join("member.log"),
                dir: Some(dir),
                dir_path,
                client_port,
                peer_port,
                adv_peer_port,
                initial_cluster: String::new(),
                state_existing: false,
                token: opts.token.clone(),
                extra_args: extra,
                child: None,
                starts: 0,
                id: 0,
                stopped_by_signal: false,
            });
        }
        let ic = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.adv_peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = ic.clone();
        }
        let proxy = if opts.proxy {
            let p = Proxy::new();
            for (i, m) in members.iter().enumerate() {
                p.add_link(i, m.adv_peer_port, m.peer_port);
            }
            Some(p)
        } else {
            None
        };
        eprintln!(
            "[{name}] {:?} cluster of {n}: {}",
            kind,
            members
                .iter()
                .map(|m| format!(
                    "{} client={} peer={} adv={} dir={}",
                    m.name,
                    m.client_port,
                    m.peer_port,
                    m.adv_peer_port,
                    m.dir_path.display()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        Cluster {
            kind,
            opts,
            members,
            proxy,
            rt,
            name: name.to_string(),
            started: Instant::now(),
        }
    }

    /// Adds a (not yet started) member slot `n<k>` with fresh ports; returns its index.
    /// With a proxy, its peer traffic is proxied too.
    pub fn add_member_slot(&mut self) -> usize {
        let i = self.members.len();
        let ports = free_ports(3);
        let adv = if self.proxy.is_some() {
            ports[2]
        } else {
            ports[1]
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxcd-{}-n{}-", self.name, i + 1))
            .tempdir()
            .expect("tempdir");
        let dir_path = dir.path().to_path_buf();
        let extra = self.members[0].extra_args.clone();
        self.members.push(Member {
            name: format!("n{}", i + 1),
            data_dir: dir_path.join("data"),
            log_path: dir_path.join("member.log"),
            dir: Some(dir),
            dir_path,
            client_port: ports[0],
            peer_port: ports[1],
            adv_peer_port: adv,
            initial_cluster: String::new(),
            state_existing: true,
            token: self.opts.token.clone(),
            extra_args: extra,
            child: None,
            starts: 0,
            id: 0,
            stopped_by_signal: false,
        });
        if let Some(p) = &self.proxy {
            p.add_link(i, adv, ports[1]);
        }
        i
    }

    pub fn log(&self, msg: impl AsRef<str>) {
        eprintln!(
            "[{} +{:.1}s] {}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    pub fn spawn(&mut self, i: usize) {
        let k = self.kind;
        self.members[i].spawn(k);
        if let Some(p) = &self.proxy {
            p.set_pid(i, self.members[i].pid());
        }
    }

    pub fn kill9(&mut self, i: usize) {
        self.log(format!("kill -9 {}", self.members[i].name));
        self.members[i].kill9();
        if let Some(p) = &self.proxy {
            p.set_pid(i, None);
        }
    }

    pub fn sigstop(&mut self, i: usize) {
        self.log(format!("SIGSTOP {}", self.members[i].name));
        self.members[i].signal(SIGSTOP);
        self.members[i].stopped_by_signal = true;
    }

    pub fn sigcont(&mut self, i: usize) {
        self.log(format!("SIGCONT {}", self.members[i].name));
        self.members[i].signal(SIGCONT);
        self.members[i].stopped_by_signal = false;
    }

    pub fn stop(&mut self, i: usize) -> Option<ExitStatus> {
        self.log(format!("SIGTERM {}", self.members[i].name));
        let st = self.members[i].stop();
        if let Some(p) = &self.proxy {
            p.set_pid(i, None);
        }
        st
    }

    pub fn endpoints(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.members[i].endpoint()).collect()
    }

    pub fn etcdctl(&self, i: usize, args: &[&str]) -> CmdOutput {
        etcdctl_at(&[self.members[i].endpoint()], args, None)
    }

    pub fn etcdctl_stdin(&self, i: usize, args: &[&str], stdin: &str) -> CmdOutput {
        etcdctl_at(&[self.members[i].endpoint()], args, Some(stdin))
    }

    /// Index of the member with id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id && id != 0)
    }

    // ----- clients -----

    pub async fn connect(url: String) -> Result<Client, String> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10));
        match tokio::time::timeout(
            Duration::from_secs(3),
            Client::connect([url.clone()], Some(opts)),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("connect {url}: {e}")),
            Err(_) => Err(format!("connect {url}: timed out")),
        }
    }

    /// A client of member `i`.
    pub fn client(&self, i: usize) -> Client {
        let url = self.members[i].client_url();
        self.rt
            .block_on(Self::connect(url))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn status_of(url: String) -> Result<St, String> {
        let fut = async {
            let mut c = Self::connect(url).await?;
            let s = c.status().await.map_err(|e| format!("status: {e}"))?;
            let h = s.header().ok_or("status without header")?;
            Ok(St {
                member_id: h.member_id(),
                leader: s.leader(),
                term: s.raft_term(),
                raft_index: s.raft_index(),
                applied: s.raft_applied_index(),
                revision: h.revision(),
                is_learner: s.is_learner(),
            })
        };
        tokio::time::timeout(Duration::from_secs(3), fut)
            .await
            .map_err(|_| "status timed out".to_string())?
    }

    /// One Status call on member `i` (3 s bound); records the member id.
    pub fn status(&mut self, i: usize) -> Result<St, String> {
        let url = self.members[i].client_url();
        let r = self.rt.block_on(Self::status_of(url));
        if let Ok(s) = &r {
            self.members[i].id = s.member_id;
        }
        r
    }

    /// Statuses of several members, queried concurrently.
    pub fn statuses(&mut self, idx: &[usize]) -> Vec<Result<St, String>> {
        let urls: Vec<String> = idx.iter().map(|&i| self.members[i].client_url()).collect();
        let rs = self.rt.block_on(async move {
            let hs: Vec<_> = urls
                .into_iter()
                .map(|u| tokio::spawn(Self::status_of(u)))
                .collect();
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            out
        });
        for (k, r) in rs.iter().enumerate() {
            if let Ok(s) = r {
                self.members[idx[k]].id = s.member_id;
            }
        }
        rs
    }

    /// Waits (up to `timeout`) until every member in `idx` answers Status naming the same
    /// leader, that leader is one of `idx` and reports itself as leader. Returns the
    /// leader's index. Panics with the last statuses on timeout.
    pub fn wait_leader(&mut self, idx: &[usize], timeout: Duration) -> usize {
        self.try_wait_leader(idx, timeout, 0).unwrap_or_else(|e| {
            panic!(
                "no agreed leader among {:?} within {timeout:?}: {e}",
                self.names(idx)
            )
        })
    }

    /// Like [`wait_leader`] but the leader must not have id `not`; returns Err on timeout.
    pub fn try_wait_leader(
        &mut self,
        idx: &[usize],
        timeout: Duration,
        not: u64,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        for _ in 0..10_000 {
            let sts = self.statuses(idx);
            match self.agreed_leader(idx, &sts, not) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(last)
    }

    fn agreed_leader(
        &self,
        idx: &[usize],
        sts: &[Result<St, String>],
        not: u64,
    ) -> Result<usize, String> {
        let mut leader = None;
        for (k, s) in sts.iter().enumerate() {
            let name = &self.members[idx[k]].name;
            let s = s.as_ref().map_err(|e| format!("{name}: {e}"))?;
            if s.leader == 0 {
                return Err(format!("{name}: no leader ({s:?})"));
            }
            if s.leader == not {
                return Err(format!("{name}: still follows old leader {not:x} ({s:?})"));
            }
            match leader {
                None => leader = Some(s.leader),
                Some(l) if l != s.leader => {
                    return Err(format!("disagreement: {:?}", self.describe(idx, sts)))
                }
                _ => {}
            }
        }
        let l = leader.ok_or("no members")?;
        let li = idx
            .iter()
            .copied()
            .find(|&i| self.members[i].id == l)
            .ok_or_else(|| format!("leader {l:x} is not among {:?}", self.names(idx)))?;
        Ok(li)
    }

    pub fn describe(&self, idx: &[usize], sts: &[Result<St, String>]) -> String {
        idx.iter()
            .zip(sts)
            .map(|(&i, s)| match s {
                Ok(s) => format!(
                    "{}(id {:x}): leader {:x} term {} index {} applied {} rev {}{}",
                    self.members[i].name,
                    s.member_id,
                    s.leader,
                    s.term,
                    s.raft_index,
                    s.applied,
                    s.revision,
                    if s.is_learner { " learner" } else { "" }
                ),
                Err(e) => format!("{}: {e}", self.members[i].name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.members[i].name.clone()).collect()
    }

    /// Waits until every member in `idx` reports the same revision and applied index, stable
    /// over two polls (writes must have stopped). Returns the common revision.
    pub fn wait_converged(&mut self, idx: &[usize], timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        let mut prev: Option<(i64, u64)> = None;
        let mut last = String::new();
        for _ in 0..10_000 {
            let sts = self.statuses(idx);
            last = self.describe(idx, &sts);
            let ok: Vec<&St> = sts.iter().filter_map(|s| s.as_ref().ok()).collect();
            if ok.len() == idx.len() {
                let r = ok[0].revision;
                let a = ok[0].applied;
                if ok.iter().all(|s| s.revision == r && s.applied == a) {
                    if prev == Some((r, a)) {
                        return r;
                    }
                    prev = Some((r, a));
                } else {
                    prev = None;
                }
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "members {:?} did not converge within {timeout:?}: {last}",
            self.names(idx)
        );
    }

    /// Serializable range over `prefix` on member `i`: key -> (value, mod_revision).
    pub fn dump(&self, i: usize, prefix: &str) -> BTreeMap<String, (String, i64)> {
        let url = self.members[i].client_url();
        let shown = prefix.to_string();
        let prefix = prefix.to_string();
        self.rt
            .block_on(async move {
                let mut c = Self::connect(url).await?;
                let r = tokio::time::timeout(
                    Duration::from_secs(20),
                    c.get(
                        prefix,
                        Some(GetOptions::new().with_prefix().with_serializable()),
                    ),
                )
                .await
                .map_err(|_| "get timed out".to_string())?
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(
                    r.kvs()
                        .iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(kv.key()).into_owned(),
                                (
                                    String::from_utf8_lossy(kv.value()).into_owned(),
                                    kv.mod_revision(),
                                ),
                            )
                        })
                        .collect(),
                )
            })
            .unwrap_or_else(|e| panic!("dump {shown} on {}: {e}", self.members[i].name))
    }

    /// Checks that every acknowledged put is present on every member in `idx` with its
    /// value and the revision it was acknowledged with, and that the members hold identical
    /// data under `prefix`. Members must have converged first.
    pub fn verify_acked(&self, idx: &[usize], prefix: &str, acked: &[Acked]) {
        let mut first: Option<(usize, Dump)> = None;
        for &i in idx {
            let d = self.dump(i, prefix);
            let mut missing = Vec::new();
            let mut wrong = Vec::new();
            for (k, v, rev) in acked {
                match d.get(k) {
                    None => missing.push(format!("{k}@{rev}")),
                    Some((v2, r2)) if v2 != v || r2 != rev => wrong.push(format!(
                        "{k}: acked ({v}, rev {rev}), found ({v2}, rev {r2})"
                    )),
                    _ => {}
                }
            }
            assert!(
                missing.is_empty() && wrong.is_empty(),
                "{}: {} of {} acknowledged puts missing (first: {:?}), {} differ (first: {:?})",
                self.members[i].name,
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(10)],
                wrong.len(),
                &wrong[..wrong.len().min(10)],
            );
            match &first {
                None => first = Some((i, d)),
                Some((j, d0)) => {
                    if *d0 != d {
                        let only0: Vec<_> =
                            d0.keys().filter(|k| !d.contains_key(*k)).take(5).collect();
                        let only1: Vec<_> =
                            d.keys().filter(|k| !d0.contains_key(*k)).take(5).collect();
                        let diff: Vec<_> = d0
                            .iter()
                            .filter(|(k, v)| d.get(*k).is_some_and(|v2| v2 != *v))
                            .take(5)
                            .collect();
                        panic!(
                            "{} and {} hold different data under {prefix}: {} vs {} keys; only on first {only0:?}, only on second {only1:?}, differing {diff:?}",
                            self.members[*j].name,
                            self.members[i].name,
                            d0.len(),
                            d.len()
                        );
                    }
                }
            }
        }
        // Revisions of acknowledged puts are unique.
        let mut seen = HashSet::new();
        for (k, _, rev) in acked {
            assert!(
                seen.insert(*rev),
                "two acknowledged puts got revision {rev} (one is {k})"
            );
        }
    }

    /// Starts `n` writer tasks putting `<prefix>/w<w>/<i>` keys until `stop` is set, `limit`
    /// elapses or `max_puts` per writer. Writer w starts on member `targets[w % len]` and
    /// moves to the next target after an error (so writes continue through a failover).
    pub fn spawn_writers(
        &self,
        n: usize,
        prefix: &str,
        targets: &[usize],
        stop: Arc<AtomicBool>,
        limit: Duration,
        max_puts: usize,
    ) -> Vec<tokio::task::JoinHandle<WriterReport>> {
        let urls: Vec<String> = targets
            .iter()
            .map(|&i| self.members[i].client_url())
            .collect();
        let deadline = Instant::now() + limit;
        (0..n)
            .map(|w| {
                let urls = urls.clone();
                let stop = stop.clone();
                let prefix = prefix.to_string();
                self.rt.spawn(async move {
                    let mut rep = WriterReport::default();
                    let mut t = w % urls.len();
                    let mut client: Option<Client> = None;
                    for i in 0..max_puts {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        if client.is_none() {
                            match Self::connect(urls[t].clone()).await {
                                Ok(c) => client = Some(c),
                                Err(e) => {
                                    rep.errors += 1;
                                    rep.last_error = Some(e);
                                    t = (t + 1) % urls.len();
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    continue;
                                }
                            }
                        }
                        let c = client.as_mut().unwrap();
                        let key = format!("{prefix}/w{w}/{i:06}");
                        let value = format!("v-{w}-{i}-{}", "x".repeat(i % 32));
                        match tokio::time::timeout(
                            Duration::from_secs(12),
                            c.put(key.clone(), value.clone(), None),
                        )
                        .await
                        {
                            Ok(Ok(r)) => {
                                let rev = r.header().map(|h| h.revision()).unwrap_or(-1);
                                rep.acked.push((key, value, rev));
                            }
                            Ok(Err(e)) => {
                                rep.errors += 1;
                                rep.last_error = Some(e.to_string());
                                client = None;
                                t = (t + 1) % urls.len();
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(_) => {
                                rep.errors += 1;
                                rep.last_error = Some("put timed out (12s)".into());
                                client = None;
                                t = (t + 1) % urls.len();
                            }
                        }
                    }
                    rep
                })
            })
            .collect()
    }

    /// Joins writer tasks (bounded: 60 s) and merges their reports.
    pub fn join_writers(&self, hs: Vec<tokio::task::JoinHandle<WriterReport>>) -> WriterReport {
        self.rt.block_on(async move {
            let mut all = WriterReport::default();
            for h in hs {
                let r = tokio::time::timeout(Duration::from_secs(60), h)
                    .await
                    .expect("writer did not finish within 60s")
                    .expect("writer panicked");
                all.acked.extend(r.acked);
                all.errors += r.errors;
                if r.last_error.is_some() {
                    all.last_error = r.last_error;
                }
            }
            all
        })
    }

    /// One put on member `i` with a bound; Ok(revision) or the error text.
    pub fn put(&self, i: usize, key: &str, value: &str, timeout: Duration) -> Result<i64, String> {
        let url = self.members[i].client_url();
        let (k, v) = (key.to_string(), value.to_string());
        self.rt.block_on(async move {
            let mut c = Self::connect(url).await?;
            match tokio::time::timeout(timeout, c.put(k, v, None)).await {
                Ok(Ok(r)) => Ok(r.header().map(|h| h.revision()).unwrap_or(-1)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("client-side timeout after {timeout:?}")),
            }
        })
    }

    /// One get on member `i`; Ok(Some((value, mod_rev))) / Ok(None) or the error text.
    pub fn get(
        &self,
        i: usize,
        key: &str,
        serializable: bool,
        timeout: Duration,
    ) -> Result<Option<(String, i64)>, String> {
        let url = self.members[i].client_url();
        let k = key.to_string();
        self.rt.block_on(async move {
            let mut c = Self::connect(url).await?;
            let opts = serializable.then(|| GetOptions::new().with_serializable());
            match tokio::time::timeout(timeout, c.get(k, opts)).await {
                Ok(Ok(r)) => Ok(r.kvs().first().map(|kv| {
                    (
                        String::from_utf8_lossy(kv.value()).into_owned(),
                        kv.mod_revision(),
                    )
                })),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("client-side timeout after {timeout:?}")),
            }
        })
    }

    /// Sequential puts of `<prefix><i>` = value, `count` of them, on member `i`, with up
    /// to `conc` in flight. Returns the last revision.
    pub fn load(&self, i: usize, prefix: &str, count: usize, conc: usize) -> i64 {
        let url = self.members[i].client_url();
        let prefix = prefix.to_string();
        self.rt.block_on(async move {
            let c = Self::connect(url).await.expect("connect");
            let next = Arc::new(AtomicUsize::new(0));
            let mut hs = Vec::new();
            for _ in 0..conc {
                let mut c = c.clone();
                let next = next.clone();
                let prefix = prefix.clone();
                hs.push(tokio::spawn(async move {
                    let mut last = 0;
                    for _ in 0..count {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= count {
                            break;
                        }
                        let r = tokio::time::timeout(
                            Duration::from_secs(15),
                            c.put(format!("{prefix}{k:06}"), format!("value-{k}"), None),
                        )
                        .await
                        .unwrap_or_else(|_| panic!("put {prefix}{k} timed out"))
                        .unwrap_or_else(|e| panic!("put {prefix}{k}: {e}"));
                        last = last.max(r.header().unwrap().revision());
                    }
                    last
                }));
            }
            let mut last = 0;
            for h in hs {
                last = last.max(h.await.expect("loader panicked"));
            }
            last
        })
    }

    /// Prints each member's log tail (called on failure).
    pub fn dump_logs(&self, bytes: usize) {
        for m in &self.members {
            eprintln!(
                "----- {} log ({}; last {} bytes) -----\n{}\n----- end of {} log -----",
                m.name,
                m.log_path.display(),
                bytes,
                m.tail(bytes),
                m.name
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill9();
        }
        if let Some(p) = &self.proxy {
            p.shutdown();
        }
        if std::thread::panicking() {
            self.dump_logs(6000);
            for m in &mut self.members {
                if let Some(d) = m.dir.take() {
                    let p = d.keep();
                    eprintln!("kept {} dir for inspection: {}", m.name, p.display());
                }
            }
            if let Some(p) = &self.proxy {
                eprintln!("proxy events:\n{}", p.events().join("\n"));
            }
        }
    }
}

/// `member list -w json` via etcdctl: (id, name, peer urls, client urls, is_learner).
pub type MemberRow = (u64, String, Vec<String>, Vec<String>, bool);

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

// ---------------------------------------------------------------------------------------
// The fault-injecting TCP proxy.

/// A TCP proxy for peer traffic: link `i` listens on member i's advertised peer port and
/// forwards to its real peer port. [`Proxy::isolate`] blackholes every connection to or
/// from member i (data is read and discarded, connections stay open, as with dropped
/// packets); [`Proxy::heal`] lifts all cuts and closes the blackholed connections so the
/// members reconnect.
///
/// The source member of a connection is found from `/proc`: the accepted socket's peer port
/// is looked up in `/proc/net/tcp` for its inode, and that inode among the members' fds.
pub struct Proxy {
    st: Arc<ProxyState>,
}

struct ProxyState {
    stop: AtomicBool,
    isolated: Mutex<HashSet<usize>>,
    pids: Mutex<HashMap<usize, u32>>,
    conns: Mutex<Vec<Conn>>,
    events: Mutex<Vec<String>>,
    t0: Instant,
}

struct Conn {
    down: TcpStream,
    up: Option<TcpStream>,
    src: Option<usize>,
    dst: usize,
    cut: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl ProxyState {
    fn event(&self, s: String) {
        let mut ev = self.events.lock().unwrap();
        if ev.len() < 2000 {
            ev.push(format!("+{:.2}s {s}", self.t0.elapsed().as_secs_f64()));
        }
    }

    fn is_cut(&self, src: Option<usize>, dst: usize) -> bool {
        let iso = self.isolated.lock().unwrap();
        iso.contains(&dst) || src.is_some_and(|s| iso.contains(&s))
    }
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy {
            st: Arc::new(ProxyState {
                stop: AtomicBool::new(false),
                isolated: Mutex::new(HashSet::new()),
                pids: Mutex::new(HashMap::new()),
                conns: Mutex::new(Vec::new()),
                events: Mutex::new(Vec::new()),
                t0: Instant::now(),
            }),
        }
    }

    pub fn set_pid(&self, i: usize, pid: Option<u32>) {
        let mut p = self.st.pids.lock().unwrap();
        match pid {
            Some(pid) => p.insert(i, pid),
            None => p.remove(&i),
        };
    }

    pub fn events(&self) -> Vec<String> {
        self.st.events.lock().unwrap().clone()
    }

    /// Starts forwarding `listen` -> `target` for member `i`.
    pub fn add_link(&self, i: usize, listen: u16, target: u16) {
        let l = TcpListener::bind(("127.0.0.1", listen))
            .unwrap_or_else(|e| panic!("proxy bind 127.0.0.1:{listen}: {e}"));
        l.set_nonblocking(true).unwrap();
        let st = self.st.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || accept_loop(st, l, i, listen, target))
            .expect("spawn proxy thread");
    }

    /// Blackholes all traffic to and from member `i`.
    pub fn isolate(&self, i: usize) {
        self.st.isolated.lock().unwrap().insert(i);
        self.st.event(format!("isolate member #{i}"));
        // Mark existing connections touching i as cut right away.
        for c in self.st.conns.lock().unwrap().iter() {
            if c.dst == i || c.src == Some(i) {
                c.cut.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Lifts all cuts; closes every connection that was blackholed.
    pub fn heal(&self) {
        self.st.isolated.lock().unwrap().clear();
        let mut conns = self.st.conns.lock().unwrap();
        let mut closed = 0;
        for c in conns.iter() {
            if c.cut.load(Ordering::SeqCst) {
                close_conn(c);
                closed += 1;
            }
        }
        conns.retain(|c| !c.closed.load(Ordering::SeqCst));
        drop(conns);
        self.st
            .event(format!("heal: closed {closed} blackholed connections"));
    }

    pub fn shutdown(&self) {
        self.st.stop.store(true, Ordering::SeqCst);
        for c in self.st.conns.lock().unwrap().iter() {
            close_conn(c);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn close_conn(c: &Conn) {
    c.closed.store(true, Ordering::SeqCst);
    let _ = c.down.shutdown(Shutdown::Both);
    if let Some(u) = &c.up {
        let _ = u.shutdown(Shutdown::Both);
    }
}

fn accept_loop(st: Arc<ProxyState>, l: TcpListener, dst: usize, listen: u16, target: u16) {
    while !st.stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((down, peer)) => {
                let _ = down.set_nonblocking(false);
                let _ = down.set_nodelay(true);
                let src = find_source(&st, peer.port(), listen);
                let cut = Arc::new(AtomicBool::new(st.is_cut(src, dst)));
                let up = if cut.load(Ordering::SeqCst) {
                    None
                } else {
                    TcpStream::connect_timeout(
                        &format!("127.0.0.1:{target}").parse().unwrap(),
                        Duration::from_secs(1),
                    )
                    .ok()
                };
                st.event(format!(
                    "accept {src:?} -> #{dst} (from port {}){}{}",
                    peer.port(),
                    if cut.load(Ordering::SeqCst) {
                        " [blackholed]"
                    } else {
                        ""
                    },
                    if up.is_none() && !cut.load(Ordering::SeqCst) {
                        " [upstream refused]"
                    } else {
                        ""
                    }
                ));
                if up.is_none() && !cut.load(Ordering::SeqCst) {
                    // Member down: refuse like the member would.
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                if let Some(u) = &up {
                    let _ = u.set_nodelay(true);
                }
                let conn = Conn {
                    down: down.try_clone().unwrap(),
                    up: up.as_ref().map(|u| u.try_clone().unwrap()),
                    src,
                    dst,
                    cut: cut.clone(),
                    closed: Arc::new(AtomicBool::new(false)),
                };
                let closed = conn.closed.clone();
                {
                    let mut conns = st.conns.lock().unwrap();
                    conns.retain(|c| !c.closed.load(Ordering::SeqCst));
                    conns.push(conn);
                }
                // down -> up
                {
                    let (r, w) = (
                        down.try_clone().unwrap(),
                        up.as_ref().map(|u| u.try_clone().unwrap()),
                    );
                    let (cut, closed) = (cut.clone(), closed.clone());
                    std::thread::spawn(move || pump(r, w, cut, closed));
                }
                // up -> down
                if let Some(u) = up {
                    let w = down.try_clone().unwrap();
                    let (cut, closed) = (cut.clone(), closed.clone());
                    std::thread::spawn(move || pump(u, Some(w), cut, closed));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies `r` to `w` until EOF/error/close; once `cut` is set, discards instead.
fn pump(mut r: TcpStream, w: Option<TcpStream>, cut: Arc<AtomicBool>, closed: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut w = w;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if closed.load(Ordering::SeqCst) {
            break;
        }
        if cut.load(Ordering::SeqCst) {
            continue; // blackhole
        }
        match w.as_mut() {
            Some(w) => {
                if w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            None => continue,
        }
    }
    // Propagate the close unless blackholed (a blackholed connection stays silent).
    if !cut.load(Ordering::SeqCst) || closed.load(Ordering::SeqCst) {
        let _ = r.shutdown(Shutdown::Both);
        if let Some(w) = &w {
            let _ = w.shutdown(Shutdown::Both);
        }
        closed.store(true, Ordering::SeqCst);
    }
}

/// Which member owns the client socket `127.0.0.1:<port>` connected to `127.0.0.1:<listen>`.
fn find_source(st: &ProxyState, port: u16, listen: u16) -> Option<usize> {
    for _ in 0..20 {
        if let Some(inode) = socket_inode(port, listen) {
            let pids = st.pids.lock().unwrap().clone();
            for (i, pid) in pids {
                let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                    continue;
                };
                let want = format!("socket:[{inode}]");
                for e in rd.flatten() {
                    if std::fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == want.as_str()) {
                        return Some(i);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn socket_inode(local_port: u16, remote_port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let port = |s: &str| {
            s.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        if port(f[1]) == Some(local_port) && port(f[2]) == Some(remote_port) {
            return f[9].parse().ok();
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Misc.

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    for _ in 0..100_000 {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Whether an error text is one of the errors etcd gives for a write/read that cannot be
/// served without a quorum.
pub fn is_no_quorum_error(e: &str) -> bool {
    let e = e.to_lowercase();
    e.contains("request timed out")
        || e.contains("no leader")
        || e.contains("leader changed")
        || e.contains("timed out")
        || e.contains("deadline")
}
