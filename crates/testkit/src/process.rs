//! One server process spawned by the kit, with its combined stdout/stderr appended to a log
//! file (one banner line per start).
//!
//! Invariants:
//! - Only this process is ever signalled, by PID, and only while it is our unreaped child
//!   (so the PID cannot have been reused).
//! - It gets `PR_SET_PDEATHSIG(SIGKILL)`: if the thread that spawned it exits, the kernel
//!   kills it. Start processes from the test's own thread, never from a pool thread.
//! - Dropping a [`Proc`] kills (SIGKILL) and reaps the process; every wait is bounded.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGSTOP: i32 = 19;
pub const SIGCONT: i32 = 18;
const PR_SET_PDEATHSIG: i32 = 1;

/// Sends `sig` to `pid` (a process this test started: callers own that rule).
pub fn signal_pid(pid: u32, sig: i32) {
    // SAFETY: plain syscall; the caller passes the PID of its own child.
    unsafe {
        kill(pid as i32, sig);
    }
}

/// A (possibly not running) process slot with its log file.
pub struct Proc {
    child: Option<Child>,
    log_path: PathBuf,
    starts: u32,
    paused: bool,
}

impl Proc {
    /// A slot whose output will be appended to `log_path`; nothing is spawned yet.
    pub fn new(log_path: PathBuf) -> Proc {
        Proc {
            child: None,
            log_path,
            starts: 0,
            paused: false,
        }
    }

    /// Spawns `cmd` with stdin closed and output appended to the log after a banner line
    /// `===== <label> start #<n> =====`.
    pub fn spawn(&mut self, mut cmd: Command, label: &str) -> Result<(), String> {
        if self.child.is_some() {
            return Err(format!("{label} already running"));
        }
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open log {}: {e}", self.log_path.display()))?;
        let _ = writeln!(log, "===== {label} start #{} =====", self.starts);
        let log2 = log.try_clone().map_err(|e| format!("clone log fd: {e}"))?;
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
            .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// How many times the process was spawned.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The captured output (all starts, appended).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `bytes` bytes of the log (cut at a character boundary).
    pub fn tail(&self, bytes: usize) -> String {
        let log = self.log();
        let mut i = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(i) {
            i += 1;
        }
        log[i..].to_string()
    }

    /// Sends `sig` to the process, if running.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain syscall on our own (unreaped) child's PID.
            unsafe {
                kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.signal(SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(SIGCONT);
        self.paused = false;
    }

    /// SIGKILL (after SIGCONT if paused) and reap.
    pub fn kill9(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `signal`.
            unsafe {
                kill(child.id() as i32, SIGKILL);
            }
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM (after SIGCONT if paused) and wait up to `timeout`, then SIGKILL. Returns the
    /// exit status unless it had to be killed (or was not running).
    pub fn stop(&mut self, timeout: Duration, who: &str) -> Option<ExitStatus> {
        self.child.as_ref()?;
        if self.paused {
            self.resume();
        }
        self.signal(SIGTERM);
        match self.wait_exit(timeout) {
            Some(st) => Some(st),
            None => {
                eprintln!("{who} ignored SIGTERM for {timeout:?}; killing");
                self.kill9();
                None
            }
        }
    }

    /// Waits (bounded) for the process to exit on its own; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.paused = false;
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
        let st = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.paused = false;
        Some(st)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
