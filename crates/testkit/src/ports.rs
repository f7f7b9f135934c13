//! Free loopback TCP ports.
//!
//! Invariant: a port returned by [`free_port`] is never handed out twice in one process, so
//! parallel tests cannot be given the same port; [`free_ports`] holds all its listeners until
//! every port is picked, so the `n` ports are distinct.

use std::net::TcpListener;
use std::sync::Mutex;

/// Picks a free loopback TCP port (bind to port 0 and release it), never the same one twice
/// in this process.
pub fn free_port() -> u16 {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
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

/// Reserves `n` distinct free loopback ports (all listeners held until all are picked).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}
