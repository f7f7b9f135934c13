//! make-mirror between two single-member clusters of one kind: etcdctl and oxcdctl mirror
//! the same source prefix to two destination prefixes at once; both destinations must get
//! the initial keys and then the live changes, the same way.
//!
//! Invariants: every poll is bounded (10 s); both mirrors are stopped by PID.

use std::time::{Duration, Instant};

use oxcd_testkit::{etcdctl_bin, serial, ServerKind};

use super::maint::Streaming;
use super::{oxcdctl, run, start, Golden, Mask};

/// `get --prefix p` on `ep` as `key=value` lines, the prefix cut off.
fn dump(ep: &str, p: &str) -> Vec<String> {
    let r = run(
        &etcdctl_bin(),
        ep,
        &["get", p, "--prefix", "-w", "json"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let b64 = |x: &serde_json::Value| {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(x.as_str().unwrap_or(""))
            .unwrap_or_default();
        String::from_utf8_lossy(&raw).into_owned()
    };
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| format!("{}={}", &b64(&kv["key"])[p.len()..], b64(&kv["value"])))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until both destination prefixes hold `want`.
fn wait_for(dst: &str, want: &[&str]) -> (Vec<String>, Vec<String>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (e, o) = (dump(dst, "e/"), dump(dst, "o/"));
        if (e == want && o == want) || Instant::now() > end {
            return (e, o);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mirror_suite(kind: ServerKind) {
    let _g = serial();
    let Some(src) = start("mirror-src", kind, 1) else {
        return;
    };
    let Some(dst) = start("mirror-dst", kind, 1) else {
        return;
    };
    let (s, d) = (src.members[0].endpoint(), dst.members[0].endpoint());
    let mut g = Golden::new(&s);
    g.check(&["make-mirror"], Mask::Exact);
    g.check(
        &["make-mirror", "--dest-prefix=x", "--no-dest-prefix", &d],
        Mask::Exact,
    );
    g.finish();

    for (k, v) in [("m/1", "one"), ("m/2", "two"), ("other", "no")] {
        assert_eq!(run(&etcdctl_bin(), &s, &["put", k, v], None).code, 0);
    }
    let theirs = Streaming::spawn(
        &etcdctl_bin(),
        &s,
        &["make-mirror", "--prefix=m/", "--dest-prefix=e/", &d],
    );
    let ours = Streaming::spawn(
        &oxcdctl(),
        &s,
        &[
            "make-mirror",
            "--prefix=m/",
            "--dest-prefix=o/",
            "--report-interval=1s",
            &d,
        ],
    );
    let base = ["1=one", "2=two"];
    let (e, o) = wait_for(&d, &base);
    assert_eq!(e, base, "etcdctl's initial sync");
    assert_eq!(o, base, "oxcdctl's initial sync");
    // Live changes: a put, an overwrite, a delete, and a key outside the prefix.
    for args in [
        &["put", "m/3", "three"][..],
        &["put", "m/2", "TWO"],
        &["del", "m/1"],
        &["put", "other", "still no"],
    ] {
        assert_eq!(run(&etcdctl_bin(), &s, args, None).code, 0, "{args:?}");
    }
    let live = ["2=TWO", "3=three"];
    let (e, o) = wait_for(&d, &live);
    assert_eq!(e, live, "etcdctl's live mirror");
    assert_eq!(o, live, "oxcdctl's live mirror");
    assert!(
        dump(&d, "other").is_empty(),
        "keys outside --prefix stay out"
    );
    // oxcdctl prints the count of keys mirrored (2 copied + 3 changes) every second.
    let counts = ours.take(3, Duration::from_secs(5));
    assert!(!counts.is_empty(), "no count printed");
    assert!(
        counts.iter().all(|l| l.parse::<i64>().is_ok()),
        "{counts:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = counts.last().cloned().unwrap_or_default();
    while last != "5" && Instant::now() < deadline {
        last = ours.take(1, Duration::from_secs(2)).pop().unwrap_or(last);
    }
    assert_eq!(last, "5", "keys mirrored");
    theirs.stop();
    ours.stop();

    // --no-dest-prefix: into the root of the destination.
    let root = Streaming::spawn(
        &oxcdctl(),
        &s,
        &["make-mirror", "--prefix=m/", "--no-dest-prefix", &d],
    );
    let end = Instant::now() + Duration::from_secs(10);
    while dump(&d, "3").is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dump(&d, "3"), ["=three"], "--no-dest-prefix");
    root.stop();
}

#[test]
fn mirror_against_etcd() {
    mirror_suite(ServerKind::Etcd);
}

#[test]
fn mirror_against_oxcd() {
    mirror_suite(ServerKind::Oxcd);
}
