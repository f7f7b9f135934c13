//! Backup and restore: `etcdctl snapshot save` from oxcd, `oxcdutl snapshot status`, and
//! `oxcdutl snapshot restore` into a new member's data dir that then serves every key at
//! a bumped, compacted revision (so an old watcher gets a compaction, not stale data); a
//! corrupt or truncated file is refused and leaves nothing behind. oxcd only: etcd 3.4's
//! snapshots are bbolt files that `oxcdutl` does not read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oxcd_api::etcdserverpb::watch_client::WatchClient;
use oxcd_api::etcdserverpb::watch_request::RequestUnion;
use oxcd_api::etcdserverpb::{WatchCreateRequest, WatchRequest};
use serde_json::Value;

use crate::common::{channel, oxcd_only, run_with_timeout, CmdOutput, TestServer};

fn oxcdutl(args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxcdutl"));
    cmd.args(args);
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

/// `oxcdutl snapshot restore FILE` into `data_dir` for member `name` of `initial_cluster`,
/// advertising `peer_url` (and `token` when given).
fn restore(
    file: &Path,
    data_dir: &Path,
    name: &str,
    initial_cluster: &str,
    peer_url: &str,
    token: Option<&str>,
) -> CmdOutput {
    let mut args = vec![
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--name",
        name,
        "--initial-cluster",
        initial_cluster,
        "--initial-advertise-peer-urls",
        peer_url,
    ];
    if let Some(t) = token {
        args.extend(["--initial-cluster-token", t]);
    }
    oxcdutl(&args)
}

fn json(s: &oxcd_testkit::TestServer, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-w", "json"]);
    serde_json::from_str(s.etcdctl(&a).ok()).expect("etcdctl json")
}

fn copy_with(src: &Path, dst: &Path, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = std::fs::read(src).expect("read snapshot");
    f(&mut b);
    std::fs::write(dst, b).expect("write copy");
    dst.to_path_buf()
}

#[test]
fn save_status_restore_round_trip() {
    oxcd_only("snapshot_restore::save_status_restore_round_trip");
    let s = TestServer::start();
    for i in 0..20 {
        s.etcdctl(&["put", &format!("k{i}"), &format!("v{i}")]).ok();
    }
    s.etcdctl(&["put", "k0", "v0b"]).ok();
    s.etcdctl(&["del", "k19"]).ok();
    let rev = json(&s, &["get", "k0"])["header"]["revision"]
        .as_i64()
        .unwrap();
    let old_member = json(&s, &["member", "list"])["members"][0]["ID"].clone();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let out = s.etcdctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.success(), "{out:#?}");

    // Status: the file's revision and rows, in etcdctl's JSON shape.
    let st: Value = serde_json::from_str(
        oxcdutl(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"]).ok(),
    )
    .expect("status json");
    assert_eq!(st["revision"].as_i64(), Some(rev), "{st}");
    assert!(st["totalKey"].as_u64().unwrap() >= 21, "{st}");
    assert_eq!(
        st["totalSize"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len()),
        "{st}"
    );
    let table = oxcdutl(&["snapshot", "status", file.to_str().unwrap(), "-w", "table"]);
    assert!(table.ok().contains("TOTAL KEYS"), "{table:#?}");

    // A flipped byte or a truncated copy is refused, and a refused restore leaves no dir.
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    let flipped = copy_with(&file, &dir.path().join("flipped.db"), |b| {
        b[len / 2] ^= 0x40
    });
    let short = copy_with(&file, &dir.path().join("short.db"), |b| {
        b.truncate(len - 100)
    });
    for bad in [&flipped, &short] {
        let out = oxcdutl(&["snapshot", "status", bad.to_str().unwrap()]);
        assert!(!out.success(), "{} accepted: {out:#?}", bad.display());
        assert!(
            out.stderr.contains("corrupt") || out.stderr.contains("sha256"),
            "{out:#?}"
        );
        let target = dir.path().join("from-bad");
        let out = restore(
            bad,
            &target,
            "n1",
            "n1=http://127.0.0.1:1",
            "http://127.0.0.1:1",
            None,
        );
        assert!(!out.success(), "{out:#?}");
        assert!(
            !target.exists(),
            "a refused restore left {}",
            target.display()
        );
    }

    // Restore into a new member and start it with the same flags.
    let mut b = oxcd_testkit::TestServer::new_stopped(Path::new(env!("CARGO_BIN_EXE_oxcd")), &[]);
    let peer = b.peer_url();
    let out = restore(&file, &b.data_dir, "n1", &format!("n1={peer}"), &peer, None);
    assert!(out.success(), "{out:#?}");
    // The data dir exists now: restoring again is refused.
    let again = restore(&file, &b.data_dir, "n1", &format!("n1={peer}"), &peer, None);
    assert!(again.stderr.contains("exists"), "{again:#?}");
    b.spawn_and_wait();

    let got = b.etcdctl(&["get", "k", "--prefix"]).ok().to_string();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 38, "19 keys and values: {got}");
    assert!(got.contains("k0\nv0b\n") && !got.contains("k19"), "{got}");
    let new_rev = json(&b, &["get", "k0"])["header"]["revision"]
        .as_i64()
        .unwrap();
    assert!(
        new_rev >= rev + 1_000_000_000,
        "revision {new_rev} after restoring {rev}"
    );
    let old = b.etcdctl(&["get", "k0", &format!("--rev={rev}")]);
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:#?}"
    );
    b.etcdctl(&["put", "after", "restore"]).ok();
    let after = json(&b, &["get", "after"]);
    assert!(
        after["kvs"][0]["mod_revision"].as_i64().unwrap() > new_rev,
        "{after}"
    );
    // A fresh member id, not the old cluster's.
    let members = json(&b, &["member", "list"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    assert_ne!(members["members"][0]["ID"], old_member, "{members}");

    // A watcher that resumes from the old cluster's next revision gets a compaction.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let compact = rt.block_on(async {
        let ch = channel(&b).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k0".to_vec(),
                start_revision: rev + 1,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut w = WatchClient::new(ch)
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), w.message())
                .await
                .expect("watch response in time")
                .unwrap()
                .expect("a watch response");
            if m.canceled || m.compact_revision != 0 {
                break m.compact_revision;
            }
        }
    });
    assert!(compact >= rev + 1_000_000_000, "compact revision {compact}");
}

