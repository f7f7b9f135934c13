//! Golden cases for `defrag`, `endpoint hashkv`, `snapshot save` (and oxcdctl's pointer to
//! oxcdutl for the offline snapshot commands), `lock` and `elect`, run inside the main
//! suite's cluster.
//!
//! Invariants: long-running commands (lock without a command, elect) are read line by line
//! with a deadline and stopped by SIGTERM to their PID, then killed if still running.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use oxcd_testkit::etcdctl_bin;
use oxcd_testkit::process::signal_pid;

use super::{indent, mask_numbers, oxcdctl, run, run_for, Golden, Mask};

const SIGTERM: i32 = 15;

/// A running command whose stdout lines arrive on a channel.
pub(super) struct Streaming {
    child: Child,
    lines: Receiver<String>,
}

impl Streaming {
    pub(super) fn spawn(bin: &PathBuf, ep: &str, args: &[&str]) -> Streaming {
        let mut child = Command::new(bin)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={ep}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The next `n` lines, or fewer if `within` passes first.
    pub(super) fn take(&self, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        let mut v = Vec::new();
        while v.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => v.push(l),
                Err(_) => break,
            }
        }
        v
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; the exit code (-1 if killed).
    pub(super) fn stop(mut self) -> i32 {
        signal_pid(self.child.id(), SIGTERM);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        -1
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A JSON line with its base64 keys decoded (they hold lease ids), other lines as they are.
fn decode_keys(l: &str) -> String {
    use base64::Engine;
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(l) else {
        return l.to_string();
    };
    if let Some(kvs) = v.get_mut("kvs").and_then(|k| k.as_array_mut()) {
        for kv in kvs {
            if let Some(k) = kv.get("key").and_then(|k| k.as_str()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .unwrap_or_default();
                kv["key"] = String::from_utf8_lossy(&raw).into_owned().into();
            }
        }
    }
    v.to_string()
}

/// Record a mismatch of two streamed outputs (masked numbers).
fn compare_lines(g: &mut Golden, what: &str, want: &[String], got: &[String]) {
    g.checked += 1;
    let m = |v: &[String]| {
        let v: Vec<String> = v.iter().map(|l| decode_keys(l)).collect();
        mask_numbers(&v.join("\n"))
    };
    if m(want) != m(got) || want.is_empty() {
        g.failures.push(format!(
            "`{what}`:\n  etcdctl:\n{}  oxcdctl:\n{}",
            indent(&want.join("\n")),
            indent(&got.join("\n"))
        ));
    }
}

pub(super) fn golden(g: &mut Golden) {
    use Mask::*;
    g.check(&["defrag"], Exact);
    g.check(&["defrag", "--cluster"], Exact);
    for w in ["simple", "json", "fields", "table"] {
        g.check(&["endpoint", "hashkv", "-w", w], Exact);
        g.check(&["endpoint", "hashkv", "--cluster", "-w", w], Exact);
    }
    g.check(&["endpoint", "hashkv", "--rev=1"], Exact);
    g.check(&["endpoint", "hashkv", "-w", "protobuf"], Exact);
    failing_endpoint(&g.ep);
    snapshot(g);
    lock(g);
    elect(g);
}

fn snapshot(g: &mut Golden) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snap.db");
    let p = path.to_str().expect("utf-8 path");
    let args = ["snapshot", "save", p];
    let want = run(&etcdctl_bin(), &g.ep, &args, None);
    let theirs = dir.path().join("etcdctl.db");
    std::fs::rename(&path, &theirs).expect("etcdctl saved the snapshot");
    let got = run(&oxcdctl(), &g.ep, &args, None);
    g.compare(&args, Mask::Exact, &want, &got);
    let size = |f: &std::path::Path| std::fs::metadata(f).map_or(0, |m| m.len());
    assert!(size(&theirs) > 0, "etcdctl's snapshot is empty");
    assert_eq!(size(&path), size(&theirs), "snapshot sizes differ");
    assert!(
        !dir.path().join("snap.db.part").exists(),
        "partial file left"
    );
    // Several endpoints: refused the same way.
    let two = |bin: PathBuf| {
        let mut cmd = Command::new(bin);
        cmd.env("ETCDCTL_ENDPOINTS", format!("{},{}", g.ep, g.ep))
            .args(["snapshot", "save", p]);
        let o = oxcd_testkit::run_with_timeout(cmd, None, Duration::from_secs(10));
        let err: String = o
            .stderr
            .lines()
            .filter(|l| !l.starts_with("{\"level\""))
            .collect();
        (o.status.code(), err)
    };
    let (want, got) = (two(etcdctl_bin()), two(oxcdctl()));
    g.checked += 1;
    if want != got || want.0 != Some(5) {
        g.failures.push(format!(
            "`snapshot save` to two endpoints: {want:?} vs {got:?}"
        ));
    }
    g.check(&["snapshot", "save"], Mask::Exact);
    // Offline status/restore: oxcdctl points to oxcdutl (etcd's file is a bbolt db).
    for sub in ["status", "restore"] {
        let r = run(&oxcdctl(), &g.ep, &["snapshot", sub, p], None);
        assert_eq!(r.code, 4, "snapshot {sub}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("Error: ") && r.stderr.contains("oxcdutl snapshot"),
            "snapshot {sub}: {}",
            r.stderr
        );
    }
}

fn lock(g: &mut Golden) {
    use Mask::*;
    g.check(&["lock"], Exact);
    g.check(&["lock", "L1", "echo", "hi"], Exact);
    g.check(
        &[
            "lock",
            "L1",
            "--",
            "sh",
            "-c",
            "echo $ETCD_LOCK_KEY; exit 3",
        ],
        Numbers,
    );
    g.check(
        &[
            "lock",
            "L1",
            "--ttl=3",
            "--",
            "sh",
            "-c",
            "echo ${ETCD_LOCK_REV:+rev}",
        ],
        Exact,
    );
    g.check(&["lock", "L1", "no-such-command-xyz"], Exact);
    // Held until a signal: the key is printed in the -w format, and released on SIGTERM.
    for w in ["simple", "json"] {
        let held = |bin: &PathBuf| {
            let s = Streaming::spawn(bin, &g.ep, &["lock", "L2", "-w", w]);
            let lines = s.take(if w == "simple" { 2 } else { 1 }, Duration::from_secs(10));
            // While it is held, another locker waits.
            let other = run_for(
                &etcdctl_bin(),
                &g.ep,
                &["lock", "L2", "echo", "got"],
                None,
                Duration::from_secs(1),
            );
            assert!(
                !other.stdout.contains("got"),
                "lock L2 was not held: {}",
                other.stdout
            );
            let code = s.stop();
            (lines, code)
        };
        let (want, wc) = held(&etcdctl_bin());
        let (got, gc) = held(&oxcdctl());
        compare_lines(g, &format!("lock L2 -w {w}"), &want, &got);
        g.checked += 1;
        if wc != gc {
            g.failures.push(format!(
                "`lock L2` after SIGTERM: etcdctl rc {wc}, oxcdctl rc {gc}"
            ));
        }
        // Released: the next locker gets it at once.
        let r = run(&oxcdctl(), &g.ep, &["lock", "L2", "echo", "free"], None);
        assert_eq!((r.code, r.stdout.as_str()), (0, "free\n"), "{}", r.stderr);
    }
}

fn elect(g: &mut Golden) {
    g.check(&["elect"], Mask::Exact);
    g.check(&["elect", "E1"], Mask::Exact);
    g.check(&["elect", "-l", "E1", "p"], Mask::Exact);
    // Both observers watch two leaders in turn: a campaign of etcdctl, then of oxcdctl.
    let obs_a = Streaming::spawn(&etcdctl_bin(), &g.ep, &["elect", "-l", "E1"]);
    let obs_b = Streaming::spawn(&oxcdctl(), &g.ep, &["elect", "-l", "E1"]);
    std::thread::sleep(Duration::from_millis(500));
    let campaign = |bin: &PathBuf, prop: &str| {
        let s = Streaming::spawn(bin, &g.ep, &["elect", "E1", prop]);
        let lines = s.take(2, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(300));
        (lines, s.stop())
    };
    let (want, wc) = campaign(&etcdctl_bin(), "prop1");
    let (got, gc) = campaign(&oxcdctl(), "prop1");
    compare_lines(g, "elect E1 prop1", &want, &got);
    assert_eq!(want.get(1).map(String::as_str), Some("prop1"));
    g.checked += 1;
    if wc != gc {
        g.failures.push(format!(
            "`elect E1 prop1` after SIGTERM: etcdctl rc {wc}, oxcdctl rc {gc}"
        ));
    }
    let seen_a = obs_a.take(4, Duration::from_secs(5));
    let seen_b = obs_b.take(4, Duration::from_secs(5));
    compare_lines(g, "elect -l E1", &seen_a, &seen_b);
    obs_a.stop();
    obs_b.stop();
}

/// Beyond etcdctl: per-endpoint commands with one dead endpoint print the live one's
/// result, name the dead one on stderr and fail.
fn failing_endpoint(ep: &str) {
    let bad = format!("127.0.0.1:{}", oxcd_testkit::free_port());
    let eps = format!("--endpoints={ep},{bad}");
    for args in [
        &["endpoint", "hashkv"][..],
        &["endpoint", "status"],
        &["defrag"],
    ] {
        let mut full = vec![eps.as_str(), "--dial-timeout=500ms", "--command-timeout=2s"];
        full.extend_from_slice(args);
        let r = run_for(&oxcdctl(), ep, &full, None, Duration::from_secs(15));
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(ep), "{args:?} prints {ep}: {}", r.stdout);
        assert!(
            r.stderr.contains(&bad) && !r.stdout.contains(&bad),
            "{args:?} names {bad} on stderr: {}",
            r.stderr
        );
    }
}
