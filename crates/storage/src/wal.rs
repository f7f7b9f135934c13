//! The write-ahead log: preallocated segment files of checksummed frames.
//!
//! We write our own instead of using raft-engine: its tail-corruption mode truncates the
//! last file at the *first* bad batch, silently dropping acknowledged records that follow a
//! corrupted one. etcd's rule, kept here, is that only a torn last write is repaired.
//!
//! Format: a segment `<seq:016x>.wal` is preallocated to [`SEGMENT_BYTES`] (zeros), then
//! filled with frames `[len: u32 LE][crc32: u32 LE][payload][zero padding to 8 bytes]`. One
//! frame is one `append` (one write + one fdatasync). A frame header of zeros ends the data
//! of a segment, provided no valid frame follows it.
//!
//! Invariants:
//! - `append` returns only after the frame is on disk (fdatasync).
//! - Recovery reads segments in order. A bad frame (bad length or checksum) with no valid
//!   frame anywhere after it is a torn last write: the rest of the segment is zeroed and
//!   writing resumes there. A bad frame followed by a valid one, or a bad frame in any
//!   segment but the last, is corruption: [`Wal::open`] fails with [`Error::Corrupt`].
//! - A zero frame header followed by a valid frame in the same segment is corruption too
//!   (zeroed blocks mid-log): stopping there would drop, and later overwrite, the frames
//!   after it.
//!
//! Test-only features: `crash-journal` records each successful fdatasync in
//! [`crate::crash_journal`] so tests can simulate a power loss; `unsafe-no-fsync` skips the
//! append fdatasync (and so journals nothing) to prove those tests notice a missing sync.
//! - Each new segment starts with a frame chosen by the caller (the full raft state), so
//!   older segments can be deleted once everything in them is covered by a snapshot.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Size each segment is preallocated to (etcd: 64 MB).
pub const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 8;

/// A frame's payload as read back, with the segment it came from.
pub struct Frame {
    pub segment: u64,
    pub payload: Vec<u8>,
}

/// An open WAL, positioned after the last valid frame of the newest segment.
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    offset: u64,
    /// Sequence numbers of the segments on disk, oldest first.
    segments: Vec<u64>,
    #[cfg(feature = "crash-journal")]
    journal: crate::crash_journal::Journal,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn padded(len: usize) -> usize {
    (HEADER + len).div_ceil(8) * 8
}

