//! Throw-away single-member etcd servers for integration tests (feature `test-util`).
//!
//! Invariants:
//! - An [`EtcdProcess`] owns exactly the child process it spawned and a fresh temporary data
//!   directory; dropping it kills that child (by its handle, i.e. its PID) and removes the
//!   directory. Nothing else is ever signalled.
//! - Only loopback addresses are used; ports come from the kernel's ephemeral allocator.
//! - [`EtcdProcess::start`] returns only once `Status` answers, or fails after a deadline.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Client;

/// The etcd binary to test against: `$OXCD_TEST_ETCD`, else `/usr/bin/etcd` if it exists.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OXCD_TEST_ETCD") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("/usr/bin/etcd");
    p.exists().then_some(p)
}

/// A free loopback TCP port (free when this returns; good enough for tests).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running etcd member on loopback.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Spawn `binary` as a one-member cluster and wait (up to 30 s) until it serves.
    pub async fn start(binary: &std::path::Path) -> std::io::Result<Self> {
        Self::start_with(binary, &[]).await
    }

    /// Like [`EtcdProcess::start`] with extra flags (e.g. `--auth-token-ttl=1`).
    pub async fn start_with(binary: &std::path::Path, extra: &[&str]) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(binary)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut me = EtcdProcess {
            child,
            endpoint: client_url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = Client::connect([&me.endpoint]).await {
                if c.status().await.is_ok() {
                    return Ok(me);
                }
            }
            if let Some(status) = me.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "etcd exited early: {status}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("etcd did not become ready in 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
