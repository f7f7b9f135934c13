//! Process harness: spawns the real `oxcd` binary as 1-, 3- or 5-member clusters on
//! 127.0.0.1 and injects process-level faults (kill -9, SIGSTOP/SIGCONT, restart,
//! member remove/re-add).
//!
//! Invariants:
//! - Only children spawned here are signalled, by PID; [`Cluster`]'s `Drop` kills (SIGKILL)
//!   and reaps every child it still owns (SIGCONT first for stopped ones). Children also get
//!   `PR_SET_PDEATHSIG` so a crashed test process does not leak servers.
//! - With a proxy, every member advertises the proxy's port for itself
//!   (`--initial-advertise-peer-urls`, `--initial-cluster`) and listens on its real peer port.
//! - Every wait is bounded in time. Each member slot keeps a *data generation*: it changes
//!   only when the data directory is wiped (remove/re-add), not on restart.
//! - Member logs go to `<tempdir>/<name>.log`; the tempdir is kept (and printed) when
//!   `keep_dirs` is set, e.g. after a violation.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxcd_api::etcdserverpb::{
    cluster_client::ClusterClient, maintenance_client::MaintenanceClient, MemberAddRequest,
    MemberListRequest, MemberRemoveRequest, StatusRequest,
};

use crate::proxy::Proxy;

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}
const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;
const PR_SET_PDEATHSIG: i32 = 1;

