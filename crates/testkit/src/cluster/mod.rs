//! Multi-member clusters of the real server binary (oxcd, or etcd with
//! `OXCD_TEST_SERVER=etcd`) on loopback, with process faults (kill -9, SIGSTOP/SIGCONT,
//! SIGTERM, restart — also once with extra flags, environment or another binary, see
//! [`SpawnExtras`] — remove/re-add) and, optionally, the fault-injecting [`Proxy`] on every
//! peer link.
//!
//! Invariants:
//! - Every process is started from the caller's thread (so `PR_SET_PDEATHSIG` fires if that
//!   thread dies) and killed by PID on drop; nothing else is ever signalled.
//! - With a proxy, every member advertises the proxy's port for itself
//!   (`--initial-advertise-peer-urls`, `--initial-cluster`) and listens on its real peer
//!   port; the proxy always knows the PID of every running member.
//! - All files live in one temp dir: `<dir>/n<k>/member.log` (all starts appended) and the
//!   data dir `<dir>/n<k>/data` (`data.<gen>` after the member was wiped and re-added; the
//!   *data generation* changes only then, not on restart). On panic, or when
//!   [`Cluster::keep`] was called, the dir is kept and its path printed; on panic the log
//!   tails and proxy events are printed too.
//! - Every wait is bounded in time (see [`wait`]).

mod data;
mod membership;
mod wait;
mod writers;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

pub use data::connect;
pub use writers::{Acked, WriterReport};

use crate::bins::ServerKind;
use crate::cmd::{etcdctl_at, CmdOutput, EtcdctlTimeouts};
use crate::flags::{local_url, MemberFlags};
use crate::ports::free_ports;
use crate::process::Proc;
use crate::proxy::Proxy;

/// Cluster settings. [`ClusterOpts::new`] gives the integration tests' defaults.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    pub members: usize,
    /// Which server to run (default: from `OXCD_TEST_SERVER`).
    pub kind: ServerKind,
    /// Default oxcd binary (`OXCD_BIN` overrides it; see [`crate::bins::oxcd_bin`]).
    pub oxcd_bin: Option<PathBuf>,
    /// Route peer traffic through a [`Proxy`].
    pub proxy: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: Option<u64>,
    /// `--snapshot-catchup-entries` (oxcd only; etcd 3.4 has no such flag).
    pub catchup_entries: Option<u64>,
    pub token: String,
    /// Bound of one Status call.
    pub status_timeout: Duration,
    /// How long [`Cluster::start`] waits for an agreed leader.
    pub start_wait: Duration,
}

impl ClusterOpts {
    pub fn new(members: usize) -> ClusterOpts {
        ClusterOpts {
            members,
            kind: ServerKind::from_env(),
            oxcd_bin: None,
            proxy: false,
            heartbeat_ms: 100,
            election_ms: 1000,
            snapshot_count: None,
            catchup_entries: None,
            token: "oxcd-test-cluster".into(),
            status_timeout: Duration::from_secs(3),
            start_wait: Duration::from_secs(25),
        }
    }

    /// Flags every member gets besides the membership ones.
    fn member_args(&self) -> Vec<String> {
        let mut extra = vec![
            format!("--heartbeat-interval={}", self.heartbeat_ms),
            format!("--election-timeout={}", self.election_ms),
        ];
        if let Some(s) = self.snapshot_count {
            extra.push(format!("--snapshot-count={s}"));
        }
        if let (Some(c), ServerKind::Oxcd) = (self.catchup_entries, self.kind) {
            extra.push(format!("--snapshot-catchup-entries={c}"));
        }
        if self.kind == ServerKind::Etcd {
            extra.extend(["--logger", "zap", "--log-outputs", "stderr"].map(String::from));
        }
        extra
    }
}

/// One-off changes to a single start of a member ([`Cluster::try_spawn_with`]): they apply
/// to that start only; later restarts use the member's own flags again.
#[derive(Clone, Debug, Default)]
pub struct SpawnExtras {
    /// Arguments appended after the member's own flags (e.g. `--force-new-cluster`).
    pub args: Vec<String>,
    /// Environment variables set for the process (e.g. `FAILPOINTS`).
    pub env: Vec<(String, String)>,
    /// A different server binary (e.g. a `failpoints` build); `None`: the cluster's.
    pub bin: Option<PathBuf>,
}

impl SpawnExtras {
    /// A start from the failpoints build `bin` with `FAILPOINTS=spec`.
    pub fn failpoints(bin: PathBuf, spec: &str) -> SpawnExtras {
        SpawnExtras {
            env: vec![("FAILPOINTS".into(), spec.into())],
            bin: Some(bin),
            ..Default::default()
        }
    }
}

/// One member slot.
pub struct Member {
    pub name: String,
    /// The member's own directory (log, data dirs, scratch files).
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
    /// Incremented each time the data directory is wiped (re-add).
    pub data_gen: u32,
    /// Member id, learned from Status; 0 until known.
    pub id: u64,
    proc: Proc,
}

