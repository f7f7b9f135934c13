//! HashKV equals real etcd's for the same history (Debian's etcd 3.4.23 at /usr/bin/etcd;
//! skipped when it is not installed). The etcd process is started on free loopback ports
//! and killed by its own handle at the end.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_mvcc::Store;
use oxcd_storage::{Backend, BackendConfig};

struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout=5s"])
        .args(args)
        .output()
        .expect("etcdctl runs");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `"field":` in etcdctl's JSON output.
fn json_number(s: &str, field: &str) -> i64 {
    let pat = format!("\"{field}\":");
    let at = s.find(&pat).unwrap_or_else(|| panic!("{field} in {s}")) + pat.len();
    let digits: String = s[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap()
}

enum Op {
    Put(&'static str, &'static str),
    Del(&'static str),
    Compact(i64),
}

const HISTORY: &[Op] = &[
    Op::Put("a", "1"),
    Op::Put("b", "2"),
    Op::Put("a", "3"),
    Op::Put("c", "hello"),
    Op::Del("b"),
    Op::Put("b", "again"),
    Op::Put("a", "4"),
    Op::Compact(5),
    Op::Put("d", "x"),
    Op::Put("a", "5"),
    Op::Del("c"),
];

#[test]
fn hash_kv_matches_etcd_for_the_same_history() {
    if !Path::new("/usr/bin/etcd").exists() || !Path::new("/usr/bin/etcdctl").exists() {
        eprintln!("skipped: no /usr/bin/etcd");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cp, pp) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let _etcd = Etcd(
        Command::new("/usr/bin/etcd")
            .args(["--name", "hash", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("hash={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &client,
                "--command-timeout=1s",
                "endpoint",
                "health",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "etcd did not become healthy");
        std::thread::sleep(Duration::from_millis(200));
    }

    let backend = Arc::new(
        Backend::open(
            &dir.path().join("oxcd").join("db"),
            BackendConfig::default(),
        )
        .unwrap(),
    );
    let store = Store::open(Arc::clone(&backend)).unwrap();
    for op in HISTORY {
        let mut wtx = backend.write_tx().unwrap();
        match op {
            Op::Put(k, v) => {
                etcdctl(&client, &["put", k, v]);
                let mut w = store.write(&mut wtx).unwrap();
                w.put(k.as_bytes(), v.as_bytes(), 0).unwrap();
                w.end();
            }
            Op::Del(k) => {
                etcdctl(&client, &["del", k]);
                let mut w = store.write(&mut wtx).unwrap();
                w.delete_range(k.as_bytes(), b"").unwrap();
                w.end();
            }
            Op::Compact(rev) => {
                etcdctl(&client, &["compact", &rev.to_string()]);
                let mut job = store.compact_logical(&mut wtx, *rev).unwrap();
                backend.commit(wtx).unwrap();
                store.publish();
                // Physically compact only part of it: the hash must not depend on it.
                store.compact_step(&mut job, 2).unwrap();
                continue;
            }
        }
        backend.commit(wtx).unwrap();
        store.publish();
    }
    let ours = store.hash_by_rev(0).unwrap().0;
    let out = etcdctl(&client, &["endpoint", "hashkv", "-w", "json"]);
    assert_eq!(ours.revision, json_number(&out, "revision"), "{out}");
    assert_eq!(
        ours.compact_revision,
        json_number(&out, "compact_revision"),
        "{out}"
    );
    assert_eq!(i64::from(ours.hash), json_number(&out, "hash"), "{out}");
    // At an earlier revision too.
    let out = etcdctl(&client, &["endpoint", "hashkv", "--rev", "9", "-w", "json"]);
    let at9 = store.hash_by_rev(9).unwrap().0;
    assert_eq!(i64::from(at9.hash), json_number(&out, "hash"), "{out}");
}
