//! One proxied link: the accept loop of a member's advertised peer port and the pumps that
//! copy each connection's bytes in both directions.
//!
//! Invariants: a pump copies through a delay queue whose due times never decrease (byte
//! order is kept); while its connection is cut it reads and discards; when a pump ends it
//! propagates the close to the other side unless the connection is blackholed (and not
//! explicitly closed by heal/shutdown), so a partition is never observed as a disconnect.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::source::find_source;
use super::{Conn, State};

pub(super) fn accept_loop(st: Arc<State>, l: TcpListener, dst: usize, listen: u16, target: u16) {
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
        let is_cut = st.is_cut(src, dst);
        let up = if is_cut {
            None
        } else {
            let addr = format!("127.0.0.1:{target}").parse().unwrap();
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
        };
        st.event(format!(
            "accept {src:?} -> #{dst} (from port {}){}{}",
            peer.port(),
            if is_cut { " [blackholed]" } else { "" },
            if up.is_none() && !is_cut {
                " [upstream refused]"
            } else {
                ""
            }
        ));
        if up.is_none() && !is_cut {
            // Member down: refuse like the member would.
            let _ = down.shutdown(Shutdown::Both);
            continue;
        }
        if let Some(u) = &up {
            let _ = u.set_nodelay(true);
        }
        let (Ok(d1), Ok(d2)) = (down.try_clone(), down.try_clone()) else {
            continue;
        };
        let cut = Arc::new(AtomicBool::new(is_cut));
        let closed = Arc::new(AtomicBool::new(false));
        let conn = Conn {
            down,
            up: up.as_ref().and_then(|u| u.try_clone().ok()),
            src,
            dst,
            cut: cut.clone(),
            closed: closed.clone(),
        };
        {
            let mut conns = st.conns.lock().unwrap();
            conns.retain(|c| !c.closed.load(Ordering::SeqCst));
            if conns.len() > 512 {
                // Bounded bookkeeping: forget the oldest (they are closed or will close).
                conns.drain(..256);
            }
            conns.push(conn);
        }
        let flags = Flags { cut, closed };
        let up2 = up.as_ref().and_then(|u| u.try_clone().ok());
        spawn_pump(st.clone(), d1, up2, src, dst, flags.clone());
        if let Some(u) = up {
            spawn_pump(st.clone(), u, Some(d2), src, dst, flags);
        }
    }
}

/// Shared state of one connection's two pumps.
#[derive(Clone)]
struct Flags {
    cut: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl Flags {
    /// Whether an ending pump may tell the other side (not while silently blackholed).
    fn may_propagate_close(&self) -> bool {
        !self.cut.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst)
    }
}

/// Copies `r` to `w` through a delay queue; discards while cut.
fn spawn_pump(
    st: Arc<State>,
    mut r: TcpStream,
    w: Option<TcpStream>,
    src: Option<usize>,
    dst: usize,
    fl: Flags,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let r2 = r.try_clone().ok();
    if let Some(mut w) = w {
        let fl = fl.clone();
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
            if fl.may_propagate_close() {
                let _ = w.shutdown(Shutdown::Both);
                if let Some(r2) = r2 {
                    let _ = r2.shutdown(Shutdown::Both);
                }
                fl.closed.store(true, Ordering::SeqCst);
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
            if st.stop.load(Ordering::SeqCst) || fl.closed.load(Ordering::SeqCst) {
                break;
            }
            if fl.cut.load(Ordering::SeqCst) {
                continue; // blackhole
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
        if fl.may_propagate_close() {
            let _ = r.shutdown(Shutdown::Both);
            fl.closed.store(true, Ordering::SeqCst);
        }
    });
}
