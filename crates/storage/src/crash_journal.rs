//! Power-loss simulation for durability tests (test-only).
//!
//! `kill -9` keeps the page cache, so a test that kills the server cannot tell a synced WAL
//! from an unsynced one. With the `crash-journal` feature, every successful fdatasync of a
//! WAL segment appends `<segment file name> <synced length>\n` to [`FILE_NAME`] beside the
//! segments. After the server is killed, [`revert_unsynced`] rewrites each segment as it
//! would read after a power loss: its synced prefix, then zeros (the segment was
//! preallocated with zeros and synced when created).
//!
//! Invariants:
//! - A journal line is written only after the fdatasync it describes returned, and before
//!   the append is reported durable, so every acknowledged write is inside a journalled
//!   length. The journal itself is not synced: it models what the disk holds, and only
//!   `kill -9` (which keeps the page cache) is used with it.
//! - A segment with no journal line has no synced frame: it is zeroed entirely.
//! - [`revert_unsynced`] refuses to run without a journal (a build without the feature
//!   would otherwise lose everything and make any durability test meaningless).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The journal's file name inside the WAL directory (it does not end in `.wal`).
pub const FILE_NAME: &str = "crash-journal";

/// The open journal of a WAL (feature `crash-journal`).
#[cfg(feature = "crash-journal")]
pub(crate) struct Journal {
    file: std::fs::File,
}

#[cfg(feature = "crash-journal")]
impl Journal {
    /// Opens (creating) the journal in `wal_dir`; its existence marks a journalling build.
    pub(crate) fn open(wal_dir: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(wal_dir.join(FILE_NAME))?;
        Ok(Journal { file })
    }

    /// Records that `segment` is durable up to `len` bytes (one `write`, so a `kill -9`
    /// cannot tear the line).
    pub(crate) fn record(&mut self, segment: &Path, len: u64) -> Result<()> {
        let name = segment
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Corrupt(format!("bad segment name {}", segment.display())))?;
        self.file.write_all(format!("{name} {len}\n").as_bytes())?;
        Ok(())
    }
}

/// What [`revert_unsynced`] did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverted {
    pub file: PathBuf,
    /// Journalled synced length (0 if the segment never had a synced frame).
    pub synced: u64,
    /// Non-zero bytes past `synced` that were zeroed: written but never synced.
    pub lost_bytes: u64,
}

/// Reads the journal: the last synced length of each segment file name.
pub fn synced_lengths(wal_dir: &Path) -> Result<HashMap<String, u64>> {
    let path = wal_dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (is the server built with the `crash-journal` feature?)",
                path.display()
            ),
        )
    })?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || Error::Corrupt(format!("{}:{}: bad line {line:?}", path.display(), n + 1));
        let (name, len) = line.split_once(' ').ok_or_else(bad)?;
        let len: u64 = len.parse().map_err(|_| bad())?;
        out.insert(name.to_string(), len);
    }
    Ok(out)
}

/// Simulates a power loss on the WAL in `wal_dir` (the server must not be running): every
/// `*.wal` segment keeps its journalled synced prefix and reads as zeros after it.
pub fn revert_unsynced(wal_dir: &Path) -> Result<Vec<Reverted>> {
    let synced = synced_lengths(wal_dir)?;
    let mut names: Vec<String> = std::fs::read_dir(wal_dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = wal_dir.join(&name);
        let keep = synced.get(&name).copied().unwrap_or(0);
        let mut f = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = f.metadata()?.len();
        let mut lost = 0u64;
        let mut pos = keep;
        let mut buf = vec![0u8; 1 << 20];
        while pos < len {
            let n = ((len - pos) as usize).min(buf.len());
            f.seek(SeekFrom::Start(pos))?;
            f.read_exact(&mut buf[..n])?;
            let nonzero = buf[..n].iter().filter(|b| **b != 0).count() as u64;
            if nonzero > 0 {
                lost += nonzero;
                f.seek(SeekFrom::Start(pos))?;
                f.write_all(&vec![0u8; n])?;
            }
            pos += n as u64;
        }
        f.sync_all()?;
        out.push(Reverted {
            file: path,
            synced: keep,
            lost_bytes: lost,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_zeroes_past_the_journalled_length() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000000000000.wal"), [7u8; 64]).unwrap();
        std::fs::write(dir.path().join("0000000000000001.wal"), [9u8; 16]).unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "0000000000000000.wal 8\n0000000000000000.wal 24\n",
        )
        .unwrap();
        let r = revert_unsynced(dir.path()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].synced, r[0].lost_bytes), (24, 40));
        assert_eq!((r[1].synced, r[1].lost_bytes), (0, 16));
        let a = std::fs::read(dir.path().join("0000000000000000.wal")).unwrap();
        assert_eq!(a.len(), 64, "length is kept (preallocated file)");
        assert!(a[..24].iter().all(|b| *b == 7) && a[24..].iter().all(|b| *b == 0));
        let b = std::fs::read(dir.path().join("0000000000000001.wal")).unwrap();
        assert!(b.iter().all(|x| *x == 0));
    }

    #[test]
    fn revert_without_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000000000000.wal"), [7u8; 64]).unwrap();
        let e = revert_unsynced(dir.path()).unwrap_err();
        assert!(e.to_string().contains("crash-journal"), "{e}");
        assert!(std::fs::read(dir.path().join("0000000000000000.wal"))
            .unwrap()
            .iter()
            .all(|b| *b == 7));
    }

    /// With the journal, appended frames survive a simulated power loss; bytes written
    /// after the last sync do not. With `unsafe-no-fsync`, nothing survives.
    #[cfg(feature = "crash-journal")]
    #[test]
    fn journalled_frames_survive_power_loss() {
        use crate::wal::Wal;
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..5u8 {
                w.append(&[i + 1; 40], Vec::new).unwrap();
            }
        }
        // Five frames of an 8-byte header and 40 bytes of payload (already 8-aligned).
        let end = 5 * 48u64;
        // An unsynced write after the last sync (what a crash mid-append leaves).
        let seg = dir.path().join("0000000000000000.wal");
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0xAB; 100], end).unwrap();
        drop(f);
        let r = revert_unsynced(dir.path()).unwrap();
        let (_, frames) = Wal::open(dir.path()).unwrap();
        if cfg!(feature = "unsafe-no-fsync") {
            assert_eq!(r[0].synced, 0);
            assert!(frames.is_empty());
        } else {
            assert_eq!((r[0].synced, r[0].lost_bytes), (end, 100));
            assert_eq!(frames.len(), 5);
        }
    }
}
