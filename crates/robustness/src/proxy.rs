//! Fault-injecting TCP proxy for peer links (this kernel has no netem).
//!
//! Link `i` listens on member i's *advertised* peer port and forwards to its real peer port.
//! Each accepted connection is attributed to its source member through `/proc`: the
//! connecting socket's port is looked up in `/proc/net/tcp` for its inode, and that inode
//! among the file descriptors of the member processes (PIDs given by the harness).
//!
//! Faults:
//! - partitions: [`Proxy::isolate`] (all links to/from a member) and [`Proxy::cut`] (one
//!   pair, both directions). Cut traffic is read and discarded (connections stay open, as
//!   with dropped packets); new connections are accepted and blackholed. [`Proxy::heal`]
//!   lifts every cut and closes the blackholed connections so members reconnect.
//! - [`Proxy::set_link_fault`]: delay + jitter per chunk and "loss": with probability
//!   `loss` a chunk is held back an extra 200 ms (a TCP retransmission), and with
//!   probability `loss / 20` the connection is reset.
//!
//! Invariants: byte order within a connection is preserved (a chunk's due time is never
//! earlier than the previous chunk's); all threads stop after [`Proxy::shutdown`]
//! (accept loops poll the stop flag every 5 ms; pumps end when their sockets are shut down).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

/// Delay/loss applied to links.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFault {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Probability in [0, 1] per chunk.
    pub loss: f64,
}

pub struct Proxy {
    st: Arc<State>,
}

struct State {
    stop: AtomicBool,
    isolated: Mutex<HashSet<usize>>,
    cuts: Mutex<HashSet<(usize, usize)>>,
    /// (member the fault applies to, or None for all links; fault)
    fault: Mutex<Option<(Option<usize>, LinkFault)>>,
    pids: Mutex<HashMap<usize, u32>>,
    conns: Mutex<Vec<Conn>>,
    resets: AtomicUsize,
}

struct Conn {
    down: TcpStream,
    up: Option<TcpStream>,
    src: Option<usize>,
    dst: usize,
    cut: Arc<AtomicBool>,
}

impl State {
    fn is_cut(&self, src: Option<usize>, dst: usize) -> bool {
        let iso = self.isolated.lock().unwrap();
        if iso.contains(&dst) || src.is_some_and(|s| iso.contains(&s)) {
            return true;
        }
        src.is_some_and(|s| {
            self.cuts
                .lock()
                .unwrap()
                .contains(&(s.min(dst), s.max(dst)))
        })
    }

    fn fault_for(&self, src: Option<usize>, dst: usize) -> Option<LinkFault> {
        match *self.fault.lock().unwrap() {
            Some((None, f)) => Some(f),
            Some((Some(m), f)) if m == dst || src == Some(m) => Some(f),
            _ => None,
        }
    }

