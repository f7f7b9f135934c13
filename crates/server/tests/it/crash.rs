//! Durability: acknowledged operations (puts, overwrites, deletes, txns, leased keys and
//! lease revokes) survive `kill -9` and restart, compared with a replay of what was
//! acknowledged (see `crash_support`); graceful stop is prompt; (oxcd-only) they also
//! survive a simulated power loss, which drops whatever the WAL had not fsynced; a
//! torn/garbled WAL tail is tolerated and mid-log corruption (garbled or zeroed) is refused.
//!
//! The power-loss test needs the `crash-journal` build of oxcd in `OXCD_CRASH_BIN` and fails
//! without it (unless `OXCD_ALLOW_SKIP=1` outside CI). With the `unsafe-no-fsync` build
//! instead it must fail: scripts/fsync_mutation.sh checks both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{describe_status, etcd_client, oxcd_only, TestServer};
use crate::crash_support::{kind_counts, resolve_and_verify, run_writer, Rng, WriterModel};
use etcd_client::GetOptions;
use oxcd_testkit::power_loss::{crash_bin, lose_unsynced_wal};

const WRITERS: usize = 8;
const ROUNDS: usize = 5;
/// Upper bound on how long writers run in one round.
const ROUND_WRITE_LIMIT: Duration = Duration::from_secs(3);
/// Operation kinds every crash run must have acknowledged at least once.
const REQUIRED_KINDS: [&str; 7] = [
    "put",
    "overwrite",
    "leased put",
    "delete",
    "txn (success)",
    "txn (failure)",
    "revoke",
];

/// How the server is crashed between rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// `kill -9`: the page cache survives, so unsynced writes survive too.
    Kill9,
    /// `kill -9`, then the WAL reverts to what was fsynced (a power loss).
    PowerLoss,
}

/// Maintenance running while the server is killed (issue 14: kill -9 during defrag,
/// compaction and snapshot save).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Maint {
    Defrag,
    Compact,
    Snapshot,
}

const MAINTS: [Maint; 3] = [Maint::Defrag, Maint::Compact, Maint::Snapshot];

