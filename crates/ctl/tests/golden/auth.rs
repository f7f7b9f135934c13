//! Golden cases for `user *`, `role *`, `auth enable|disable` and for commands run as a
//! user once auth is on (a refused login, a permission denied), on a cluster of their own
//! (auth changes what every later command sees).
//!
//! Invariant: every command that changes auth state runs through `check_undo`, so etcdctl
//! and oxcdctl start from the same state; the test ends with auth disabled.

use super::{oxcdctl, run, start, Golden, Mask};
use oxcd_testkit::{etcdctl_bin, serial, ServerKind};

fn auth_suite(kind: ServerKind) {
    let _g = serial();
    let Some(cl) = start("golden-auth", kind, 1) else {
        return;
    };
    let ep = cl.members[0].endpoint();
    let mut g = Golden::new(&ep);
    use Mask::*;

    // No root user yet: enabling fails the same way.
    g.check(&["auth", "enable"], Exact);

    // Users.
    g.check_undo(
        &["user", "add", "root", "--new-user-password=rootpw"],
        None,
        Exact,
        &[&["user", "delete", "root"]],
    );
    g.check_undo(
        &["user", "add", "alice:apw"],
        None,
        Exact,
        &[&["user", "delete", "alice"]],
    );
    g.check_undo(
        &["user", "add", "bob", "--interactive=false"],
        Some("bpw\n"),
        Exact,
        &[&["user", "delete", "bob"]],
    );
    g.check_undo(
        &["user", "add", "carol", "--no-password"],
        None,
        Exact,
        &[&["user", "delete", "carol"]],
    );
    g.check(&["user", "add", "alice:other"], Exact);
    g.check(&["user", "add", ":pw"], Exact);
    g.check(&["user", "add"], Exact);
    g.check(&["user", "list"], Exact);
    g.check(&["user", "list", "-w", "json"], Exact);
    g.check(&["user", "get", "alice"], Exact);
    g.check(&["user", "get", "nosuch"], Exact);
    g.check(&["user", "delete", "nosuch"], Exact);
    g.check_with(
        &["user", "passwd", "alice", "--interactive=false"],
        Some("apw\n"),
        Exact,
        None,
    );

    // Roles and permissions.
    g.check_undo(
        &["role", "add", "r1"],
        None,
        Exact,
        &[&["role", "delete", "r1"]],
    );
    g.check(&["role", "add", "r1"], Exact);
    g.check(&["role", "add"], Exact);
    type Grant<'a> = (&'a [&'a str], &'a [&'a str]);
    let grants: [Grant; 4] = [
        (
            &["role", "grant-permission", "r1", "read", "k1"],
            &["role", "revoke-permission", "r1", "k1"],
        ),
        (
            &["role", "grant-permission", "r1", "write", "p/", "--prefix"],
            &["role", "revoke-permission", "r1", "p/", "--prefix"],
        ),
        (
            &[
                "role",
                "grant-permission",
                "r1",
                "readwrite",
                "f",
                "--from-key",
            ],
            &["role", "revoke-permission", "r1", "f", "--from-key"],
        ),
        (
            &["role", "grant-permission", "r1", "readwrite", "a", "c"],
            &["role", "revoke-permission", "r1", "a", "c"],
        ),
    ];
    for (grant, revoke) in grants {
        g.check_undo(grant, None, Exact, &[revoke]);
    }
    g.check(&["role", "get", "r1"], Exact);
    for w in ["json", "fields", "protobuf", "table"] {
        g.check(&["role", "get", "r1", "-w", w], Exact);
        g.check(&["role", "list", "-w", w], Exact);
        g.check(&["user", "list", "-w", w], Exact);
        g.check(&["user", "get", "alice", "-w", w], Exact);
    }
    g.check_undo(
        &["role", "add", "r2", "-w", "fields"],
        None,
        Exact,
        &[&["role", "delete", "r2"]],
    );
    g.check_undo(
        &["role", "delete", "r2", "-w", "json"],
        None,
        Exact,
        &[&["role", "add", "r2"]],
    );
    g.check(&["role", "list"], Exact);
    g.check(&["role", "get", "nosuch"], Exact);
    g.check(&["role", "delete", "nosuch"], Exact);
    g.check(&["role", "grant-permission", "r1", "bogus", "k"], Exact);
    g.check(
        &[
            "role",
            "grant-permission",
            "r1",
            "read",
            "k",
            "--prefix",
            "--from-key",
        ],
        Exact,
    );
    g.check(
        &[
            "role",
            "grant-permission",
            "r1",
            "read",
            "a",
            "b",
            "--prefix",
        ],
        Exact,
    );
    g.check(&["role", "grant-permission", "r1", "read"], Exact);
    g.check(&["role", "revoke-permission", "r1", "nokey"], Exact);
    // Revoking each kind of range, and putting it back for the oxcdctl run.
    for (grant, revoke) in grants {
        g.check_undo(revoke, None, Exact, &[grant]);
        assert_eq!(run(&etcdctl_bin(), &ep, grant, None).code, 0, "{grant:?}");
    }
    g.check_undo(
        &["user", "grant-role", "alice", "r1"],
        None,
        Exact,
        &[&["user", "revoke-role", "alice", "r1"]],
    );
    g.check(&["user", "grant-role", "alice", "nosuch"], Exact);
    g.check(&["user", "get", "alice"], Exact);
    g.check(&["user", "get", "alice", "--detail"], Exact);
    g.check(&["user", "get", "alice", "-w", "json"], Exact);
    g.check_undo(
        &["user", "revoke-role", "alice", "r1"],
        None,
        Exact,
        &[&["user", "grant-role", "alice", "r1"]],
    );
    g.check(&["user", "revoke-role", "alice", "r1"], Exact);
    let r = run(
        &etcdctl_bin(),
        &ep,
        &["user", "grant-role", "alice", "r1"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Enabling with a root user: etcdctl adds the root role and grants it first.
    let root: &[&str] = &["--user", "root:rootpw"];
    let with = |extra: &[&str]| -> Vec<String> {
        root.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let disable = with(&["auth", "disable"]);
    let disable: Vec<&str> = disable.iter().map(String::as_str).collect();
    g.check_undo(
        &["auth", "enable"],
        None,
        Exact,
        &[
            &disable,
            &["user", "revoke-role", "root", "root"],
            &["role", "delete", "root"],
        ],
    );
    assert_eq!(
        run(
            &oxcdctl(),
            &ep,
            &["role", "list", "--user", "root:rootpw"],
            None
        )
        .stdout,
        "r1\nroot\n",
        "auth enable adds the root role"
    );

    // Commands under auth.
    g.check(&["get", "k1"], Exact);
    g.check(&["put", "k1", "v", "--user", "root:rootpw"], Numbers);
    g.check(&["get", "k1", "--user", "root:rootpw"], Exact);
    g.check(
        &["get", "k1", "--user", "root", "--password", "rootpw"],
        Exact,
    );
    g.check(&["get", "k1", "--user", "root:wrong"], Exact);
    g.check(&["get", "k1", "--user", "nosuch:pw"], Exact);
    g.check(&["get", "k1", "--user", "alice:apw"], Exact);
    g.check(&["put", "k1", "w", "--user", "alice:apw"], Exact);
    g.check(&["get", "zzz", "--user", "alice:apw"], Exact);
    g.check(&["put", "p/1", "x", "--user", "alice:apw"], Numbers);
    g.check(&["user", "list", "--user", "alice:apw"], Exact);
    g.check(&["user", "list", "--user", "root:rootpw"], Exact);
    g.check(&["role", "get", "r1", "--user", "root:rootpw"], Exact);
    g.check(&["auth", "disable"], Exact);
    g.check(&["auth", "disable", "--user", "alice:apw"], Exact);
    g.check_undo(
        &["auth", "disable", "--user", "root:rootpw"],
        None,
        Exact,
        &[&["auth", "enable"]],
    );
    g.check(&["get", "k1"], Exact);
    drop(cl);
    g.finish();
}

#[test]
fn auth_golden_against_etcd() {
    auth_suite(ServerKind::Etcd);
}

#[test]
fn auth_golden_against_oxcd() {
    auth_suite(ServerKind::Oxcd);
}