    fn recut(&self) {
        for c in self.conns.lock().unwrap().iter() {
            if self.is_cut(c.src, c.dst) {
                c.cut.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Default for Proxy {
    fn default() -> Self {
        Self::new()
    }
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy {
            st: Arc::new(State {
                stop: AtomicBool::new(false),
                isolated: Mutex::new(HashSet::new()),
                cuts: Mutex::new(HashSet::new()),
                fault: Mutex::new(None),
                pids: Mutex::new(HashMap::new()),
                conns: Mutex::new(Vec::new()),
                resets: AtomicUsize::new(0),
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

    /// Starts forwarding 127.0.0.1:`listen` -> 127.0.0.1:`target` for member `i`.
    pub fn add_link(&self, i: usize, listen: u16, target: u16) {
        let l = TcpListener::bind(("127.0.0.1", listen))
            .unwrap_or_else(|e| panic!("proxy bind 127.0.0.1:{listen}: {e}"));
        l.set_nonblocking(true).unwrap();
        let st = self.st.clone();
        std::thread::Builder::new()
            .name(format!("rb-proxy-{i}"))
            .spawn(move || accept_loop(st, l, i, listen, target))
            .expect("spawn proxy thread");
    }

    /// Blackholes all traffic to and from member `i`.
    pub fn isolate(&self, i: usize) {
        self.st.isolated.lock().unwrap().insert(i);
        self.st.recut();
    }

    /// Blackholes traffic between members `a` and `b` (both directions).
    pub fn cut(&self, a: usize, b: usize) {
        self.st.cuts.lock().unwrap().insert((a.min(b), a.max(b)));
        self.st.recut();
    }

    /// Sets (or with `None` clears) the delay/loss fault, on links touching `member` or on
    /// all links.
    pub fn set_link_fault(&self, member: Option<usize>, f: Option<LinkFault>) {
        *self.st.fault.lock().unwrap() = f.map(|f| (member, f));
    }

    /// Number of connections reset by the loss fault so far.
    pub fn resets(&self) -> usize {
        self.st.resets.load(Ordering::SeqCst)
    }

    /// Lifts all partitions and closes every blackholed connection.
    pub fn heal(&self) {
        self.st.isolated.lock().unwrap().clear();
        self.st.cuts.lock().unwrap().clear();
        let mut conns = self.st.conns.lock().unwrap();
        conns.retain(|c| {
            if c.cut.load(Ordering::SeqCst) {
                close(c);
                false
            } else {
                true
            }
        });
    }

    pub fn shutdown(&self) {
        self.st.stop.store(true, Ordering::SeqCst);
        for c in self.st.conns.lock().unwrap().drain(..) {
            close(&c);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn close(c: &Conn) {
    let _ = c.down.shutdown(Shutdown::Both);
    if let Some(u) = &c.up {
        let _ = u.shutdown(Shutdown::Both);
    }
}

fn accept_loop(st: Arc<State>, l: TcpListener, dst: usize, listen: u16, target: u16) {
    while !st.stop.load(Ordering::SeqCst) {
        let (down, peer) = match l.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = down.set_nonblocking(false);
        let _ = down.set_nodelay(true);
        let src = find_source(&st, peer.port(), listen);
        let cut = Arc::new(AtomicBool::new(st.is_cut(src, dst)));
        let up = if cut.load(Ordering::SeqCst) {
            None
        } else {
            let addr = format!("127.0.0.1:{target}").parse().unwrap();
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(u) => Some(u),
                Err(_) => {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
            }
        };
        if let Some(u) = &up {
            let _ = u.set_nodelay(true);
        }
        let (Ok(d1), Ok(d2)) = (down.try_clone(), down.try_clone()) else {
            continue;
        };
        let conn = Conn {
            down,
            up: up.as_ref().and_then(|u| u.try_clone().ok()),
            src,
            dst,
            cut: cut.clone(),
        };
        {
            let mut conns = st.conns.lock().unwrap();
            if conns.len() > 512 {
                // Bounded bookkeeping: forget the oldest (they are closed or will close).
                conns.drain(..256);
            }
            conns.push(conn);
        }
        let up2 = up.as_ref().and_then(|u| u.try_clone().ok());
        spawn_pump(st.clone(), d1, up2, src, dst, cut.clone());
        if let Some(u) = up {
            spawn_pump(st.clone(), u, Some(d2), src, dst, cut);
        }
    }
}

/// Copies `r` to `w` through a delay queue; discards while cut.
fn spawn_pump(
    st: Arc<State>,
    mut r: TcpStream,
    w: Option<TcpStream>,
    src: Option<usize>,
    dst: usize,
    cut: Arc<AtomicBool>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let r2 = r.try_clone().ok();
    if let Some(mut w) = w {
        std::thread::spawn(move || {
            for (due, buf) in rx {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if w.write_all(&buf).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(Shutdown::Both);
            if let Some(r2) = r2 {
                let _ = r2.shutdown(Shutdown::Both);
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = Instant::now();
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if st.stop.load(Ordering::SeqCst) {
                break;
            }
            if cut.load(Ordering::SeqCst) {
                continue;
            }
            let mut due = Instant::now();
            if let Some(f) = st.fault_for(src, dst) {
                let mut rng = rand::thread_rng();
                let mut ms = f.delay_ms;
                if f.jitter_ms > 0 {
                    ms += rng.gen_range(0..=f.jitter_ms);
                }
                if f.loss > 0.0 && rng.gen_bool(f.loss.min(1.0)) {
                    ms += 200;
                }
                if f.loss > 0.0 && rng.gen_bool((f.loss / 20.0).min(1.0)) {
                    st.resets.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                due += Duration::from_millis(ms);
            }
            due = due.max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = r.shutdown(Shutdown::Both);
    });
}

/// Which member owns the socket `127.0.0.1:<port>` connected to `127.0.0.1:<listen>`.
fn find_source(st: &State, port: u16, listen: u16) -> Option<usize> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let remote = format!("0100007F:{listen:04X}");
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1] == local && f[2] == remote).then(|| f[9].to_string())
    })?;
    let needle = format!("socket:[{inode}]");
    let pids = st.pids.lock().unwrap().clone();
    for (i, pid) in pids {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in rd.flatten().take(100_000) {
            if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == needle) {
                return Some(i);
            }
        }
    }
    None
}
