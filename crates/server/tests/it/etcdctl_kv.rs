//! etcdctl 3.4 (ETCDCTL_API=3) against a fresh single-member server: KV commands with their
//! flags, `-w json` field checks, txn via stdin, compaction, endpoint status/health and member
//! list. Runs against oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`).

use crate::common::TestServer;
use serde_json::Value;

/// Standard base64 (what etcdctl's `-w json` uses for keys and values).
fn b64(data: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = data.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= n {
                out.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Non-empty stdout lines.
fn lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.is_empty()).collect()
}

fn ok_lines(s: &TestServer, args: &[&str]) -> Vec<String> {
    lines(s.etcdctl(args).ok())
        .into_iter()
        .map(String::from)
        .collect()
}

/// Asserts that etcdctl failed and printed exactly `Error: <msg>` on stderr.
fn assert_ctl_error(s: &TestServer, args: &[&str], msg: &str) {
    let out = s.etcdctl(args);
    let err = out.err();
    let want = format!("Error: {msg}");
    assert!(
        err.lines().any(|l| l.trim_end() == want),
        "etcdctl {args:?}: expected line {want:?} on stderr, got {out:#?}"
    );
}

fn rev(v: &Value) -> i64 {
    v["header"]["revision"].as_i64().expect("header.revision")
}

