//! Bodies of the fuzz targets that reach this crate (`fuzz/fuzz_targets/wal_recovery.rs`
//! and `snapshot_restore.rs`), shared with the corpus-replay tests so `cargo test` runs the
//! committed corpus without cargo-fuzz.
//!
//! Invariants:
//! - Each function takes arbitrary bytes and a scratch directory it may fill and empties
//!   it again; it returns whatever the code under test returned and panics only if that
//!   code panicked (the finding a fuzzer looks for).
//! - The first input byte picks a mode: even means the rest is the file as is; odd means
//!   the rest is the file's content and the checksums are made valid here, so mutations
//!   get past the checksum and reach the parsers behind it.

use std::path::Path;

use raft::eraftpb::Entry;
use raft::{GetEntriesContext, RawNode, Storage};

use crate::raft_log::RaftLog;
use crate::snapshot::SHA256_LEN;
use crate::{Error, Result};

/// The WAL segment file name the fuzzed bytes are written to.
const SEGMENT: &str = "0000000000000000.wal";

fn clear(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// The segment bytes for `data`: as is (mode even), or the rest split into frames with
/// valid checksums (mode odd: `[u16 le length][payload]` repeated).
fn wal_segment(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode % 2 == 0 {
        return rest.to_vec();
    }
    let mut out = Vec::new();
    let mut p = rest;
    while p.len() >= 2 {
        let n = (u16::from_le_bytes([p[0], p[1]]) as usize).min(p.len() - 2);
        out.extend(crate::wal::encode_frame(&p[2..2 + n]));
        p = &p[2 + n..];
    }
    out
}

/// Writes `data` as the only WAL segment in `dir`, replays it as a restarting member
/// does ([`RaftLog::open`]) and, if that succeeds, starts a raft node over the log as
/// `RaftNode::new` does (raft-rs checks the recovered state and panics on a bad one).
pub fn wal_recovery(dir: &Path, data: &[u8]) -> Result<()> {
    clear(dir);
    std::fs::write(dir.join(SEGMENT), wal_segment(data))?;
    let r = recover(dir);
    clear(dir);
    r
}

fn recover(dir: &Path) -> Result<()> {
    let mut log = RaftLog::open(dir)?;
    let first = log.first_index().map_err(raft_err)?;
    let last = log.last_index().map_err(raft_err)?;
    let _: Vec<Entry> = log
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .map_err(raft_err)?;
    let applied = log.snapshot_index().min(last);
    log.set_commit(applied)?;
    log.set_applied(applied);
    let cfg = raft::Config {
        id: 1,
        applied,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut node = RawNode::new(&cfg, log, &logger).map_err(raft_err)?;
    if node.has_ready() {
        let _ = node.ready();
    }
    Ok(())
}

fn raft_err(e: raft::Error) -> Error {
    Error::Corrupt(e.to_string())
}

/// The snapshot file bytes for `data`: as is (mode even), or the rest as the dump with the
/// zero padding and sha256 trailer added (mode odd).
fn snapshot_file(data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode % 2 == 0 {
        return rest.to_vec();
    }
    let mut out = rest.to_vec();
    out.resize(out.len().div_ceil(512) * 512, 0);
    let sha: [u8; SHA256_LEN] = Sha256::digest(&out).into();
    out.extend_from_slice(&sha);
    out
}

/// Writes `data` as a snapshot file in `dir`, checks it as `oxcdutl snapshot status` does
/// and, if it passes, restores it into a new backend as `oxcdutl snapshot restore` does.
pub fn snapshot_restore(dir: &Path, data: &[u8]) -> Result<()> {
    clear(dir);
    let snap = dir.join("snap.db");
    std::fs::write(&snap, snapshot_file(data))?;
    let r = crate::snapshot::snapshot_status(&snap).and_then(|_| {
        crate::snapshot::restore_backend(
            &snap,
            &dir.join("db"),
            &crate::snapshot::RestoreOptions::default(),
            |_| Ok(()),
        )
        .map(|_| ())
    });
    clear(dir);
    r
}

/// Every file of the committed corpus of `target` (`fuzz/corpus/<target>/`).
#[doc(hidden)]
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            let p = e.path();
            let bytes = std::fs::read(&p).expect("read corpus file");
            (p.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "corpus {} is empty", dir.display());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_recovery_corpus_replays_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, data) in corpus("wal_recovery") {
            let r = wal_recovery(dir.path(), &data);
            eprintln!("{name}: {:?}", r.err());
        }
    }

    /// Found by the seed corpus: a hard state committing past the log made raft-rs panic
    /// at start ("hs.commit 9 is out of range [0, 1]"); now the WAL is refused as corrupt.
    #[test]
    fn hard_state_commit_past_the_log_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let input = [
            0x01, 0x1d, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x0a, 0x02, 0x08, 0x01, 0x10, 0x01,
            0x18, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00, 0x08, 0x01, 0x02, 0x04, 0x00, 0x00, 0x00,
            0x08, 0x01, 0x18, 0x01, 0x0b, 0x00, 0x02, 0x06, 0x00, 0x00, 0x00, 0x08, 0x02, 0x10,
            0x01, 0x18, 0x09,
        ];
        let err = wal_recovery(dir.path(), &input).unwrap_err();
        assert!(err.to_string().contains("past the last log index"), "{err}");
    }

    /// Found by the fuzzer (fuzz/README.md): a conf state with repeated and zero voters
    /// made raft-rs panic at start ("invalid restore"); now the WAL is refused as corrupt.
    #[test]
    fn a_conf_state_raft_cannot_restore_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let input = [
            0x11, 0x1d, 0xf8, 0x03, 0x08, 0x00, 0x00, 0x00, 0x0a, 0x22, 0x08, 0x00, 0x00, 0xa1,
            0xef, 0x01,
        ];
        let err = wal_recovery(dir.path(), &input).unwrap_err();
        assert!(err.to_string().contains("conf state"), "{err}");
    }

    #[test]
    fn snapshot_restore_corpus_replays_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut ok = 0;
        for (name, data) in corpus("snapshot_restore") {
            let r = snapshot_restore(dir.path(), &data);
            ok += usize::from(r.is_ok());
            eprintln!("{name}: {:?}", r.err());
        }
        assert!(ok > 0, "no valid snapshot in the corpus");
    }
}