/// Path of the `oxcd` binary: `$OXCD_BIN`, else `target/debug/oxcd` under the workspace
/// root (or `$CARGO_TARGET_DIR/debug/oxcd`).
pub fn oxcd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OXCD_BIN") {
        return PathBuf::from(p);
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

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Reserves `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    pub members: usize,
    /// Route peer traffic through the fault-injecting [`Proxy`].
    pub proxy: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: Option<u64>,
    pub catchup_entries: Option<u64>,
}

impl ClusterOpts {
    pub fn new(members: usize) -> Self {
        ClusterOpts {
            members,
            proxy: members > 1,
            heartbeat_ms: 50,
            election_ms: 500,
            snapshot_count: Some(200),
            catchup_entries: Some(100),
        }
    }
}

/// One member slot.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Port advertised to the others (the proxy's when proxied).
    pub adv_peer_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Incremented each time the data directory is wiped (re-add).
    pub data_gen: u32,
    /// Incremented on every spawn.
    pub starts: u32,
    pub initial_cluster: String,
    pub existing: bool,
    child: Option<Child>,
    paused: bool,
    /// Member id (from Status); 0 until known.
    pub id: u64,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn adv_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.adv_peer_port)
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain syscall on our own, not yet reaped child.
            unsafe {
                kill(c.id() as i32, sig);
            }
        }
    }
}

/// Raft status of a member.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: u64,
    pub leader: u64,
    pub term: u64,
    pub revision: i64,
    pub applied: u64,
}

/// A running cluster.
pub struct Cluster {
    pub opts: ClusterOpts,
    pub members: Vec<Member>,
    pub proxy: Option<Proxy>,
    pub rt: tokio::runtime::Runtime,
    dir: Option<tempfile::TempDir>,
    pub dir_path: PathBuf,
    pub keep_dirs: bool,
    t0: Instant,
}

impl Cluster {
    /// Starts all members and waits (bounded) for a leader everyone agrees on.
    pub fn start(name: &str, opts: ClusterOpts) -> Result<Cluster, String> {
        let bin = oxcd_bin();
        if !bin.exists() {
            return Err(format!(
                "oxcd binary not found at {} (build it: cargo build -p oxcd-server, or set OXCD_BIN)",
                bin.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxcd-rb-{name}-"))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let dir_path = dir.path().to_path_buf();
        let n = opts.members;
        let ports = free_ports(3 * n);
        let mut members = Vec::new();
        for i in 0..n {
            let name = format!("n{}", i + 1);
            members.push(Member {
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                adv_peer_port: if opts.proxy {
                    ports[3 * i + 2]
                } else {
                    ports[3 * i + 1]
                },
                data_dir: dir_path.join(format!("{name}.data.0")),
                log_path: dir_path.join(format!("{name}.log")),
                name,
                data_gen: 0,
                starts: 0,
                initial_cluster: String::new(),
                existing: false,
                child: None,
                paused: false,
                id: 0,
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
            .map_err(|e| e.to_string())?;
        let mut c = Cluster {
            opts,
            members,
            proxy,
            rt,
            dir: Some(dir),
            dir_path,
            keep_dirs: false,
            t0: Instant::now(),
        };
        c.log(format!("cluster of {n} in {}", c.dir_path.display()));
        for i in 0..n {
            c.spawn(i)?;
        }
        c.wait_leader(Duration::from_secs(30))?;
        Ok(c)
    }

    pub fn log(&self, msg: impl AsRef<str>) {
        eprintln!(
            "[rb +{:.1}s] {}",
            self.t0.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url()).collect()
    }

    /// Spawns member `i` (which must not be running).
    pub fn spawn(&mut self, i: usize) -> Result<(), String> {
        let o = self.opts.clone();
        let m = &mut self.members[i];
        if m.child.is_some() {
            return Err(format!("{} already running", m.name));
        }
        m.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| e.to_string())?;
        let _ = writeln!(
            log,
            "===== {} start #{} gen {} =====",
            m.name, m.starts, m.data_gen
        );
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let cu = m.client_url();
        let mut cmd = Command::new(oxcd_bin());
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &cu, "--advertise-client-urls", &cu])
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer_port))
            .args(["--initial-advertise-peer-urls", &m.adv_peer_url()])
            .args(["--initial-cluster", &m.initial_cluster])
            .args(["--initial-cluster-token", "oxcd-robustness"])
            .args([
                "--initial-cluster-state",
                if m.existing { "existing" } else { "new" },
            ])
            .arg(format!("--heartbeat-interval={}", o.heartbeat_ms))
            .arg(format!("--election-timeout={}", o.election_ms));
        if let Some(s) = o.snapshot_count {
            cmd.arg(format!("--snapshot-count={s}"));
        }
        if let Some(s) = o.catchup_entries {
            cmd.arg(format!("--snapshot-catchup-entries={s}"));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        // SAFETY: prctl is async-signal-safe; the closure touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGKILL as u64, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("spawn oxcd: {e}"))?;
        let pid = child.id();
        m.child = Some(child);
        m.paused = false;
        if let Some(p) = &self.proxy {
            p.set_pid(i, Some(pid));
        }
        Ok(())
    }

    /// kill -9 member `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                kill(c.id() as i32, SIGKILL);
            }
            let _ = c.wait();
        }
        m.paused = false;
        if let Some(p) = &self.proxy {
            p.set_pid(i, None);
        }
    }

    pub fn pause(&mut self, i: usize) {
        self.members[i].signal(SIGSTOP);
        self.members[i].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.members[i].signal(SIGCONT);
        self.members[i].paused = false;
    }

    /// Reaps members that exited on their own; returns their indexes.
    pub fn reap_exited(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Some(c) = m.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    eprintln!("[rb] member {} exited on its own: {st}", m.name);
                    m.child = None;
                    out.push(i);
                }
            }
        }
        out
    }

    /// Status of member `i` (2 s bound).
    pub fn status(&mut self, i: usize) -> Result<Status, String> {
        let url = self.members[i].client_url();
        let r = self.rt.block_on(async move {
            let fut = async {
                let ch = channel(&url)?;
                let mut mc = MaintenanceClient::new(ch);
                let s = mc
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| e.message().to_string())?;
                let s = s.into_inner();
                let h = s.header.unwrap_or_default();
                Ok(Status {
                    id: h.member_id,
                    leader: s.leader,
                    term: s.raft_term,
                    revision: h.revision,
                    applied: s.raft_applied_index,
                })
            };
            tokio::time::timeout(Duration::from_secs(2), fut)
                .await
                .map_err(|_| "status timed out".to_string())?
        });
        if let Ok(s) = &r {
            self.members[i].id = s.id;
        }
        r
    }

    /// Waits until every running, unpaused member names the same leader, which is one of
    /// them. Returns the leader's index.
    pub fn wait_leader(&mut self, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let idx: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].is_running() && !self.members[i].paused)
                .collect();
            let sts: Vec<_> = idx.iter().map(|&i| self.status(i)).collect();
            if let Some(Ok(first)) = sts.first() {
                let leader = first.leader;
                let agree =
                    leader != 0 && sts.iter().all(|s| matches!(s, Ok(s) if s.leader == leader));
                if agree {
                    if let Some(li) = self.members.iter().position(|m| m.id == leader) {
                        return Ok(li);
                    }
                }
            }
            last = format!("{sts:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no agreed leader within {timeout:?}: {last}"))
    }

    /// Index of the current leader as seen by any running member, if known.
    pub fn leader(&mut self) -> Option<usize> {
        for i in 0..self.members.len() {
            if self.members[i].is_running() && !self.members[i].paused {
                if let Ok(s) = self.status(i) {
                    if let Some(li) = self
                        .members
                        .iter()
                        .position(|m| m.id == s.leader && m.id != 0)
                    {
                        return Some(li);
                    }
                }
            }
        }
        None
    }

    /// Waits until all running members report the same revision and applied index twice in
    /// a row (traffic must have stopped). Returns that revision.
    pub fn wait_converged(&mut self, timeout: Duration) -> Result<i64, String> {
        let deadline = Instant::now() + timeout;
        let mut prev: Option<(i64, u64)> = None;
        let mut last = String::new();
        while Instant::now() < deadline {
            let idx: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].is_running())
                .collect();
            let sts: Vec<_> = idx.iter().map(|&i| self.status(i)).collect();
            let first = match sts.first() {
                Some(Ok(s)) => (s.revision, s.applied),
                _ => (-1, 0),
            };
            let same = sts
                .iter()
                .all(|s| matches!(s, Ok(s) if (s.revision, s.applied) == first));
            if same && first.0 >= 0 && prev == Some(first) {
                return Ok(first.0);
            }
            prev = same.then_some(first);
            last = format!("{sts:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(format!(
            "members did not converge within {timeout:?}: {last}"
        ))
    }

    /// Removes member `i` from the cluster (via a running member), kills it, wipes its
    /// data, adds it back as a new member with the same name and URLs and starts it with
    /// `--initial-cluster-state existing`. Bumps its data generation.
    pub fn remove_and_readd(&mut self, i: usize) -> Result<(), String> {
        let via = (0..self.members.len())
            .find(|&j| j != i && self.members[j].is_running() && !self.members[j].paused)
            .ok_or("no other running member")?;
        let id = match self.status(i) {
            Ok(s) => s.id,
            Err(_) if self.members[i].id != 0 => self.members[i].id,
            Err(e) => return Err(format!("unknown id of {}: {e}", self.members[i].name)),
        };
        let url = self.members[via].client_url();
        let peer = self.members[i].adv_peer_url();
        let members = self.rt.block_on(async move {
            let fut = async {
                let mut cc = ClusterClient::new(channel(&url)?);
                cc.member_remove(MemberRemoveRequest { id })
                    .await
                    .map_err(|e| format!("member remove: {}", e.message()))?;
                // Adding right after removing can fail while the removal is applied.
                let mut last = String::new();
                for _ in 0..40 {
                    match cc
                        .member_add(MemberAddRequest {
                            peer_ur_ls: vec![peer.clone()],
                            is_learner: false,
                        })
                        .await
                    {
                        Ok(_) => {
                            let l = cc
                                .member_list(MemberListRequest { linearizable: true })
                                .await
                                .map_err(|e| format!("member list: {}", e.message()))?;
                            return Ok(l.into_inner().members);
                        }
                        Err(e) => last = e.message().to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(format!("member add: {last}"))
            };
            tokio::time::timeout(Duration::from_secs(20), fut)
                .await
                .map_err(|_| "remove/re-add timed out".to_string())?
        });
        self.kill9(i);
        let members = members?;
        let m = &mut self.members[i];
        m.data_gen += 1;
        m.data_dir = self
            .dir_path
            .join(format!("{}.data.{}", m.name, m.data_gen));
        m.existing = true;
        m.id = 0;
        let peer = m.adv_peer_url();
        m.initial_cluster = members
            .iter()
            .map(|x| {
                let name = if x.peer_ur_ls.contains(&peer) {
                    m.name.clone()
                } else {
                    x.name.clone()
                };
                format!(
                    "{}={}",
                    name,
                    x.peer_ur_ls.first().cloned().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        self.spawn(i)
    }

    /// Tail of member `i`'s log.
    pub fn log_tail(&self, i: usize, bytes: usize) -> String {
        let s = std::fs::read(&self.members[i].log_path).unwrap_or_default();
        let s = String::from_utf8_lossy(&s[s.len().saturating_sub(bytes)..]).into_owned();
        s
    }

    /// Keeps the temp dir after drop and returns its path.
    pub fn keep(&mut self) -> PathBuf {
        self.keep_dirs = true;
        self.dir_path.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            self.kill9(i);
        }
        if let Some(p) = &self.proxy {
            p.shutdown();
        }
        if self.keep_dirs {
            if let Some(d) = self.dir.take() {
                eprintln!("[rb] keeping cluster dir {}", d.keep().display());
            }
        }
    }
}

/// A lazily connecting channel to `url` (reconnects on its own after a restart).
pub fn channel(url: &str) -> Result<tonic::transport::Channel, String> {
    let ep = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}