/// (key, value, create_revision, mod_revision, version) of each kv in a JSON range reply.
fn kvs(v: &Value) -> Vec<(String, String, i64, i64, i64)> {
    v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or("").to_string(),
                        kv["value"].as_str().unwrap_or("").to_string(),
                        kv["create_revision"].as_i64().unwrap_or(0),
                        kv["mod_revision"].as_i64().unwrap_or(0),
                        kv["version"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kv(k: &str, v: &str, c: i64, m: i64, ver: i64) -> (String, String, i64, i64, i64) {
    (b64(k), b64(v), c, m, ver)
}

#[test]
fn base64_helper_matches_rfc4648() {
    assert_eq!(b64(""), "");
    assert_eq!(b64("f"), "Zg==");
    assert_eq!(b64("fo"), "Zm8=");
    assert_eq!(b64("foo"), "Zm9v");
    assert_eq!(b64("foobar"), "Zm9vYmFy");
}

#[test]
fn put_get_and_json_fields() {
    let s = TestServer::start();
    // A fresh server is at revision 1 and has no keys.
    let v = s.etcdctl(&["get", "foo", "-w", "json"]).json();
    assert_eq!(rev(&v), 1, "{v}");
    assert!(v.get("kvs").is_none(), "{v}");
    assert!(v.get("count").is_none(), "count 0 is omitted: {v}");
    assert!(v["header"]["cluster_id"].as_u64().unwrap() != 0, "{v}");
    assert!(v["header"]["member_id"].as_u64().unwrap() != 0, "{v}");
    assert!(v["header"]["raft_term"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(s.etcdctl(&["get", "foo"]).ok(), "");

    assert_eq!(s.etcdctl(&["put", "foo", "bar"]).ok(), "OK\n");
    let v = s.etcdctl(&["get", "foo", "-w", "json"]).json();
    assert_eq!(rev(&v), 2);
    assert_eq!(kvs(&v), vec![kv("foo", "bar", 2, 2, 1)]);
    assert_eq!(v["count"], 1);
    assert!(v.get("more").is_none(), "{v}");

    assert_eq!(s.etcdctl(&["put", "foo", "baz"]).ok(), "OK\n");
    assert_eq!(s.etcdctl(&["get", "foo"]).ok(), "foo\nbaz\n");
    assert_eq!(
        s.etcdctl(&["get", "foo", "--print-value-only"]).ok(),
        "baz\n"
    );
    let v = s.etcdctl(&["get", "foo", "-w", "json"]).json();
    assert_eq!(rev(&v), 3);
    assert_eq!(kvs(&v), vec![kv("foo", "baz", 2, 3, 2)]);
    // Serializable reads see the same data on a single member.
    assert_eq!(
        s.etcdctl(&["get", "foo", "--consistency=s"]).ok(),
        "foo\nbaz\n"
    );
    // The old value is still readable at its revision.
    let v = s.etcdctl(&["get", "foo", "--rev=2", "-w", "json"]).json();
    assert_eq!(rev(&v), 3, "header.revision is the current revision");
    assert_eq!(kvs(&v), vec![kv("foo", "bar", 2, 2, 1)]);
    // Put reply in JSON carries the new revision.
    let v = s.etcdctl(&["put", "k", "v", "-w", "json"]).json();
    assert_eq!(rev(&v), 4);
    assert!(v.get("prev_kv").is_none(), "{v}");
    // Binary-ish / spaces survive the round trip.
    assert_eq!(s.etcdctl(&["put", "sp ace", "a b  c"]).ok(), "OK\n");
    assert_eq!(s.etcdctl(&["get", "sp ace"]).ok(), "sp ace\na b  c\n");
    // --hex output.
    assert_eq!(s.etcdctl(&["get", "k", "--hex"]).ok(), "\\x6b\n\\x76\n");
}

/// Fills k1..k5 (+ z0) so that KEY, CREATE, MODIFY, VALUE and VERSION orders all differ.
fn fill_sort_fixture(s: &TestServer) {
    for (k, v) in [
        ("k3", "c"), // rev 2
        ("k1", "e"), // rev 3
        ("k5", "a"), // rev 4
        ("k2", "d"), // rev 5
        ("k4", "b"), // rev 6
        ("k3", "c"), // rev 7
        ("k3", "c"), // rev 8
        ("k1", "e"), // rev 9
        ("z0", "z"), // rev 10
    ] {
        assert_eq!(s.etcdctl(&["put", k, v]).ok(), "OK\n");
    }
}

#[test]
fn get_range_sort_limit_flags() {
    let s = TestServer::start();
    fill_sort_fixture(&s);
    let keys = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.push("--keys-only");
        ok_lines(&s, &a)
    };
    let all = ["k1", "k2", "k3", "k4", "k5"];
    assert_eq!(keys(&["k", "--prefix"]), all);
    assert_eq!(keys(&["k", "--prefix", "--sort-by=KEY"]), all);
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=KEY", "--order=ASCEND"]),
        all
    );
    assert_eq!(
        keys(&["k", "--prefix", "--order=DESCEND"]),
        ["k5", "k4", "k3", "k2", "k1"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=CREATE"]),
        ["k3", "k1", "k5", "k2", "k4"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=CREATE", "--order=DESCEND"]),
        ["k4", "k2", "k5", "k1", "k3"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=MODIFY"]),
        ["k5", "k2", "k4", "k3", "k1"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"]),
        ["k1", "k3", "k4", "k2", "k5"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=VALUE"]),
        ["k5", "k4", "k3", "k2", "k1"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=VALUE", "--order=DESCEND"]),
        all
    );
    // Versions: k3=3, k1=2, others 1 (ties: only the distinct head is asserted).
    assert_eq!(
        keys(&[
            "k",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--limit=2"
        ]),
        ["k3", "k1"]
    );
    let asc = keys(&["k", "--prefix", "--sort-by=VERSION", "--order=ASCEND"]);
    assert_eq!(asc.len(), 5);
    assert_eq!(&asc[3..], ["k1", "k3"]);
    // With an explicit order, sorting happens before the limit is applied.
    assert_eq!(
        keys(&[
            "k",
            "--prefix",
            "--sort-by=VALUE",
            "--order=ASCEND",
            "--limit=2"
        ]),
        ["k5", "k4"]
    );
    // etcd quirk: sort_order NONE with a non-KEY target sorts ascending, but the server
    // applies the limit (+1) *before* sorting, then truncates: first 3 keys k1,k2,k3 by key,
    // sorted by value (c,d,e) -> k3,k2.
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=VALUE", "--limit=2"]),
        ["k3", "k2"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--sort-by=CREATE", "--limit=3"]),
        ["k3", "k1", "k2"]
    );
    assert_eq!(
        keys(&["k", "--prefix", "--order=DESCEND", "--limit=1"]),
        ["k5"]
    );

    // --limit: more=true and count is the total.
    let v = s
        .etcdctl(&["get", "k", "--prefix", "--limit=2", "-w", "json"])
        .json();
    assert_eq!(rev(&v), 10);
    assert_eq!(
        kvs(&v),
        vec![kv("k1", "e", 3, 9, 2), kv("k2", "d", 5, 5, 1)]
    );
    assert_eq!(v["more"], true);
    assert_eq!(v["count"], 5);
    let v = s
        .etcdctl(&["get", "k", "--prefix", "--limit=5", "-w", "json"])
        .json();
    assert!(v.get("more").is_none(), "{v}");
    assert_eq!(v["count"], 5);

    // --from-key and explicit [key, range_end).
    assert_eq!(keys(&["k4", "--from-key"]), ["k4", "k5", "z0"]);
    assert_eq!(
        keys(&["", "--from-key"]),
        ["k1", "k2", "k3", "k4", "k5", "z0"]
    );
    assert_eq!(keys(&["k2", "k4"]), ["k2", "k3"]);
    assert_eq!(keys(&["k2", "k2"]), Vec::<String>::new());

    // --keys-only in JSON has no values.
    let v = s
        .etcdctl(&["get", "k2", "--keys-only", "-w", "json"])
        .json();
    assert_eq!(kvs(&v), vec![(b64("k2"), String::new(), 5, 5, 1)]);
    assert!(v["kvs"][0].get("value").is_none(), "{v}");
    // --print-value-only over a range.
    assert_eq!(
        ok_lines(&s, &["get", "k", "--prefix", "--print-value-only"]),
        ["e", "d", "c", "b", "a"]
    );
    // Simple output of a range: key and value lines alternate.
    assert_eq!(s.etcdctl(&["get", "k1", "k3"]).ok(), "k1\ne\nk2\nd\n");

    // --rev on a range sees the past.
    let v = s
        .etcdctl(&["get", "k", "--prefix", "--rev=5", "-w", "json"])
        .json();
    assert_eq!(rev(&v), 10);
    assert_eq!(
        kvs(&v),
        vec![
            kv("k1", "e", 3, 3, 1),
            kv("k2", "d", 5, 5, 1),
            kv("k3", "c", 2, 2, 1),
            kv("k5", "a", 4, 4, 1),
        ]
    );
    assert_eq!(v["count"], 4);
    let v = s.etcdctl(&["get", "k3", "--rev=7", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("k3", "c", 2, 7, 2)]);
    let v = s.etcdctl(&["get", "k4", "--rev=5", "-w", "json"]).json();
    assert!(v.get("kvs").is_none(), "k4 did not exist at rev 5: {v}");
    // The count of a limited range at an old revision.
    let v = s
        .etcdctl(&["get", "k", "--prefix", "--rev=4", "--limit=1", "-w", "json"])
        .json();
    assert_eq!(kvs(&v), vec![kv("k1", "e", 3, 3, 1)]);
    assert_eq!(v["count"], 3);
    assert_eq!(v["more"], true);
}

#[test]
fn put_prev_kv_ignore_value_and_lease_errors() {
    let s = TestServer::start();
    assert_eq!(s.etcdctl(&["put", "a", "1"]).ok(), "OK\n"); // rev 2
    assert_eq!(
        s.etcdctl(&["put", "a", "2", "--prev-kv"]).ok(),
        "OK\na\n1\n"
    ); // rev 3
    let v = s
        .etcdctl(&["put", "a", "3", "--prev-kv", "-w", "json"])
        .json(); // rev 4
    assert_eq!(rev(&v), 4);
    assert_eq!(v["prev_kv"]["key"], b64("a"));
    assert_eq!(v["prev_kv"]["value"], b64("2"));
    assert_eq!(v["prev_kv"]["mod_revision"], 3);
    assert_eq!(v["prev_kv"]["create_revision"], 2);
    assert_eq!(v["prev_kv"]["version"], 2);
    // --prev-kv on a new key prints just OK.
    assert_eq!(s.etcdctl(&["put", "b", "x", "--prev-kv"]).ok(), "OK\n"); // rev 5

    // --ignore-value keeps the value but bumps mod_revision and version.
    assert_eq!(s.etcdctl(&["put", "a", "--ignore-value"]).ok(), "OK\n"); // rev 6
    let v = s.etcdctl(&["get", "a", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("a", "3", 2, 6, 4)]);
    assert_ctl_error(
        &s,
        &["put", "missing", "--ignore-value"],
        "etcdserver: key not found",
    );
    // A lease that does not exist (etcdctl parses --lease as hex).
    assert_ctl_error(
        &s,
        &["put", "c", "v", "--lease=1234"],
        "etcdserver: requested lease not found",
    );
    assert_ctl_error(&s, &["put", "", "v"], "etcdserver: key is not provided");
    // Failed requests did not advance the revision.
    let v = s.etcdctl(&["get", "c", "-w", "json"]).json();
    assert_eq!(rev(&v), 6);
    assert!(v.get("kvs").is_none(), "{v}");
}

#[test]
fn delete_variants() {
    let s = TestServer::start();
    for k in ["a", "b", "p1", "p2", "p3", "q", "r"] {
        s.etcdctl(&["put", k, &format!("v-{k}")]).ok();
    } // revisions 2..=8
    assert_eq!(s.etcdctl(&["del", "a"]).ok(), "1\n"); // rev 9
    assert_eq!(s.etcdctl(&["del", "a"]).ok(), "0\n");
    let v = s.etcdctl(&["del", "nothing", "-w", "json"]).json();
    assert_eq!(rev(&v), 9, "deleting nothing does not bump the revision");
    assert!(v.get("deleted").is_none(), "{v}");

    assert_eq!(s.etcdctl(&["del", "b", "--prev-kv"]).ok(), "1\nb\nv-b\n"); // rev 10
    let v = s
        .etcdctl(&["del", "p", "--prefix", "--prev-kv", "-w", "json"])
        .json(); // rev 11
    assert_eq!(rev(&v), 11, "one delete of 3 keys is one revision");
    assert_eq!(v["deleted"], 3);
    let prev = v["prev_kvs"].as_array().expect("prev_kvs");
    assert_eq!(prev.len(), 3);
    assert_eq!(prev[0]["key"], b64("p1"));
    assert_eq!(prev[2]["value"], b64("v-p3"));
    assert_eq!(prev[1]["mod_revision"], 5);

    assert_eq!(s.etcdctl(&["del", "q", "--from-key"]).ok(), "2\n"); // rev 12
    assert_eq!(s.etcdctl(&["get", "", "--from-key"]).ok(), "");
    let v = s.etcdctl(&["get", "q", "-w", "json"]).json();
    assert_eq!(rev(&v), 12);
    // Re-creating a deleted key starts a new generation: version 1, new create_revision.
    s.etcdctl(&["put", "a", "again"]).ok(); // rev 13
    let v = s.etcdctl(&["get", "a", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("a", "again", 13, 13, 1)]);
    // Range delete [x, y).
    s.etcdctl(&["put", "x1", "1"]).ok(); // 14
    s.etcdctl(&["put", "y", "1"]).ok(); // 15
    assert_eq!(s.etcdctl(&["del", "a", "y"]).ok(), "2\n"); // 16
    assert_eq!(
        ok_lines(&s, &["get", "", "--from-key", "--keys-only"]),
        ["y"]
    );
}

#[test]
fn txn_from_stdin() {
    let s = TestServer::start();
    s.etcdctl(&["put", "a", "x"]).ok(); // rev 2
    s.etcdctl(&["put", "a", "x"]).ok(); // rev 3: a version 2, create 2, mod 3
    let txn = |input: &str| s.etcdctl_stdin(&["txn"], Some(input));

    // value: success branch.
    let out = txn("value(\"a\") = \"x\"\n\nput t1 ok\n\nput t1 fail\n\n");
    assert_eq!(out.ok(), "SUCCESS\n\nOK\n"); // rev 4
                                             // value: failure branch, with a get in the failure ops.
    let out = txn("value(\"a\") = \"nope\"\n\nput t2 ok\n\nput t2 fail\nget t2\n\n");
    assert_eq!(out.ok(), "FAILURE\n\nOK\n\nt2\nfail\n"); // rev 5
                                                         // version / create / mod comparisons, both outcomes.
    for (cmp, want) in [
        ("version(\"a\") = \"2\"", true),
        ("version(\"a\") > \"2\"", false),
        ("version(\"a\") < \"3\"", true),
        ("create(\"a\") = \"2\"", true),
        ("create(\"a\") > \"2\"", false),
        ("mod(\"a\") = \"3\"", true),
        ("mod(\"a\") < \"3\"", false),
        ("value(\"a\") > \"w\"", true),
        ("value(\"a\") != \"x\"", false),
        ("version(\"missing\") = \"0\"", true),
        ("create(\"missing\") = \"0\"", true),
        ("mod(\"missing\") > \"0\"", false),
    ] {
        let out = txn(&format!("{cmp}\n\n\n\n"));
        let want_s = if want { "SUCCESS\n" } else { "FAILURE\n" };
        assert_eq!(out.ok(), want_s, "compare {cmp}");
    }
    // Several compares are ANDed; no ops in either branch does not bump the revision.
    let v = s
        .etcdctl_stdin(
            &["txn", "-w", "json"],
            Some("version(\"a\") = \"2\"\nmod(\"a\") > \"5\"\n\nput t3 ok\n\n\n"),
        )
        .json();
    assert!(
        v.get("succeeded").is_none() || v["succeeded"] == false,
        "{v}"
    );
    assert_eq!(rev(&v), 5);

    // JSON: responses carry their own header with the txn's revision.
    let v = s
        .etcdctl_stdin(
            &["txn", "-w", "json"],
            Some("mod(\"a\") = \"3\"\n\nput t3 ok\nget a\ndel t1\n\n\n"),
        )
        .json(); // rev 6
    assert_eq!(v["succeeded"], true, "{v}");
    assert_eq!(rev(&v), 6);
    let r = v["responses"].as_array().expect("responses");
    assert_eq!(r.len(), 3, "{v}");
    assert_eq!(r[0]["Response"]["ResponsePut"]["header"]["revision"], 6);
    let range = &r[1]["Response"]["ResponseRange"];
    assert_eq!(range["count"], 1);
    assert_eq!(range["kvs"][0]["key"], b64("a"));
    assert_eq!(range["kvs"][0]["mod_revision"], 3);
    assert_eq!(r[2]["Response"]["ResponseDeleteRange"]["deleted"], 1);

    // Everything in one txn shares one revision.
    let v = s.etcdctl(&["get", "t", "--prefix", "-w", "json"]).json();
    assert_eq!(
        kvs(&v),
        vec![kv("t2", "fail", 5, 5, 1), kv("t3", "ok", 6, 6, 1)]
    );
    // No compares (leading blank line): success branch runs.
    let out = txn("\nput t4 v\n\n\n");
    assert_eq!(out.ok(), "SUCCESS\n\nOK\n"); // rev 7
    let out = s.etcdctl_stdin(&["txn"], Some("\nput d 1\nput d 2\n\n\n"));
    assert!(
        out.err()
            .lines()
            .any(|l| l == "Error: etcdserver: duplicate key given in txn request"),
        "{out:#?}"
    );
    let v = s.etcdctl(&["get", "d", "-w", "json"]).json();
    assert_eq!(rev(&v), 7);
}

#[test]
fn compaction_and_revision_errors() {
    let s = TestServer::start();
    for i in 1..=4 {
        s.etcdctl(&["put", "x", &format!("v{i}")]).ok(); // revs 2..=5
    }
    assert_eq!(
        s.etcdctl(&["compaction", "3"]).ok(),
        "compacted revision 3\n"
    );
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    let future = "etcdserver: mvcc: required revision is a future revision";
    assert_ctl_error(&s, &["get", "x", "--rev=2"], compacted);
    assert_ctl_error(&s, &["get", "x", "--rev=1"], compacted);
    // The compaction revision itself is still readable.
    let v = s.etcdctl(&["get", "x", "--rev=3", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("x", "v2", 2, 3, 2)]);
    assert_eq!(rev(&v), 5, "compaction does not change the revision");
    assert_ctl_error(&s, &["get", "x", "--rev=6"], future);
    assert_ctl_error(&s, &["get", "x", "--rev=100"], future);
    // Compacting again at or below the compacted revision, or into the future, fails.
    assert_ctl_error(&s, &["compaction", "3"], compacted);
    assert_ctl_error(&s, &["compaction", "2"], compacted);
    assert_ctl_error(&s, &["compaction", "6"], future);
    assert_eq!(
        s.etcdctl(&["compaction", "--physical", "5"]).ok(),
        "compacted revision 5\n"
    );
    assert_ctl_error(&s, &["get", "x", "--rev=4"], compacted);
    let v = s.etcdctl(&["get", "x", "--rev=5", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("x", "v4", 2, 5, 4)]);
    // Writes continue from the current revision after compaction.
    s.etcdctl(&["put", "x", "v5"]).ok();
    let v = s.etcdctl(&["get", "x", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("x", "v5", 2, 6, 5)]);
}

fn version_ok(v: &str) -> bool {
    v.starts_with("3.4.") || v.starts_with("3.5.")
}

#[test]
fn endpoint_status_health_and_member_list() {
    let s = TestServer::start();
    let v = s.etcdctl(&["endpoint", "status", "-w", "json"]).json();
    let e = &v.as_array().expect("array")[0];
    assert_eq!(e["Endpoint"], s.endpoint().as_str());
    let st = &e["Status"];
    let member_id = st["header"]["member_id"].as_u64().expect("member_id");
    assert_ne!(member_id, 0);
    assert_eq!(st["header"]["revision"], 1);
    assert!(version_ok(st["version"].as_str().unwrap_or("")), "{st}");
    assert!(st["dbSize"].as_i64().unwrap_or(0) > 0, "{st}");
    assert_eq!(st["leader"].as_u64(), Some(member_id), "{st}");
    assert!(st["raftIndex"].as_u64().unwrap_or(0) > 0, "{st}");
    assert!(st["raftTerm"].as_u64().unwrap_or(0) >= 1, "{st}");
    assert_eq!(st["raftTerm"], st["header"]["raft_term"], "{st}");

    // Simple form: endpoint, hex member id, version, size, is leader, is learner, term, index, ...
    let out = s.etcdctl(&["endpoint", "status"]);
    let line = out.ok().trim_end().to_string();
    let f: Vec<&str> = line.split(", ").collect();
    assert!(f.len() >= 8, "{line}");
    assert_eq!(f[0], s.endpoint());
    assert_eq!(f[1], format!("{member_id:x}"));
    assert!(version_ok(f[2]), "{line}");
    assert_eq!(f[4], "true", "{line}");
    assert_eq!(f[5], "false", "{line}");

    // raftIndex grows with writes.
    let idx0 = st["raftIndex"].as_u64().unwrap();
    s.etcdctl(&["put", "a", "1"]).ok();
    let v = s.etcdctl(&["endpoint", "status", "-w", "json"]).json();
    let st = &v[0]["Status"];
    assert!(st["raftIndex"].as_u64().unwrap() > idx0, "{st}");
    assert_eq!(st["header"]["revision"], 2);

    // endpoint health: etcdctl 3.4 prints the result on stderr, 3.5 on stdout.
    let out = s.etcdctl(&["endpoint", "health"]);
    assert!(out.success(), "{out:#?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    let want = format!(
        "{} is healthy: successfully committed proposal: took = ",
        s.endpoint()
    );
    assert!(all.lines().any(|l| l.starts_with(&want)), "{out:#?}");
    let v = s.etcdctl(&["endpoint", "health", "-w", "json"]).json();
    assert_eq!(v[0]["endpoint"], s.endpoint().as_str());
    assert_eq!(v[0]["health"], true);

    // member list.
    let v = s.etcdctl(&["member", "list", "-w", "json"]).json();
    assert_eq!(v["header"]["member_id"].as_u64(), Some(member_id));
    let m = v["members"].as_array().expect("members");
    assert_eq!(m.len(), 1, "{v}");
    assert_eq!(m[0]["ID"].as_u64(), Some(member_id));
    assert_eq!(m[0]["name"], "n1");
    assert_eq!(m[0]["peerURLs"], serde_json::json!([s.peer_url()]));
    assert_eq!(m[0]["clientURLs"], serde_json::json!([s.client_url()]));
    assert!(m[0].get("isLearner").is_none() || m[0]["isLearner"] == false);
    let out = s.etcdctl(&["member", "list"]);
    assert_eq!(
        out.ok(),
        format!(
            "{member_id:x}, started, n1, {}, {}, false\n",
            s.peer_url(),
            s.client_url()
        )
    );
}

#[test]
fn data_survives_graceful_restart() {
    let mut s = TestServer::start();
    s.etcdctl(&["put", "a", "1"]).ok(); // 2
    s.etcdctl(&["put", "b", "2"]).ok(); // 3
    s.etcdctl(&["put", "a", "3"]).ok(); // 4
    s.etcdctl(&["del", "b"]).ok(); // 5
    let v = s.etcdctl(&["endpoint", "status", "-w", "json"]).json();
    let id = v[0]["Status"]["header"]["member_id"].as_u64().unwrap();
    let cluster = v[0]["Status"]["header"]["cluster_id"].as_u64().unwrap();
    s.restart();
    let v = s.etcdctl(&["get", "", "--from-key", "-w", "json"]).json();
    assert_eq!(rev(&v), 5);
    assert_eq!(kvs(&v), vec![kv("a", "3", 2, 4, 2)]);
    assert_eq!(v["header"]["member_id"].as_u64(), Some(id));
    assert_eq!(v["header"]["cluster_id"].as_u64(), Some(cluster));
    let v = s.etcdctl(&["get", "b", "--rev=3", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("b", "2", 3, 3, 1)]);
    s.etcdctl(&["put", "c", "1"]).ok();
    let v = s.etcdctl(&["get", "c", "-w", "json"]).json();
    assert_eq!(kvs(&v), vec![kv("c", "1", 6, 6, 1)]);
}

/// etcdctl 3.4 sends a scheme-prefixed endpoint as the HTTP/2 `:authority` when the
/// endpoint is given as a URL (and for every `--cluster` command); etcd accepts it.
#[test]
fn url_endpoints_and_cluster_commands() {
    let s = TestServer::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", s.client_url()))
            .arg("--command-timeout=10s")
            .args(args)
            .output()
            .expect("etcdctl runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let status = run(&["endpoint", "status"]);
    assert!(
        status.starts_with(&format!("{}, ", s.client_url())),
        "{status}"
    );
    let cluster = run(&["endpoint", "status", "--cluster"]);
    assert!(cluster.contains(&s.client_url()), "{cluster}");
    let health = run(&["endpoint", "health", "--cluster"]);
    assert!(health.contains("is healthy"), "{health}");
    run(&["put", "k", "v"]);
    assert_eq!(run(&["get", "k", "--print-value-only"]).trim(), "v");
}