/// Runs `m` over and over until `deadline` (or until the server is gone); returns how many
/// runs completed.
async fn maintenance_loop(mut c: etcd_client::Client, m: Maint, deadline: Instant) -> usize {
    let mut done = 0;
    while Instant::now() < deadline {
        let ok = match m {
            Maint::Defrag => c.defragment().await.is_ok(),
            Maint::Compact => match c.get("rev-probe", None).await {
                Ok(r) => {
                    let rev = r.header().map_or(1, |h| h.revision());
                    // The same revision twice (no write in between) is "already compacted".
                    match c.compact(rev, None).await {
                        Ok(_) => true,
                        Err(e) => e.to_string().contains("compacted"),
                    }
                }
                Err(_) => false,
            },
            Maint::Snapshot => match c.snapshot().await {
                Ok(mut st) => {
                    let mut bytes = 0;
                    let mut ok = true;
                    loop {
                        match st.message().await {
                            Ok(Some(r)) => bytes += r.blob().len(),
                            Ok(None) => break,
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    ok && bytes > 0
                }
                Err(_) => false,
            },
        };
        if !ok {
            break;
        }
        done += 1;
    }
    done
}

/// Rounds of concurrent writers killed mid-stream; after each restart the server's keys and
/// leases must equal the replay of the acknowledged operations.
async fn crash_rounds(s: &mut oxcd_testkit::TestServer, crash: Crash) {
    crash_rounds_with(s, crash, false).await
}

/// [`crash_rounds`], with `maint`: each round also runs one maintenance operation in a loop
/// (defrag, compaction, snapshot save in turn) when the kill lands.
async fn crash_rounds_with(s: &mut oxcd_testkit::TestServer, crash: Crash, maint: bool) {
    let mut maint_runs: HashMap<&'static str, usize> = HashMap::new();
    let mut rng = Rng::from_time();
    let mut models: Vec<WriterModel> = (0..WRITERS).map(WriterModel::new).collect();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.range(300, 1500));
        let client = oxcd_testkit::server::etcd_client(s).await;
        let deadline = Instant::now() + ROUND_WRITE_LIMIT;
        let handles: Vec<_> = std::mem::take(&mut models)
            .into_iter()
            .map(|m| {
                let seed = Rng(rng.next() | 1);
                tokio::spawn(run_writer(m, client.clone(), round, deadline, seed))
            })
            .collect();
        let m = MAINTS[round % MAINTS.len()];
        let maint_task = maint.then(|| tokio::spawn(maintenance_loop(client.clone(), m, deadline)));
        tokio::time::sleep(kill_after).await;
        // Kill mid-stream (blocking call; fine on the multi-thread runtime).
        tokio::task::block_in_place(|| s.kill9());
        for h in handles {
            let m = tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("writer did not stop in time")
                .expect("writer panicked (a response contradicted the model)");
            models.push(m);
        }
        if let Some(t) = maint_task {
            let n = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("maintenance did not stop in time")
                .expect("maintenance task panicked");
            *maint_runs.entry(maint_name(m)).or_default() += n;
        }
        let acked: usize = models.iter().map(|m| m.acked).sum();
        eprintln!("round {round}: killed after {kill_after:?}; {acked} acknowledged ops so far");
        if crash == Crash::PowerLoss {
            let summary = lose_unsynced_wal(&s.data_dir).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("round {round}: {summary}");
        }
        tokio::task::block_in_place(|| s.spawn_and_wait());
        let mut c = oxcd_testkit::server::etcd_client(s).await;
        let summary = resolve_and_verify(&mut c, &mut models).await;
        eprintln!("round {round}: {summary}");
    }
    if maint {
        eprintln!("maintenance runs completed before the kills: {maint_runs:?}");
        for m in MAINTS {
            assert!(
                maint_runs.get(maint_name(m)).copied().unwrap_or(0) > 0,
                "no {m:?} completed: the kill never landed during that maintenance ({maint_runs:?})"
            );
        }
    }
    let kinds = kind_counts(&models);
    eprintln!("acknowledged ops by kind: {kinds:?}");
    for k in REQUIRED_KINDS {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "no acknowledged {k:?} op: the run checked too little ({kinds:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ops_survive_kill9() {
    let mut s = TestServer::start();
    crash_rounds(&mut s, Crash::Kill9).await;
}

fn maint_name(m: Maint) -> &'static str {
    match m {
        Maint::Defrag => "defrag",
        Maint::Compact => "compact",
        Maint::Snapshot => "snapshot",
    }
}

/// kill -9 while defragmenting, compacting or streaming a snapshot (in turn, under writers):
/// nothing acknowledged is lost and the server starts every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ops_survive_kill9_during_defrag_compaction_and_snapshot() {
    let mut s = TestServer::start();
    crash_rounds_with(&mut s, Crash::Kill9, true).await;
}

/// oxcd-only: the `crash-journal` build records what the WAL fsynced; after each `kill -9`
/// everything else is dropped, as a power loss would. Turns red when the fsync is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ops_survive_power_loss() {
    const TEST: &str = "acknowledged_ops_survive_power_loss";
    oxcd_only(&format!("crash::{TEST}"));
    let Some(bin) = crash_bin(TEST) else { return };
    eprintln!("crash-journal build: {}", bin.display());
    let mut s = oxcd_testkit::TestServer::new_stopped_exact(&bin, &[]);
    s.spawn_and_wait();
    crash_rounds(&mut s, Crash::PowerLoss).await;
}

/// An acknowledged put: key, value, revision from the response header.
type Acked = (String, String, i64);

