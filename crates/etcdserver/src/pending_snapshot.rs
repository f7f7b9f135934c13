//! A leader's snapshot kept on disk between the moment the Raft log records it and the
//! moment the backend holds its rows (etcd keeps its `.snap.db` file for the same reason).
//!
//! Invariants:
//! - The Raft thread writes `member/snap/pending-<index>.rows` (fsynced, renamed into place,
//!   directory fsynced) before the Raft log records the snapshot at `index` and drops the
//!   entries it covers. So whenever the log says "snapshot at N", either the backend already
//!   holds N's data or this file does: a crash in between can no longer leave a member whose
//!   backend lacks the entries the log skipped (seen in the fail-point scenario: a member
//!   restarted at consistent index 866 with a log starting after 1085, and answered with
//!   revisions other members had given to other writes).
//! - The apply loop removes the file once the rows are installed in one durable backend
//!   transaction; bootstrap installs the newest file above the consistent index before
//!   anything reads the backend, then removes every pending file.
//! - The file is `OXSNAP01`, the index (u64 BE), length-delimited `BackendRow`s, and a CRC32
//!   of everything before it; a file that fails the check is corruption, never half-applied.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use oxcd_api::oxcdpb::BackendRow;
use prost::Message;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"OXSNAP01";

/// The pending-snapshot file of the snapshot at `index` under `snap_dir`.
pub fn path(snap_dir: &Path, index: u64) -> PathBuf {
    snap_dir.join(format!("pending-{index:016x}.rows"))
}

/// Durably writes the rows of the snapshot at `index` (see the module doc).
pub fn save(snap_dir: &Path, index: u64, rows: &[BackendRow]) -> Result<()> {
    let mut buf = Vec::with_capacity(16 + rows.iter().map(|r| r.encoded_len() + 4).sum::<usize>());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&index.to_be_bytes());
    for r in rows {
        r.encode_length_delimited(&mut buf)
            .map_err(|e| Error::Corrupt(format!("encoding a snapshot row: {e}")))?;
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let dst = path(snap_dir, index);
    let tmp = dst.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &dst)?;
    File::open(snap_dir)?.sync_all()?;
    Ok(())
}

/// Removes the pending file of the snapshot at `index` (installed now).
pub fn remove(snap_dir: &Path, index: u64) -> Result<()> {
    match fs::remove_file(path(snap_dir, index)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Every pending file under `snap_dir`, by index.
fn list(snap_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(snap_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in entries {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(hex) = name
            .strip_prefix("pending-")
            .and_then(|n| n.strip_suffix(".rows"))
        {
            if let Ok(i) = u64::from_str_radix(hex, 16) {
                out.push((i, p));
            }
        } else if name.starts_with("pending-") && name.ends_with(".tmp") {
            // A write that never reached its rename: the log did not record that snapshot.
            fs::remove_file(&p)?;
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and checks one pending file.
pub fn read(p: &Path) -> Result<(u64, Vec<BackendRow>)> {
    let bytes = fs::read(p)?;
    let bad = |why: &str| Error::Corrupt(format!("{}: {why}", p.display()));
    if bytes.len() < MAGIC.len() + 12 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a pending snapshot"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(bad("checksum mismatch"));
    }
    let index = u64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
    let mut rest = &body[16..];
    let mut rows = Vec::new();
    while !rest.is_empty() {
        let r = BackendRow::decode_length_delimited(&mut rest)
            .map_err(|e| bad(&format!("row {}: {e}", rows.len())))?;
        rows.push(r);
    }
    Ok((index, rows))
}

/// The newest pending snapshot above `consistent_index`, if any (bootstrap installs it
/// before using the backend, then calls [`clear`]).
pub fn take_newer(
    snap_dir: &Path,
    consistent_index: u64,
) -> Result<Option<(u64, Vec<BackendRow>)>> {
    let files = list(snap_dir)?;
    let newest = match files.last() {
        Some((i, p)) if *i > consistent_index => Some(read(p)?),
        _ => None,
    };
    Ok(newest)
}

/// Removes every pending file (after bootstrap installed what it needed).
pub fn clear(snap_dir: &Path) -> Result<()> {
    for (_, p) in list(snap_dir)? {
        fs::remove_file(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: &str, k: &str, v: &str) -> BackendRow {
        BackendRow {
            table: t.into(),
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn round_trip_newest_above_the_consistent_index_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rows = vec![row("key", "a", "1"), row("meta", "consistent_index", "x")];
        save(d, 10, &rows).unwrap();
        save(d, 20, &rows[..1]).unwrap();
        assert_eq!(take_newer(d, 25).unwrap(), None);
        let (i, got) = take_newer(d, 15).unwrap().unwrap();
        assert_eq!((i, got), (20, rows[..1].to_vec()));
        remove(d, 20).unwrap();
        assert_eq!(take_newer(d, 5).unwrap().unwrap(), (10, rows.clone()));
        // A flipped byte is corruption, not a shorter snapshot.
        let p = path(d, 10);
        let mut b = fs::read(&p).unwrap();
        b[20] ^= 1;
        fs::write(&p, b).unwrap();
        assert!(matches!(take_newer(d, 5), Err(Error::Corrupt(_))));
        clear(d).unwrap();
        assert_eq!(take_newer(d, 0).unwrap(), None);
    }
}
