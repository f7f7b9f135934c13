//! Attributing an accepted proxy connection to the member that opened it.
//!
//! The accepted socket's peer port is looked up in `/proc/net/tcp` for the connecting
//! socket's inode, and that inode among the file descriptors of the registered member PIDs.
//! Invariant: bounded (20 attempts 2 ms apart, at most 100,000 fds per process); `None` when
//! the source is not a registered member.

use std::time::Duration;

use super::State;

/// Which member owns the client socket `127.0.0.1:<port>` connected to `127.0.0.1:<listen>`.
pub(super) fn find_source(st: &State, port: u16, listen: u16) -> Option<usize> {
    for _ in 0..20 {
        if let Some(inode) = socket_inode(port, listen) {
            let want = format!("socket:[{inode}]");
            let pids = st.pids.lock().unwrap().clone();
            for (i, pid) in pids {
                let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                    continue;
                };
                for e in rd.flatten().take(100_000) {
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

/// Inode of the TCP socket with this local and remote port, from `/proc/net/tcp`.
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
