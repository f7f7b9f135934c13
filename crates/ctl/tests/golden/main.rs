//! Golden-output tests: the same command run by Debian's etcdctl 3.4.23 and by oxcdctl,
//! both pointed at the same real server, must print the same stdout and stderr (etcdctl's
//! client-side `{"level":"warn",...}` log lines dropped) and exit with the same code.
//!
//! Run once against etcd and once against oxcd (each test skips when its server binary is
//! missing). Where two runs legitimately differ — a write run twice gets two revisions, a
//! granted lease gets a fresh id, timings — only those numbers are masked, and only for the
//! steps marked so.
//!
//! Modules: `auth` (auth/user/role and commands run as a user), `maint` (defrag, hashkv,
//! snapshot, lock, elect), `mirror` (make-mirror), `check` (check perf|datascale).
//! Invariant of every module: each spawned process is killed by PID, every wait is bounded.

mod auth;
mod check;
mod maint;
mod mirror;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use oxcd_testkit::{etcdctl_bin, run_with_timeout, serial, Cluster, ClusterOpts, ServerKind};

fn oxcdctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxcdctl"))
}

#[derive(Clone, Copy, PartialEq)]
enum Mask {
    /// Outputs must be identical.
    Exact,
    /// Revisions (and raft indexes / sizes / timings) may differ: the command writes, or
    /// reports live member state.
    Numbers,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(bin: &PathBuf, ep: &str, args: &[&str], stdin: Option<&str>) -> Run {
    run_for(bin, ep, args, stdin, Duration::from_secs(20))
}

/// `run`, killed after `limit`.
fn run_for(bin: &PathBuf, ep: &str, args: &[&str], stdin: Option<&str>, limit: Duration) -> Run {
    let mut cmd = Command::new(bin);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={ep}"))
        .args(args);
    let out = run_with_timeout(cmd, stdin.map(str::as_bytes), limit);
    let stderr = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr,
    }
}

/// Replace every run of digits (and hex ids) by `N`.
fn mask_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut prev_digit = false;
    for w in s.split_inclusive(|c: char| !c.is_ascii_alphanumeric()) {
        let (word, sep) = match w.char_indices().last() {
            Some((i, c)) if !c.is_ascii_alphanumeric() => (&w[..i], &w[i..]),
            _ => (w, ""),
        };
        // Lease and member ids as `%x` prints them: up to 16 hex digits, leading zeros
        // dropped.
        let is_hex_id = (8..=16).contains(&word.len())
            && word.chars().all(|c| c.is_ascii_hexdigit())
            && word.chars().any(|c| c.is_ascii_digit());
        if is_hex_id || (!word.is_empty() && word.chars().all(|c| c.is_ascii_digit())) {
            if !prev_digit {
                out.push('N');
            }
        } else {
            out.push_str(word);
        }
        prev_digit = false;
        out.push_str(sep);
    }
    out
}

fn mask_time(s: &str) -> String {
    // "took = 1.2ms" / "took":"1.2ms" / "Took" : 1.2ms
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut l = line.to_string();
        if l.starts_with("| ") && l.contains("true |") {
            // A health table row: the took column varies.
            out.push_str(&mask_took_cell(&l));
            continue;
        }
        for key in ["took = ", "\"took\":\"", "\"Took\" : "] {
            if let Some(p) = l.find(key) {
                let start = p + key.len();
                let end = l[start..]
                    .find(['"', '\n', ' ', ','])
                    .map_or(l.len(), |e| start + e);
                l.replace_range(start..end, "T");
            }
        }
        out.push_str(&l);
    }
    out
}