/// Save under write load, restore into three new members, start them as a new cluster:
/// exactly the writes acknowledged at or below the snapshot's revision are there, on every
/// member, at a bumped revision, with fresh member ids.
#[test]
fn restore_into_a_new_three_member_cluster_from_a_snapshot_taken_under_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crate::cluster_harness::{etcdctl_at, serial, Cluster, Opts, START_WAIT};
    use oxcd_api::etcdserverpb::kv_client::KvClient;
    use oxcd_api::etcdserverpb::PutRequest;

    oxcd_only(
        "snapshot_restore::restore_into_a_new_three_member_cluster_from_a_snapshot_taken_under_load",
    );
    let _g = serial();
    let s = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let url = s.client_url();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ch = tonic::transport::Endpoint::from_shared(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut kv = KvClient::new(ch);
                let mut acked = Vec::new();
                for i in 0..20_000 {
                    if stop.load(Ordering::Acquire) && i > 50 {
                        break;
                    }
                    let key = format!("w/{i:06}");
                    if let Ok(r) = kv
                        .put(PutRequest {
                            key: key.clone().into_bytes(),
                            value: format!("v{i}").into_bytes(),
                            ..Default::default()
                        })
                        .await
                    {
                        acked.push((key, r.into_inner().header.unwrap().revision));
                    }
                }
                acked
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("under-load.db");
    let out = s.etcdctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.success(), "{out:#?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let acked = writer.join().expect("writer");
    let st: Value = serde_json::from_str(
        oxcdutl(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"]).ok(),
    )
    .unwrap();
    let snap_rev = st["revision"].as_i64().unwrap();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, r)| *r <= snap_rev)
        .map(|(k, _)| k)
        .collect();
    assert!(
        !before.is_empty() && before.len() < acked.len(),
        "the snapshot was not taken under load ({} of {} writes before it)",
        before.len(),
        acked.len()
    );

    let mut c = Cluster::prepare("restore3", Opts::new(3));
    for m in &c.members {
        let out = restore(
            &file,
            &m.data_dir,
            &m.name,
            &m.initial_cluster,
            &m.adv_peer_url(),
            Some(&m.token),
        );
        assert!(out.success(), "{out:#?}");
    }
    for i in 0..3 {
        c.spawn(i);
    }
    c.wait_leader(&[0, 1, 2], START_WAIT);
    for m in &c.members {
        let eps = vec![m.client_url()];
        let out = etcdctl_at(
            &eps,
            &["get", "w/", "--prefix", "--keys-only", "--consistency=s"],
            None,
        );
        let keys: Vec<&str> = out.ok().lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            keys.len(),
            before.len(),
            "{}: {} keys restored, {} acknowledged at or below revision {snap_rev}",
            m.name,
            keys.len(),
            before.len()
        );
        assert!(
            keys.iter().zip(&before).all(|(a, b)| *a == b.as_str()),
            "{}",
            m.name
        );
        let v: Value =
            serde_json::from_str(etcdctl_at(&eps, &["get", "w/000000", "-w", "json"], None).ok())
                .unwrap();
        assert!(v["header"]["revision"].as_i64().unwrap() >= snap_rev + 1_000_000_000);
    }
    let members: Value = serde_json::from_str(
        etcdctl_at(
            &[c.members[0].client_url()],
            &["member", "list", "-w", "json"],
            None,
        )
        .ok(),
    )
    .unwrap();
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
}
