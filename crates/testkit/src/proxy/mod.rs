//! Fault-injecting TCP proxy for peer links (this kernel has no netem).
//!
//! Link `i` listens on member i's *advertised* peer port and forwards to its real peer port.
//! Each accepted connection is attributed to its source member through `/proc` (see
//! [`source`]), using the member PIDs the harness registers with [`Proxy::set_pid`].
//!
//! Faults:
//! - partitions: [`Proxy::isolate`] (all links to/from a member) and [`Proxy::cut`] (one
//!   pair, both directions). Cut traffic is read and discarded (connections stay open and
//!   silent, as with dropped packets); new connections are accepted and blackholed.
//!   [`Proxy::heal`] lifts every cut and closes the blackholed connections so members
//!   reconnect.
//! - [`Proxy::set_link_fault`]: delay + jitter per chunk and "loss": with probability
//!   `loss` a chunk is held back an extra 200 ms (a TCP retransmission), and with
//!   probability `loss / 20` the connection is reset.
//!
//! Invariants: byte order within a connection is preserved (a chunk's due time is never
//! earlier than the previous chunk's); a blackholed connection never reports a close to
//! either side until healed; all threads stop after [`Proxy::shutdown`] (accept loops poll
//! the stop flag every 5 ms; pumps end when their sockets are shut down). Bookkeeping is
//! bounded (at most 2000 events, about 512 connections).

mod link;
mod source;

use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Delay/loss applied to links.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFault {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Probability in [0, 1] per chunk.
    pub loss: f64,
}

/// The proxy; dropping it shuts it down.
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

impl State {
    fn event(&self, s: String) {
        let mut ev = self.events.lock().unwrap();
        if ev.len() < 2000 {
            ev.push(format!("+{:.2}s {s}", self.t0.elapsed().as_secs_f64()));
        }
    }

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

    /// Marks every existing connection that is now partitioned as cut.
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
                events: Mutex::new(Vec::new()),
                t0: Instant::now(),
            }),
        }
    }

    /// Registers (or with `None` forgets) the PID of member `i`, for source attribution.
    pub fn set_pid(&self, i: usize, pid: Option<u32>) {
        let mut p = self.st.pids.lock().unwrap();
        match pid {
            Some(pid) => p.insert(i, pid),
            None => p.remove(&i),
        };
    }

    /// What the proxy did so far (accepts, cuts, heals), with timestamps.
    pub fn events(&self) -> Vec<String> {
        self.st.events.lock().unwrap().clone()
    }

    /// Starts forwarding 127.0.0.1:`listen` -> 127.0.0.1:`target` for member `i`.
    pub fn add_link(&self, i: usize, listen: u16, target: u16) {
        let l = TcpListener::bind(("127.0.0.1", listen))
            .unwrap_or_else(|e| panic!("proxy bind 127.0.0.1:{listen}: {e}"));
        l.set_nonblocking(true).unwrap();
        let st = self.st.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || link::accept_loop(st, l, i, listen, target))
            .expect("spawn proxy thread");
    }

    /// Blackholes all traffic to and from member `i`.
    pub fn isolate(&self, i: usize) {
        self.st.isolated.lock().unwrap().insert(i);
        self.st.event(format!("isolate member #{i}"));
        self.st.recut();
    }

    /// Blackholes traffic between members `a` and `b` (both directions).
    pub fn cut(&self, a: usize, b: usize) {
        self.st.cuts.lock().unwrap().insert((a.min(b), a.max(b)));
        self.st.event(format!("cut #{a} <-> #{b}"));
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
        let mut closed = 0;
        for c in conns.iter() {
            if c.cut.load(Ordering::SeqCst) {
                close(c);
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
    c.closed.store(true, Ordering::SeqCst);
    let _ = c.down.shutdown(Shutdown::Both);
    if let Some(u) = &c.up {
        let _ = u.shutdown(Shutdown::Both);
    }
}