fn mask_took_cell(l: &str) -> String {
    let cells: Vec<&str> = l.split('|').collect();
    // | endpoint | health | took | error |
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 3 {
                " T ".to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn mask_table_borders(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("+-") || l.starts_with("|  ") && l.contains("TOOK") {
                "<border>\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

struct Golden {
    ep: String,
    failures: Vec<String>,
    checked: usize,
}

impl Golden {
    fn new(ep: &str) -> Golden {
        Golden {
            ep: ep.to_string(),
            failures: Vec::new(),
            checked: 0,
        }
    }

    /// Run `args` with etcdctl, then the `undo` commands (etcdctl, each must succeed), then
    /// `args` with oxcdctl: both runs start from the same state, which the oxcdctl run
    /// leaves behind.
    fn check_undo(&mut self, args: &[&str], stdin: Option<&str>, mask: Mask, undo: &[&[&str]]) {
        let want = run(&etcdctl_bin(), &self.ep, args, stdin);
        for u in undo {
            let r = run(&etcdctl_bin(), &self.ep, u, None);
            assert_eq!(r.code, 0, "undo {u:?}: {}", r.stderr);
        }
        let got = run(&oxcdctl(), &self.ep, args, stdin);
        self.compare(args, mask, &want, &got);
    }

    fn check_with(
        &mut self,
        args: &[&str],
        stdin: Option<&str>,
        mask: Mask,
        oxcd_args: Option<&[&str]>,
    ) {
        self.check_reset(args, stdin, mask, oxcd_args, &[]);
    }

    /// Like `check_with`, running the `reset` commands (with etcdctl) before each of the
    /// two runs, so both start from the same data.
    fn check_reset(
        &mut self,
        args: &[&str],
        stdin: Option<&str>,
        mask: Mask,
        oxcd_args: Option<&[&str]>,
        reset: &[&[&str]],
    ) {
        let reset_all = |ep: &str| {
            for r in reset {
                assert_eq!(run(&etcdctl_bin(), ep, r, None).code, 0, "reset {r:?}");
            }
        };
        reset_all(&self.ep);
        let want = run(&etcdctl_bin(), &self.ep, args, stdin);
        reset_all(&self.ep);
        let got = run(&oxcdctl(), &self.ep, oxcd_args.unwrap_or(args), stdin);
        self.compare(args, mask, &want, &got);
    }

    fn compare(&mut self, args: &[&str], mask: Mask, want: &Run, got: &Run) {
        let norm = |r: &Run| {
            let (o, e) = (
                mask_table_borders(&mask_time(&r.stdout)),
                mask_time(&r.stderr),
            );
            match mask {
                Mask::Exact => (r.code, o, e),
                Mask::Numbers => (r.code, mask_numbers(&o), mask_numbers(&e)),
            }
        };
        self.checked += 1;
        let (w, g) = (norm(want), norm(got));
        if w != g {
            self.failures.push(format!(
                "`{}`:\n  etcdctl (rc {}):\n{}{}  oxcdctl (rc {}):\n{}{}  (raw: {:?} vs {:?})\n",
                args.join(" "),
                w.0,
                indent(&w.1),
                indent(&w.2),
                g.0,
                indent(&g.1),
                indent(&g.2),
                w.1,
                g.1
            ));
        }
    }

    fn check(&mut self, args: &[&str], mask: Mask) {
        self.check_with(args, None, mask, None);
    }

    fn finish(self) {
        eprintln!("golden: {} commands compared", self.checked);
        assert!(
            self.failures.is_empty(),
            "{} of {} commands differ:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

/// A cluster of `kind` with `n` members named `name`, or `None` (test skipped) when
/// etcdctl or the server binary is missing.
fn start(name: &str, kind: ServerKind, n: usize) -> Option<Cluster> {
    if !etcdctl_bin().exists() {
        eprintln!("SKIP: no etcdctl");
        return None;
    }
    let mut opts = ClusterOpts::new(n);
    opts.kind = kind;
    match Cluster::try_start(name, opts) {
        Ok(c) => Some(c),
        Err(e) if e.contains("not found") => {
            eprintln!("SKIP: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Run the whole golden suite against a 1-member cluster of `kind`.
fn suite(kind: ServerKind) {
    let _g = serial();
    let Some(cl) = start("golden", kind, 1) else {
        return;
    };
    let ep = cl.members[0].endpoint();
    let mut g = Golden::new(&ep);
    use Mask::*;
    let setup = |args: &[&str]| {
        let r = run(&etcdctl_bin(), &ep, args, None);
        assert_eq!(r.code, 0, "setup {args:?}: {}", r.stderr);
        r.stdout
    };

    // Writes: both print the same, up to the revision each got.
    for w in ["simple", "json", "fields"] {
        g.check(&["put", "foo", "bar", "-w", w], Numbers);
        g.check_reset(
            &["put", "foo", "baz", "--prev-kv", "-w", w],
            None,
            Numbers,
            None,
            &[&["put", "foo", "bar"]],
        );
    }
    setup(&["put", "foo", "bar"]);
    setup(&["put", "foo2", "bar 2"]);
    setup(&["put", "zoo", "z\"q\nline"]);
    setup(&["put", "a/1", "1"]);
    setup(&["put", "a/2", "2"]);

    // Reads at one state: identical.
    for w in ["simple", "json", "fields", "protobuf"] {
        g.check(&["get", "foo", "-w", w], Exact);
        g.check(&["get", "", "--prefix", "-w", w], Exact);
        g.check(&["get", "a/", "--prefix", "--limit", "1", "-w", w], Exact);
        g.check(&["get", "nothing", "-w", w], Exact);
    }
    g.check(&["get", "foo", "--keys-only"], Exact);
    g.check(&["get", "foo", "--print-value-only"], Exact);
    g.check(&["get", "foo", "--hex"], Exact);
    g.check(&["get", "a", "--from-key"], Exact);
    g.check(&["get", "a/1", "a/3"], Exact);
    g.check(
        &["get", "", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"],
        Exact,
    );
    g.check(
        &["get", "", "--prefix", "--order=DESCEND", "--keys-only"],
        Exact,
    );
    g.check(&["get", "foo", "--consistency=s"], Exact);
    g.check(&["get", "foo", "--rev=2"], Exact);
    g.check(&["get", "zoo", "-w", "fields"], Exact);
    g.check(&["get", "foo", "-w", "table"], Exact);

    // Argument errors: same text and exit code.
    g.check(&["get"], Exact);
    g.check(&["put"], Exact);
    g.check(&["del"], Exact);
    g.check(&["get", "a", "--prefix", "--from-key"], Exact);
    g.check(&["lease", "revoke", "1234"], Exact);
    g.check(&["lease", "timetolive", "1234"], Exact);
    g.check(&["put", "k", "v", "--lease=zz"], Exact);

    // Deletes and txns write: numbers masked.
    setup(&["put", "d/1", "x"]);
    setup(&["put", "d/2", "y"]);
    let dset: &[&[&str]] = &[&["put", "d/1", "x"], &["put", "d/2", "y"]];
    g.check_reset(&["del", "d/1", "--prev-kv"], None, Numbers, None, dset);
    g.check_reset(
        &["del", "d/", "--prefix", "-w", "json"],
        None,
        Numbers,
        None,
        dset,
    );
    g.check(&["del", "nothing", "-w", "fields"], Numbers);
    let txn = "value(\"foo\") = \"bar\"\n\nput t1 v1\nget foo\n\ndel t1\n\n";
    for w in ["simple", "json", "fields"] {
        g.check_with(&["txn", "-w", w], Some(txn), Numbers, None);
    }
    let failing = "mod(\"foo\") < \"1\"\n\nput t1 v1\n\nget foo --prefix\ndel nothing\n\n";
    g.check_with(&["txn"], Some(failing), Numbers, None);
    g.check_with(&["txn", "-i"], Some(txn), Numbers, None);
    g.check_with(&["txn"], Some("bogus\n\n\n\n"), Exact, None);
    g.check_with(&["txn"], Some("\nput a\n\n\n"), Exact, None);

    // Leases: each grant gets its own id.
    g.check(&["lease", "grant", "100"], Numbers);
    g.check(&["lease", "grant", "100", "-w", "json"], Numbers);
    g.check(&["lease", "grant", "100", "-w", "fields"], Numbers);
    g.check(&["lease", "list"], Exact);
    g.check(&["lease", "list", "-w", "json"], Exact);
    let id = setup(&["lease", "grant", "200"]);
    let id = id.split_whitespace().nth(1).unwrap().to_string();
    setup(&["put", "leased", "v", &format!("--lease={id}")]);
    g.check(&["lease", "timetolive", &id, "--keys"], Numbers);
    g.check(&["lease", "timetolive", &id, "-w", "json"], Numbers);
    g.check(
        &["lease", "timetolive", &id, "--keys", "-w", "fields"],
        Numbers,
    );
    g.check(&["lease", "keep-alive", "--once", &id], Numbers);
    let id2 = setup(&["lease", "grant", "200"]);
    let id2 = id2.split_whitespace().nth(1).unwrap().to_string();
    g.check_with(
        &["lease", "revoke", &id],
        None,
        Numbers,
        Some(&["lease", "revoke", &id2]),
    );

    // Compaction: each at its own revision; compacting an old one fails the same way.
    let rev_of = |s: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["header"]["revision"].to_string()
    };
    let r1 = rev_of(&setup(&["get", "foo", "-w", "json"]));
    setup(&["put", "foo", "c"]);
    let r2 = rev_of(&setup(&["get", "foo", "-w", "json"]));
    g.check_with(
        &["compaction", &r1],
        None,
        Numbers,
        Some(&["compaction", &r2]),
    );
    g.check(&["compaction", "1"], Exact);
    g.check(&["get", "foo", "--rev=1"], Exact);

    // Cluster and maintenance views.
    for w in ["simple", "json", "fields", "table"] {
        g.check(&["member", "list", "-w", w], Exact);
        g.check(&["endpoint", "status", "-w", w], Numbers);
        g.check(&["endpoint", "health", "-w", w], Exact);
    }
    g.check(&["endpoint", "status", "--cluster"], Numbers);
    g.check(&["endpoint", "health", "--cluster", "-w", "table"], Exact);
    g.check(&["alarm", "list"], Exact);
    g.check(&["member", "remove", "1234"], Exact);
    g.check(&["member", "add", "x"], Exact);
    g.check(
        &["member", "update", "zz", "--peer-urls=http://127.0.0.1:1"],
        Exact,
    );

    watch_golden(&mut g);
    maint::golden(&mut g);
    drop(cl);
    g.finish();
}

/// `watch` (plain, json, with exec): both watchers run at once and see the same events.
fn watch_golden(g: &mut Golden) {
    let cases: [&[&str]; 3] = [
        &["watch", "w/", "--prefix"],
        &["watch", "w/1", "-w", "json", "--prev-kv"],
        &[
            "watch",
            "w/1",
            "--",
            "sh",
            "-c",
            "echo exec $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE",
        ],
    ];
    for args in cases {
        let spawn = |bin: PathBuf| {
            Command::new(bin)
                .arg(format!("--endpoints={}", g.ep))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn watcher")
        };
        let mut a = spawn(etcdctl_bin());
        let mut b = spawn(oxcdctl());
        std::thread::sleep(Duration::from_millis(700));
        let r = run(&etcdctl_bin(), &g.ep, &["put", "w/1", "one"], None);
        assert_eq!(r.code, 0);
        run(&etcdctl_bin(), &g.ep, &["put", "w/1", "two"], None);
        run(&etcdctl_bin(), &g.ep, &["del", "w/1"], None);
        std::thread::sleep(Duration::from_millis(700));
        let _ = a.kill();
        let _ = b.kill();
        let oa = a.wait_with_output().unwrap();
        let ob = b.wait_with_output().unwrap();
        let (sa, sb) = (
            String::from_utf8_lossy(&oa.stdout).into_owned(),
            String::from_utf8_lossy(&ob.stdout).into_owned(),
        );
        g.checked += 1;
        if sa != sb || sa.is_empty() {
            g.failures.push(format!(
                "`{}`:\n  etcdctl:\n{}  oxcdctl:\n{}{}",
                args.join(" "),
                indent(&sa),
                indent(&sb),
                indent(&String::from_utf8_lossy(&ob.stderr))
            ));
        }
    }
}

#[test]
fn golden_against_etcd() {
    suite(ServerKind::Etcd);
}

#[test]
fn golden_against_oxcd() {
    suite(ServerKind::Oxcd);
}

#[test]
fn version_and_endpoint_errors() {
    let out = run(&oxcdctl(), "127.0.0.1:2379", &["version"], None);
    assert_eq!(out.code, 0);
    assert!(out.stdout.ends_with("API version: 3.4\n"), "{}", out.stdout);
    // Unreachable endpoint: the message names it.
    let port = oxcd_testkit::free_port();
    let ep = format!("127.0.0.1:{port}");
    let out = run(&oxcdctl(), &ep, &["--dial-timeout=500ms", "get", "a"], None);
    assert_ne!(out.code, 0);
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains(&ep),
        "error must name {ep}: {}",
        out.stderr
    );
    // Malformed endpoint.
    let out = run(&oxcdctl(), "not a url:x", &["get", "a"], None);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not a url:x"), "{}", out.stderr);
    // ETCDCTL_* environment.
    let mut cmd = Command::new(oxcdctl());
    cmd.env("ETCDCTL_ENDPOINTS", &ep)
        .env("ETCDCTL_DIAL_TIMEOUT", "300ms")
        .args(["get", "a"]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(10));
    assert!(out.stderr.contains(&ep), "{}", out.stderr);
}