/// Checks that every acknowledged put is present with the revision it was acknowledged at.
async fn verify_acked(s: &TestServer, acked: &[Acked], rounds: usize) {
    let mut c = etcd_client(s).await;
    let mut found: HashMap<String, (String, i64, i64, i64)> = HashMap::new();
    for r in 0..rounds {
        let resp = c
            .get(format!("r{r}/"), Some(GetOptions::new().with_prefix()))
            .await
            .expect("range after restart");
        for kv in resp.kvs() {
            found.insert(
                kv.key_str().unwrap().to_string(),
                (
                    kv.value_str().unwrap().to_string(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                ),
            );
        }
    }
    let mut missing = 0;
    for (k, v, rev) in acked {
        match found.get(k) {
            None => {
                missing += 1;
                if missing <= 10 {
                    eprintln!("acknowledged key {k} (rev {rev}) is missing after restart");
                }
            }
            Some(got) => assert_eq!(
                got,
                &(v.clone(), *rev, *rev, 1),
                "key {k}: (value, create, mod, version) after restart"
            ),
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged puts lost",
        acked.len()
    );
    let head = c.get("rev-probe", None).await.unwrap();
    let head = head.header().unwrap().revision();
    let newest = acked.iter().map(|a| a.2).max().unwrap_or(0);
    assert!(head >= newest, "revision went back: {head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_promptly_and_keeps_data() {
    let mut s = TestServer::start();
    let mut c = etcd_client(&s).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let k = format!("r0/t/{i:03}");
        let r = c.put(k.clone(), format!("v{i}"), None).await.unwrap();
        acked.push((k, format!("v{i}"), r.header().unwrap().revision()));
    }
    drop(c);
    let st = tokio::task::block_in_place(|| s.stop());
    let st = st.expect("server did not exit within the SIGTERM timeout");
    eprintln!("graceful stop: {}", describe_status(&st));
    tokio::task::block_in_place(|| s.spawn_and_wait());
    verify_acked(&s, &acked, 1).await;
}

// ---------- oxcd-only WAL damage tests ----------

/// The newest raft log file under `<data-dir>/member/wal/` (`*.raftlog` or `*.wal`).
fn newest_log_file(data_dir: &Path) -> Option<PathBuf> {
    let dir = data_dir.join("member").join("wal");
    let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("raftlog") | Some("wal")
            )
        })
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((meta.modified().ok()?, name, p))
        })
        .collect();
    files.sort();
    files.pop().map(|f| f.2)
}

/// Length up to and including the last non-zero byte (files may be zero-preallocated).
fn used_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Writes `n` keys `w/NNNN` one by one and returns them as acknowledged puts.
async fn write_keys(s: &TestServer, prefix: &str, n: usize) -> Vec<Acked> {
    let mut c = etcd_client(s).await;
    let mut acked = Vec::new();
    for i in 0..n {
        let k = format!("{prefix}{i:04}");
        let v = format!("value-{i}-{}", "y".repeat(i % 50));
        let r = c.put(k.clone(), v.clone(), None).await.expect("put");
        acked.push((k, v, r.header().unwrap().revision()));
    }
    acked
}

/// Starts oxcd (these tests are oxcd-only), writes data, kills it and returns (server, acked,
/// newest log file). Finding no WAL file is a failure: the damage tests would otherwise check
/// nothing.
async fn prepare_damaged_log_test(test: &str, n: usize) -> (TestServer, Vec<Acked>, PathBuf) {
    oxcd_only(&format!("crash::{test}"));
    let mut s = TestServer::start();
    let acked = write_keys(&s, "r0/", n).await;
    tokio::task::block_in_place(|| s.kill9());
    let file = newest_log_file(&s.data_dir).unwrap_or_else(|| {
        panic!(
            "{test}: no *.raftlog / *.wal file under {}/member/wal",
            s.data_dir.display()
        )
    });
    (s, acked, file)
}

/// Spawns the (damaged) server and requires it to exit non-zero saying the raft log is
/// corrupt.
fn assert_refuses_to_start(s: &mut TestServer) {
    let before = s.log().len();
    s.spawn();
    let st = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(20)));
    let log = s.log()[before..].to_string();
    let st = st.unwrap_or_else(|| {
        panic!("server kept running with a corrupted log (expected it to refuse)\n{log}")
    });
    assert!(!st.success(), "server exited 0 on a corrupted log\n{log}");
    eprintln!("server refused to start ({}):\n{log}", describe_status(&st));
    assert!(
        log.contains("raft log is corrupt"),
        "exit ({}) without the \"raft log is corrupt\" message:\n{log}",
        describe_status(&st)
    );
}