impl Member {
    fn new(root: &Path, i: usize, ports: &[u16], proxied: bool, opts: &ClusterOpts) -> Member {
        let name = format!("n{}", i + 1);
        let dir_path = root.join(&name);
        std::fs::create_dir_all(&dir_path).expect("create member dir");
        Member {
            data_dir: dir_path.join("data"),
            proc: Proc::new(dir_path.join("member.log")),
            dir_path,
            name,
            client_port: ports[0],
            peer_port: ports[1],
            adv_peer_port: if proxied { ports[2] } else { ports[1] },
            initial_cluster: String::new(),
            state_existing: false,
            token: opts.token.clone(),
            extra_args: opts.member_args(),
            data_gen: 0,
            id: 0,
        }
    }

    pub fn client_url(&self) -> String {
        local_url(self.client_port)
    }
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
    pub fn adv_peer_url(&self) -> String {
        local_url(self.adv_peer_port)
    }
    pub fn listen_peer_url(&self) -> String {
        local_url(self.peer_port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
    pub fn is_running(&self) -> bool {
        self.proc.is_running()
    }
    pub fn is_paused(&self) -> bool {
        self.proc.is_paused()
    }
    pub fn log(&self) -> String {
        self.proc.log()
    }
    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }
    /// The last `bytes` bytes of the member's log.
    pub fn tail(&self, bytes: usize) -> String {
        self.proc.tail(bytes)
    }

    fn command(&self, bin: &Path) -> Command {
        MemberFlags {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            client_url: self.client_url(),
            listen_peer_url: self.listen_peer_url(),
            adv_peer_url: self.adv_peer_url(),
            initial_cluster: self.initial_cluster.clone(),
            token: Some(self.token.clone()),
            state_existing: Some(self.state_existing),
            extra_args: self.extra_args.clone(),
        }
        .command(bin, &self.dir_path)
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// SIGTERM and wait up to 15 s (then SIGKILL).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.proc.stop(Duration::from_secs(15), &self.name)
    }

    /// Sends SIGTERM without waiting.
    pub fn stop_signal_only(&self) {
        self.proc.signal(crate::process::SIGTERM);
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }
}

/// A cluster; dropping it kills every member and shuts the proxy down.
pub struct Cluster {
    pub kind: ServerKind,
    pub opts: ClusterOpts,
    pub members: Vec<Member>,
    pub proxy: Option<Proxy>,
    pub rt: tokio::runtime::Runtime,
    bin: PathBuf,
    name: String,
    dir: Option<tempfile::TempDir>,
    pub dir_path: PathBuf,
    pub keep_dirs: bool,
    started: Instant,
}

impl Cluster {
    /// Starts an `opts.members`-member cluster and waits until every member agrees on a
    /// leader; panics otherwise. `name` labels logs and the temp dir.
    pub fn start(name: &str, opts: ClusterOpts) -> Cluster {
        Self::try_start(name, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Cluster::start`], returning errors instead of panicking.
    pub fn try_start(name: &str, opts: ClusterOpts) -> Result<Cluster, String> {
        let mut c = Cluster::prepare(name, opts);
        if !c.bin.exists() {
            return Err(format!(
                "server binary not found at {} (build it: cargo build -p oxcd-server, or set OXCD_BIN)",
                c.bin.display()
            ));
        }
        let all: Vec<usize> = (0..c.members.len()).collect();
        for &i in &all {
            c.try_spawn(i)?;
        }
        let wait = c.opts.start_wait;
        c.try_wait_leader(&all, wait, 0).map_err(|e| {
            format!(
                "no agreed leader among {:?} within {wait:?}: {e}",
                c.names(&all)
            )
        })?;
        Ok(c)
    }

    /// Prepares ports, dirs and the proxy, but spawns nothing.
    pub fn prepare(name: &str, opts: ClusterOpts) -> Cluster {
        let n = opts.members;
        let ports = free_ports(3 * n);
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxcd-{name}-"))
            .tempdir()
            .expect("tempdir");
        let dir_path = dir.path().to_path_buf();
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member::new(&dir_path, i, &ports[3 * i..3 * i + 3], opts.proxy, &opts))
            .collect();
        let ic = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.adv_peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = ic.clone();
        }
        let proxy = opts.proxy.then(|| {
            let p = Proxy::new();
            for (i, m) in members.iter().enumerate() {
                p.add_link(i, m.adv_peer_port, m.peer_port);
            }
            p
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let c = Cluster {
            kind: opts.kind,
            bin: opts.kind.binary(opts.oxcd_bin.as_deref()),
            opts,
            members,
            proxy,
            rt,
            name: name.to_string(),
            dir: Some(dir),
            dir_path,
            keep_dirs: false,
            started: Instant::now(),
        };
        c.log(format!(
            "{:?} cluster of {n} in {}: {}",
            c.kind,
            c.dir_path.display(),
            c.members
                .iter()
                .map(|m| format!(
                    "{} client={} peer={} adv={}",
                    m.name, m.client_port, m.peer_port, m.adv_peer_port
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        c
    }

    /// Adds a (not yet started) member slot `n<k>` with fresh ports and
    /// `--initial-cluster-state existing`; returns its index. With a proxy, its peer traffic
    /// is proxied too.
    pub fn add_member_slot(&mut self) -> usize {
        let i = self.members.len();
        let ports = free_ports(3);
        let mut m = Member::new(&self.dir_path, i, &ports, self.proxy.is_some(), &self.opts);
        m.state_existing = true;
        if let Some(p) = &self.proxy {
            p.add_link(i, m.adv_peer_port, m.peer_port);
        }
        self.members.push(m);
        i
    }

    /// Prints `msg` with the cluster's name and the time since it was prepared.
    pub fn log(&self, msg: impl AsRef<str>) {
        eprintln!(
            "[{} +{:.1}s] {}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    /// Spawns member `i` (which must not be running); panics on failure.
    pub fn spawn(&mut self, i: usize) {
        self.try_spawn(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Spawns member `i` (which must not be running).
    pub fn try_spawn(&mut self, i: usize) -> Result<(), String> {
        self.try_spawn_with(i, &SpawnExtras::default())
    }

    /// Spawns member `i` (which must not be running) with its own flags plus `extras` for
    /// this start only.
    pub fn try_spawn_with(&mut self, i: usize, extras: &SpawnExtras) -> Result<(), String> {
        let m = &mut self.members[i];
        let bin = extras.bin.as_deref().unwrap_or(&self.bin);
        let mut label = format!("{} ({:?}, data gen {})", m.name, self.kind, m.data_gen);
        if extras.bin.is_some() || !extras.args.is_empty() || !extras.env.is_empty() {
            label.push_str(&format!(
                " with bin {} args {:?} env {:?}",
                bin.display(),
                extras.args,
                extras.env
            ));
        }
        let mut cmd = m.command(bin);
        cmd.args(&extras.args);
        cmd.envs(extras.env.iter().map(|(k, v)| (k, v)));
        m.proc.spawn(cmd, &label)?;
        if let Some(p) = &self.proxy {
            p.set_pid(i, m.pid());
        }
        Ok(())
    }

    pub fn kill9(&mut self, i: usize) {
        self.log(format!("kill -9 {}", self.members[i].name));
        self.members[i].kill9();
        if let Some(p) = &self.proxy {
            p.set_pid(i, None);
        }
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) {
        self.log(format!("SIGSTOP {}", self.members[i].name));
        self.members[i].proc.pause();
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        self.log(format!("SIGCONT {}", self.members[i].name));
        self.members[i].proc.resume();
    }

    /// SIGTERM member `i` and wait (bounded, then SIGKILL).
    pub fn stop(&mut self, i: usize) -> Option<ExitStatus> {
        self.log(format!("SIGTERM {}", self.members[i].name));
        let st = self.members[i].stop();
        if let Some(p) = &self.proxy {
            p.set_pid(i, None);
        }
        st
    }

    /// Reaps members that exited on their own; returns their indexes.
    pub fn reap_exited(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..self.members.len() {
            if let Some(st) = self.members[i].exited() {
                self.log(format!(
                    "member {} exited on its own: {st}",
                    self.members[i].name
                ));
                out.push(i);
            }
        }
        out
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url()).collect()
    }

    pub fn endpoints(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.members[i].endpoint()).collect()
    }

    pub fn etcdctl(&self, i: usize, args: &[&str]) -> CmdOutput {
        let eps = [self.members[i].endpoint()];
        etcdctl_at(&eps, args, None, EtcdctlTimeouts::CLUSTER)
    }

    pub fn etcdctl_stdin(&self, i: usize, args: &[&str], stdin: &str) -> CmdOutput {
        let eps = [self.members[i].endpoint()];
        etcdctl_at(&eps, args, Some(stdin), EtcdctlTimeouts::CLUSTER)
    }

    /// Index of the member with id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id && id != 0)
    }

    pub fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.members[i].name.clone()).collect()
    }

    /// Tail of member `i`'s log.
    pub fn log_tail(&self, i: usize, bytes: usize) -> String {
        self.members[i].tail(bytes)
    }

    /// Prints each member's log tail (called on failure).
    pub fn dump_logs(&self, bytes: usize) {
        for m in &self.members {
            eprintln!(
                "----- {} log ({}; last {} bytes) -----\n{}\n----- end of {} log -----",
                m.name,
                m.log_path().display(),
                bytes,
                m.tail(bytes),
                m.name
            );
        }
    }

    /// Keeps the temp dir after drop and returns its path.
    pub fn keep(&mut self) -> PathBuf {
        self.keep_dirs = true;
        self.dir_path.clone()
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
        let panicking = std::thread::panicking();
        if panicking {
            self.dump_logs(6000);
            if let Some(p) = &self.proxy {
                eprintln!("proxy events:\n{}", p.events().join("\n"));
            }
        }
        if panicking || self.keep_dirs {
            if let Some(d) = self.dir.take() {
                eprintln!(
                    "[{}] kept cluster dir for inspection: {}",
                    self.name,
                    d.keep().display()
                );
            }
        }
    }
}