/// Parses the frame at `off`, if it is complete and its checksum matches.
fn frame_at(buf: &[u8], off: usize) -> Option<&[u8]> {
    let head = buf.get(off..off + HEADER)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    if len == 0 {
        return None;
    }
    let payload = buf.get(off + HEADER..off + HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn is_zero_header(buf: &[u8], off: usize) -> bool {
    buf.get(off..off + HEADER)
        .is_none_or(|h| h.iter().all(|b| *b == 0))
}

/// Offset of the first valid frame at an 8-byte boundary from `from` on, if any.
fn next_valid_frame(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len())
        .step_by(8)
        .find(|&o| frame_at(buf, o).is_some())
}

impl Wal {
    /// Opens the WAL in `dir` (creating it if needed) and returns every valid frame, oldest
    /// first. A torn tail is repaired; corruption elsewhere is an error.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Frame>)> {
        std::fs::create_dir_all(dir)?;
        let mut segments: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".wal")?, 16).ok()
            })
            .collect();
        segments.sort_unstable();
        let mut frames = Vec::new();
        let mut end_offset = 0u64;
        for (i, &seq) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let path = segment_path(dir, seq);
            let buf = std::fs::read(&path)?;
            let mut off = 0usize;
            loop {
                if is_zero_header(&buf, off) {
                    if let Some(o) = next_valid_frame(&buf, off + HEADER) {
                        return Err(Error::Corrupt(format!(
                            "{}: zero frame header at offset {off} with a valid frame after \
                             it (at offset {o})",
                            path.display()
                        )));
                    }
                    break;
                }
                match frame_at(&buf, off) {
                    Some(p) => {
                        frames.push(Frame {
                            segment: seq,
                            payload: p.to_vec(),
                        });
                        off += padded(p.len());
                    }
                    None => {
                        let later = next_valid_frame(&buf, off + 8);
                        if !last || later.is_some() {
                            return Err(Error::Corrupt(format!(
                                "{}: bad frame at offset {off} with valid data after it{}",
                                path.display(),
                                later
                                    .map(|o| format!(" (at offset {o})"))
                                    .unwrap_or_default()
                            )));
                        }
                        tracing::warn!(
                            file = %path.display(),
                            offset = off,
                            "repairing torn last write in WAL"
                        );
                        let f = OpenOptions::new().write(true).open(&path)?;
                        let zeros = vec![0u8; buf.len() - off];
                        f.write_all_at(&zeros, off as u64)?;
                        f.sync_data()?;
                        #[cfg(feature = "crash-journal")]
                        crate::crash_journal::Journal::open(dir)?.record(&path, off as u64)?;
                        break;
                    }
                }
            }
            if last {
                end_offset = off as u64;
            }
        }
        let (file, seq, offset) = match segments.last() {
            Some(&seq) => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(segment_path(dir, seq))?;
                (f, seq, end_offset)
            }
            None => {
                let f = create_segment(dir, 0)?;
                segments.push(0);
                (f, 0, 0)
            }
        };
        if cfg!(feature = "unsafe-no-fsync") {
            tracing::warn!(
                "WAL built with `unsafe-no-fsync`: appends are NOT durable (tests only)"
            );
        }
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                seq,
                offset,
                segments,
                #[cfg(feature = "crash-journal")]
                journal: crate::crash_journal::Journal::open(dir)?,
            },
            frames,
        ))
    }

    /// Durably appends one frame. If the segment is full, a new one is started with
    /// `segment_start()` as its first frame.
    pub fn append(
        &mut self,
        payload: &[u8],
        segment_start: impl FnOnce() -> Vec<u8>,
    ) -> Result<()> {
        if self.offset + padded(payload.len()) as u64 > SEGMENT_BYTES && self.offset > 0 {
            self.cut(segment_start())?;
        }
        self.write_frame(payload)
    }

    fn write_frame(&mut self, payload: &[u8]) -> Result<()> {
        let buf = encode_frame(payload);
        let total = buf.len();
        self.file.write_all_at(&buf, self.offset)?;
        fail::fail_point!("walBeforeSync");
        self.sync_data(self.offset + total as u64)?;
        fail::fail_point!("walAfterSync");
        self.offset += total as u64;
        Ok(())
    }

    /// fdatasync of the current segment, after which its first `synced_len` bytes are durable
    /// (the rest is still zeros).
    fn sync_data(&mut self, synced_len: u64) -> Result<()> {
        if cfg!(feature = "unsafe-no-fsync") {
            // Test-only mutation (scripts/fsync_mutation.sh): no sync, so nothing journalled.
            return Ok(());
        }
        let started = std::time::Instant::now();
        // A failing fdatasync (etcd's tests: a disk error): the append fails, so the
        // server stops without acknowledging the frame.
        fail::fail_point!("walSyncError", |_| Err(crate::Error::Io(
            std::io::Error::other("fdatasync failed (fail point walSyncError)")
        )));
        self.file.sync_data()?;
        crate::metrics::WAL_FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        #[cfg(feature = "crash-journal")]
        self.journal
            .record(&segment_path(&self.dir, self.seq), synced_len)?;
        let _ = synced_len;
        Ok(())
    }

    /// Starts a new segment whose first frame is `first`.
    fn cut(&mut self, first: Vec<u8>) -> Result<()> {
        let seq = self.seq + 1;
        self.file = create_segment(&self.dir, seq)?;
        self.seq = seq;
        self.offset = 0;
        self.segments.push(seq);
        sync_dir(&self.dir)?;
        self.write_frame(&first)
    }

    /// Starts a new segment now (so older ones may be released) with `first` at its head.
    pub fn rotate(&mut self, first: Vec<u8>) -> Result<()> {
        self.cut(first)
    }

    /// Deletes every segment older than `keep_from` (never the current one).
    pub fn release_before(&mut self, keep_from: u64) -> Result<()> {
        let keep_from = keep_from.min(self.seq);
        let (old, rest): (Vec<u64>, Vec<u64>) = self.segments.iter().partition(|&&s| s < keep_from);
        for s in &old {
            std::fs::remove_file(segment_path(&self.dir, *s))?;
        }
        if !old.is_empty() {
            sync_dir(&self.dir)?;
        }
        self.segments = rest;
        Ok(())
    }

    /// The sequence number of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.seq
    }
}

/// One frame as it is written to a segment: header, payload and padding.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let total = padded(payload.len());
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    buf.resize(total, 0);
    buf
}

fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    // Build the segment under a temporary name so a crash never leaves a half-made one.
    let tmp = dir.join(format!("{seq:016x}.wal.tmp"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    preallocate(&f, SEGMENT_BYTES)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(f)
}

/// Allocates the segment's blocks up front so fdatasync never has to update the file size.
fn preallocate(f: &File, len: u64) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a valid, open descriptor; mode 0 allocates and zero-fills.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r != 0 {
        // Filesystems without fallocate: a sparse file reads as zeros too.
        f.set_len(len)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(frames: &[Frame]) -> Vec<Vec<u8>> {
        frames.iter().map(|f| f.payload.clone()).collect()
    }

    #[test]
    fn frames_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, frames) = Wal::open(dir.path()).unwrap();
            assert!(frames.is_empty());
            w.append(b"one", Vec::new).unwrap();
            w.append(b"two!", Vec::new).unwrap();
        }
        let (mut w, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(payloads(&frames), vec![b"one".to_vec(), b"two!".to_vec()]);
        w.append(b"three", Vec::new).unwrap();
        let (_, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn torn_tail_is_repaired_and_mid_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..10u8 {
                w.append(&[i; 100], Vec::new).unwrap();
            }
        }
        let path = segment_path(dir.path(), 0);
        let frame = padded(100) as u64;
        // Tear the last frame: half of it is missing.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0u8; 60], 9 * frame + 50).unwrap();
        drop(f);
        let (mut w, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(frames.len(), 9);
        w.append(b"after repair", Vec::new).unwrap();
        let (_, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(frames.len(), 10);
        // Flip bytes inside frame 3: valid frames follow, so this is corruption.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff; 4], 3 * frame + 20).unwrap();
        drop(f);
        match Wal::open(dir.path()) {
            Err(Error::Corrupt(m)) => assert!(m.contains("bad frame"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("corruption was not detected"),
        }
    }

    fn assert_corrupt(dir: &Path, what: &str) {
        match Wal::open(dir) {
            Err(Error::Corrupt(m)) => assert!(m.contains(what), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok((_, frames)) => panic!("corruption was not detected ({} frames)", frames.len()),
        }
    }

    #[test]
    fn zeroed_block_mid_log_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..200u8 {
                w.append(&[i | 1; 100], Vec::new).unwrap();
            }
        }
        let path = segment_path(dir.path(), 0);
        let frame = padded(100) as u64;
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        // 4 KiB of zeros starting at a frame header: the header reads as "end of data", but
        // valid frames follow.
        f.write_all_at(&[0u8; 4096], 50 * frame).unwrap();
        drop(f);
        assert_corrupt(dir.path(), "zero frame header at offset");
        // Refusing must not repair anything: the same error again.
        assert_corrupt(dir.path(), "zero frame header at offset");

        // Zeroing a page-aligned 4 KiB block (mid-frame) is refused as well.
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..200u8 {
                w.append(&[i | 1; 100], Vec::new).unwrap();
            }
        }
        let f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        f.write_all_at(&[0u8; 4096], 8192).unwrap();
        drop(f);
        assert_corrupt(dir.path(), "with valid data after it");
    }

    #[test]
    fn zeroed_tail_is_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..20u8 {
                w.append(&[i | 1; 100], Vec::new).unwrap();
            }
        }
        let frame = padded(100) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        // The last two frames are zeroed entirely (never written, as after a power loss).
        f.write_all_at(&vec![0u8; 2 * frame as usize], 18 * frame)
            .unwrap();
        drop(f);
        let (_, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(frames.len(), 18);
    }

    #[test]
    fn zero_header_in_an_older_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            for i in 0..10u8 {
                w.append(&[i | 1; 100], Vec::new).unwrap();
            }
            w.rotate(b"state".to_vec()).unwrap();
            w.append(b"b", Vec::new).unwrap();
        }
        let frame = padded(100) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        f.write_all_at(&[0u8; 8], 4 * frame).unwrap();
        drop(f);
        assert_corrupt(dir.path(), "zero frame header at offset");
    }

    #[test]
    fn rotation_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(b"a", Vec::new).unwrap();
        w.rotate(b"state".to_vec()).unwrap();
        w.append(b"b", Vec::new).unwrap();
        w.release_before(w.current_segment()).unwrap();
        let (_, frames) = Wal::open(dir.path()).unwrap();
        assert_eq!(payloads(&frames), vec![b"state".to_vec(), b"b".to_vec()]);
    }
}
