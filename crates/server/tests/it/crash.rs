//! Durability: acknowledged writes survive `kill -9` and restart; graceful stop is prompt;
//! (oxcd-only) a torn/garbled WAL tail is tolerated and mid-log corruption is refused.


use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{describe_status, etcd_client, skip_unless_oxcd, TestServer};
use etcd_client::GetOptions;

const WRITERS: usize = 8;
const ROUNDS: usize = 5;
/// Upper bound on how long writers run in one round.
const ROUND_WRITE_LIMIT: Duration = Duration::from_secs(3);
/// Upper bound on puts per writer per round.
const MAX_PUTS_PER_WRITER: usize = 20_000;

/// Tiny xorshift PRNG seeded from the clock (no extra dependency); the seed is printed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// An acknowledged put: key, value, revision from the response header.
type Acked = (String, String, i64);

/// Spawns WRITERS concurrent writers for round `round`; each runs until it hits an error,
/// its put limit, or ROUND_WRITE_LIMIT, and returns its acknowledged puts.
async fn spawn_writers(s: &TestServer, round: usize) -> Vec<tokio::task::JoinHandle<Vec<Acked>>> {
    let client = etcd_client(s).await;
    let deadline = Instant::now() + ROUND_WRITE_LIMIT;
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let mut c = client.clone();
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..MAX_PUTS_PER_WRITER {
                if Instant::now() > deadline {
                    break;
                }
                let key = format!("r{round}/w{w}/{i:06}");
                let value = format!("value-{round}-{w}-{i}-{}", "x".repeat(i % 64));
                let put = c.put(key.clone(), value.clone(), None);
                match tokio::time::timeout(Duration::from_secs(5), put).await {
                    Ok(Ok(resp)) => {
                        let rev = resp.header().expect("header").revision();
                        acked.push((key, value, rev));
                    }
                    _ => break, // server gone: stop this writer
                }
            }
            acked
        }));
    }
    handles
}

async fn handles_into_acked(handles: Vec<tokio::task::JoinHandle<Vec<Acked>>>) -> Vec<Acked> {
    let mut all = Vec::new();
    for h in handles {
        let v = tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("writer did not stop in time")
            .expect("writer panicked");
        all.extend(v);
    }
    all
}

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
    // Revisions of distinct puts are distinct, and the store is at least at the newest.
    let mut revs: Vec<i64> = acked.iter().map(|a| a.2).collect();
    revs.sort_unstable();
    let n = revs.len();
    revs.dedup();
    assert_eq!(revs.len(), n, "two acknowledged puts share a revision");
    let head = c.get("rev-probe", None).await.unwrap();
    let head = head.header().unwrap().revision();
    assert!(
        head >= revs.last().copied().unwrap_or(0),
        "revision went back: {head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_kill9() {
    let mut s = TestServer::start();
    let mut rng = Rng::from_time();
    let mut acked_all: Vec<Acked> = Vec::new();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.range(300, 1500));
        let handles = spawn_writers(&s, round).await;
        tokio::time::sleep(kill_after).await;
        // Kill mid-stream (blocking call; fine on the multi-thread runtime).
        tokio::task::block_in_place(|| s.kill9());
        let acked = handles_into_acked(handles).await;
        eprintln!("round {round}: killed after {kill_after:?}");
        assert!(!acked.is_empty(), "round {round}: no put was acknowledged");
        eprintln!("round {round}: {} acknowledged puts", acked.len());
        acked_all.extend(acked);
        tokio::task::block_in_place(|| s.spawn_and_wait());
        verify_acked(&s, &acked_all, round + 1).await;
    }
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

/// Starts oxcd, writes data, kills it and returns (server, acked, newest log file), or None
/// (with a message) when the test does not apply.
async fn prepare_damaged_log_test(
    test: &str,
    n: usize,
) -> Option<(TestServer, Vec<Acked>, PathBuf)> {
    if skip_unless_oxcd(test) {
        return None;
    }
    let mut s = TestServer::start();
    let acked = write_keys(&s, "r0/", n).await;
    tokio::task::block_in_place(|| s.kill9());
    match newest_log_file(&s.data_dir) {
        Some(f) => Some((s, acked, f)),
        None => {
            eprintln!(
                "SKIP {test}: no *.raftlog / *.wal file under {}/member/wal",
                s.data_dir.display()
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_wal_tail_is_tolerated() {
    let Some((mut s, acked, file)) =
        prepare_damaged_log_test("garbage_after_wal_tail_is_tolerated", 60).await
    else {
        return;
    };
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
    let Some((mut s, acked, file)) =
        prepare_damaged_log_test("truncated_wal_tail_is_tolerated", 60).await
    else {
        return;
    };
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
    let Some((mut s, _acked, file)) =
        prepare_damaged_log_test("mid_log_corruption_refuses_to_start", 200).await
    else {
        return;
    };
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
    let before = s.log().len();
    s.spawn();
    let st = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(20)));
    let log = s.log()[before..].to_string();
    let st = st.unwrap_or_else(|| {
        panic!("server kept running with a corrupted log (expected it to refuse)\n{log}")
    });
    assert!(!st.success(), "server exited 0 on a corrupted log\n{log}");
    let lower = log.to_lowercase();
    eprintln!("server refused to start ({}):\n{log}", describe_status(&st));
    assert!(
        lower.contains("corrupt") || lower.contains("checksum") || lower.contains("crc"),
        "exit ({}) without a clear corruption message:\n{log}",
        describe_status(&st)
    );
}