/// Offsets of the frames of a WAL segment, by its format (crates/storage/src/wal.rs:
/// `[len u32 LE][crc32 u32 LE][payload][zero padding to 8 bytes]`, a zero header ends it).
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push(off);
        off += (8 + len).div_ceil(8) * 8;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_wal_tail_is_tolerated() {
    let (mut s, acked, file) =
        prepare_damaged_log_test("garbage_after_wal_tail_is_tolerated", 60).await;
    let mut bytes = std::fs::read(&file).unwrap();
    let used = used_len(&bytes);
    assert!(used > 0, "{} is empty", file.display());
    // A torn write: junk right after the last record.
    let mut rng = Rng::from_time();
    let junk: Vec<u8> = (0..4096).map(|_| (rng.next() >> 24) as u8 | 1).collect();
    bytes.truncate(used);
    bytes.extend_from_slice(&junk);
    std::fs::write(&file, &bytes).unwrap();
    eprintln!(
        "wrote 4096 junk bytes after offset {used} of {}",
        file.display()
    );
    tokio::task::block_in_place(|| s.spawn_and_wait());
    verify_acked(&s, &acked, 1).await;
    // And the server keeps working.
    let more = write_keys(&s, "r1/", 5).await;
    assert!(more[0].2 > acked.last().unwrap().2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_wal_tail_is_tolerated() {
    let (mut s, acked, file) =
        prepare_damaged_log_test("truncated_wal_tail_is_tolerated", 60).await;
    let bytes = std::fs::read(&file).unwrap();
    let used = used_len(&bytes);
    assert!(used > 16, "{} is too small", file.display());
    // Cut into the last record. Only the final put may be lost with it; all earlier
    // acknowledged puts were committed by later records or applied before.
    let cut = used - 7;
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(cut as u64).unwrap();
    drop(f);
    eprintln!(
        "truncated {} from {} to {cut} bytes",
        file.display(),
        bytes.len()
    );
    tokio::task::block_in_place(|| s.spawn_and_wait());
    let keep = &acked[..acked.len() - 1];
    verify_acked(&s, keep, 1).await;
    let more = write_keys(&s, "r1/", 5).await;
    assert!(more[0].2 > keep.last().unwrap().2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_log_corruption_refuses_to_start() {
    let (mut s, _acked, file) =
        prepare_damaged_log_test("mid_log_corruption_refuses_to_start", 200).await;
    let mut bytes = std::fs::read(&file).unwrap();
    let used = used_len(&bytes);
    assert!(used > 1024, "{} too small ({used} bytes)", file.display());
    let mid = used / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xFF;
    }
    std::fs::write(&file, &bytes).unwrap();
    eprintln!(
        "flipped 64 bytes at offset {mid} of {} ({used} used)",
        file.display()
    );
    assert_refuses_to_start(&mut s);
}

/// A zeroed 4 KiB block starting at a frame header mid-log: the header reads like the end of
/// the data, but valid frames follow, so this is corruption, not a torn tail (it used to
/// truncate the log there silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeroed_block_mid_log_refuses_to_start() {
    let (mut s, _acked, file) =
        prepare_damaged_log_test("zeroed_block_mid_log_refuses_to_start", 300).await;
    let mut bytes = std::fs::read(&file).unwrap();
    let used = used_len(&bytes);
    let frames = frame_offsets(&bytes);
    assert!(
        frames.len() > 100,
        "{}: only {} frames",
        file.display(),
        frames.len()
    );
    // A frame header near the middle with valid frames well after the zeroed block.
    let at = frames
        .iter()
        .copied()
        .find(|&o| o >= used / 3)
        .expect("a frame in the middle");
    assert!(
        frames.iter().any(|&o| o > at + 4096 + 512),
        "no frame after the block to zero (used {used}, at {at})"
    );
    bytes[at..at + 4096].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    eprintln!(
        "zeroed 4096 bytes from frame header at {at} of {} ({used} used, {} frames)",
        file.display(),
        frames.len()
    );
    assert_refuses_to_start(&mut s);
}
