//! Backend snapshots (etcd's `Maintenance.Snapshot`, `etcdctl snapshot save/status` and
//! `etcdutl snapshot restore`).
//!
//! File format (a framed dump of every table, not a redb file: redb offers no consistent
//! copy of a file that is being written):
//!
//! ```text
//! "OXCDSNAP" u32be(version = 1)
//! { 0x01 u16be(name length) name                      -- a table begins
//!   { 0x02 u32be(key length) u32be(value length) key value } }  -- its rows, key order
//! 0x03 u64be(rows)                                    -- end of the dump
//! zeros                                               -- to a multiple of 512 bytes
//! sha256(every byte above)                            -- 32 bytes, as etcd appends
//! ```
//!
//! Invariants:
//! - A snapshot is written from one read transaction: a consistent point in time, taken
//!   without blocking writers, streamed row by row (memory is bounded by one row plus the
//!   writer's buffer).
//! - A file is used (status, restore) only after its whole length was checked: framing,
//!   row count and sha256. A truncated or corrupt file is refused with
//!   [`Error::Snapshot`], before anything is written.
//! - Restore writes a new database beside the target and renames it into place only when
//!   complete and durable, so a crash never leaves a half-restored database at the target.
//! - Restored revisions never go back: by default the revision is bumped and marked
//!   compacted (etcd 3.6's `--bump-revision`/`--mark-compacted`), so watchers of the old
//!   cluster get a compaction instead of stale data.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use redb::{ReadableTable, TableHandle};
use sha2::{Digest, Sha256};

use crate::backend::{Backend, BackendConfig, WriteTx};
use crate::schema::{
    BytesTable, ALARM_TABLE, AUTH_ROLES_TABLE, AUTH_USERS_TABLE, KEY_TABLE, LEASE_TABLE,
    MEMBERS_TABLE, META_AUTH_ENABLED, META_AUTH_REVISION, META_FINISHED_COMPACT_REV,
    META_SCHEDULED_COMPACT_REV, META_TABLE, SNAPSHOT_TABLES,
};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"OXCDSNAP";
const VERSION: u32 = 1;
const TAG_TABLE: u8 = 1;
const TAG_ROW: u8 = 2;
const TAG_END: u8 = 3;
/// Length of the sha256 trailer.
pub const SHA256_LEN: usize = 32;
/// The dump before the sha256 is padded with zeros to a multiple of this.
const PAGE: u64 = 512;
/// Restore commits its writes every this many bytes (bounded transaction size).
const RESTORE_BATCH_BYTES: usize = 16 << 20;

/// What `snapshot status` shows (etcd's `snapshot.Status`), plus the file's sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// crc32 (Castagnoli) over every table name, key and value, as etcd's status hash.
    pub hash: u32,
    /// The newest main revision in the key table.
    pub revision: i64,
    /// Rows across every table (etcd's `totalKey`).
    pub total_keys: u64,
    /// The snapshot's size in bytes, trailer included.
    pub total_size: u64,
    /// The sha256 the file ends with.
    pub sha256: [u8; SHA256_LEN],
}

/// Writes a consistent snapshot of `backend` to `w`, followed by its sha256, and returns
/// its status. `w` is written in small pieces as rows are read; wrap a channel sender in
/// [`Write`] to stream it (etcd's `Maintenance.Snapshot`).
pub fn write_snapshot<W: Write>(backend: &Backend, w: W) -> Result<SnapshotStatus> {
    let rtx = backend.read_tx()?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(64 << 10, w),
        sha: Sha256::new(),
        written: 0,
    };
    let mut stats = StatusBuilder::default();
    out.put(MAGIC)?;
    out.put(&VERSION.to_be_bytes())?;
    for def in SNAPSHOT_TABLES {
        let t = rtx.open_table(def)?;
        out.table(def.name(), &mut stats)?;
        for row in t.iter()? {
            let (k, v) = row?;
            out.row(k.value(), v.value(), def.name(), &mut stats)?;
        }
    }
    let meta = rtx.open_table(META_TABLE)?;
    out.table(META_TABLE.name(), &mut stats)?;
    for row in meta.iter()? {
        let (k, v) = row?;
        out.row(
            k.value().as_bytes(),
            v.value(),
            META_TABLE.name(),
            &mut stats,
        )?;
    }
    out.put(&[TAG_END])?;
    out.put(&stats.total_keys.to_be_bytes())?;
    // etcd's clients take a file as a snapshot only if `size % 512 == 32` (a bolt file of
    // 512-byte pages plus the sha256): zeros pad the dump to a 512-byte boundary.
    let pad = (PAGE - out.written % PAGE) % PAGE;
    out.put(&vec![0u8; pad as usize])?;
    let sha: [u8; SHA256_LEN] = out.sha.finalize_reset().into();
    out.inner.write_all(&sha)?;
    out.inner.flush()?;
    Ok(stats.finish(out.written + SHA256_LEN as u64, sha))
}

impl Backend {
    /// [`write_snapshot`] of this backend.
    pub fn snapshot<W: Write>(&self, w: W) -> Result<SnapshotStatus> {
        write_snapshot(self, w)
    }
}

/// etcd's snapshot message size (`snapshotSendBufferSize`, 32 KiB).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 << 10;

/// A [`Write`] that hands `send` chunks of `chunk` bytes (the last one shorter, at
/// flush): wrap a bounded channel's blocking send in it to stream a snapshot as
/// `Maintenance.Snapshot` messages with bounded memory.
pub struct ChunkWriter<F: FnMut(Vec<u8>) -> std::io::Result<()>> {
    buf: Vec<u8>,
    chunk: usize,
    send: F,
}

impl<F: FnMut(Vec<u8>) -> std::io::Result<()>> ChunkWriter<F> {
    /// Chunks of `chunk` bytes (at least 1) handed to `send`.
    pub fn new(chunk: usize, send: F) -> Self {
        let chunk = chunk.max(1);
        ChunkWriter {
            buf: Vec::with_capacity(chunk),
            chunk,
            send,
        }
    }
}

impl<F: FnMut(Vec<u8>) -> std::io::Result<()>> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
            (self.send)(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            (self.send)(rest)?;
        }
        Ok(())
    }
}

/// Checks the snapshot file at `path` end to end and returns its status (etcd's
/// `snapshot status`); [`Error::Snapshot`] if it is not a snapshot, truncated or corrupt.
pub fn snapshot_status(path: &Path) -> Result<SnapshotStatus> {
    read_snapshot(path, |_, _, _| Ok(()))
}

/// Reads and verifies the file, calling `row(table, key, value)` for every row. The
/// checksum is checked only at the end: callers that act on rows must verify first.
fn read_snapshot(
    path: &Path,
    mut row: impl FnMut(&str, &[u8], &[u8]) -> Result<()>,
) -> Result<SnapshotStatus> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let body = total
        .checked_sub(SHA256_LEN as u64 + 8 + 4 + 9)
        .map(|_| total - SHA256_LEN as u64)
        .ok_or_else(|| {
            bad(format!(
                "{} is too short to be a snapshot ({total} bytes)",
                path.display()
            ))
        })?;
    let mut r = HashingReader {
        inner: BufReader::with_capacity(64 << 10, file),
        sha: Sha256::new(),
        remaining: body,
    };
    let mut magic = [0u8; 8];
    r.take(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad(format!(
            "{} is not an oxcd snapshot file",
            path.display()
        )));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(bad(format!("unsupported snapshot version {version}")));
    }
    let mut stats = StatusBuilder::default();
    let mut table = String::new();
    let mut key = Vec::new();
    let mut value = Vec::new();
    loop {
        match r.u8()? {
            TAG_TABLE => {
                let n = r.u16()? as usize;
                let mut name = vec![0u8; n];
                r.take(&mut name)?;
                table = String::from_utf8(name).map_err(|_| bad("table name is not utf-8"))?;
                stats.table(&table);
            }
            TAG_ROW if !table.is_empty() => {
                let kl = r.len32()?;
                let vl = r.len32()?;
                key.resize(kl, 0);
                r.take(&mut key)?;
                value.resize(vl, 0);
                r.take(&mut value)?;
                stats.row(&key, &value, &table);
                row(&table, &key, &value)?;
            }
            TAG_END => {
                let rows = r.u64()?;
                if rows != stats.total_keys {
                    return Err(bad(format!(
                        "snapshot says {rows} rows, holds {}",
                        stats.total_keys
                    )));
                }
                // Then only the zero padding to the page boundary.
                if r.remaining >= PAGE {
                    return Err(bad(format!(
                        "corrupt snapshot: {} bytes after the end of the dump",
                        r.remaining
                    )));
                }
                let mut pad = vec![0u8; r.remaining as usize];
                r.take(&mut pad)?;
                if pad.iter().any(|&b| b != 0) {
                    return Err(bad(
                        "corrupt snapshot: non-zero bytes after the end of the dump",
                    ));
                }
                break;
            }
            tag => {
                return Err(bad(format!(
                    "corrupt snapshot: unexpected record tag {tag}"
                )))
            }
        }
    }
    if r.remaining != 0 {
        return Err(bad(format!(
            "corrupt snapshot: {} bytes after the end of the dump",
            r.remaining
        )));
    }
    let computed: [u8; SHA256_LEN] = r.sha.finalize_reset().into();
    let mut stored = [0u8; SHA256_LEN];
    r.inner.read_exact(&mut stored)?;
    if computed != stored {
        return Err(bad("snapshot sha256 mismatch: the file is corrupt"));
    }
    Ok(stats.finish(total, stored))
}

/// How [`restore_backend`] treats revisions (etcd 3.6's `etcdutl snapshot restore` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Added to the snapshot's newest revision (`--bump-revision`); must be larger than
    /// the number of revisions written since the snapshot was taken.
    pub bump_revision: u64,
    /// Mark the bumped revision compacted (`--mark-compacted`), so reads and watches
    /// below it get `Compacted`. Required when `bump_revision > 0`, as in etcd.
    pub mark_compacted: bool,
}

impl Default for RestoreOptions {
    /// Revisions never go back: bump by 1e9 (etcd's documented example) and mark compacted.
    fn default() -> Self {
        RestoreOptions {
            bump_revision: 1_000_000_000,
            mark_compacted: true,
        }
    }
}

/// The outcome of [`restore_backend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// The snapshot file's status.
    pub status: SnapshotStatus,
    /// The store's revision after the restore (the snapshot's plus the bump).
    pub revision: i64,
    /// The compaction revision the restored store starts with (-1: none).
    pub compact_revision: i64,
}

/// Builds a fresh backend database at `db_path` (which must not exist) from the verified
/// snapshot file `snapshot`.
///
/// Kept: keys, leases, auth users/roles, auth flags and the compaction revisions. Left
/// empty for the caller to rebuild: members, alarms (both name the old cluster's member
/// ids), the consistent index/term, the cluster id and the local member id. `init` runs in
/// the same transaction as the last rows, to write the new cluster's members, ids and
/// consistent index (etcd's restore writes the members and sets the consistent index to
/// the number of its conf-change entries).
pub fn restore_backend(
    snapshot: &Path,
    db_path: &Path,
    opts: &RestoreOptions,
    init: impl FnOnce(&mut WriteTx) -> Result<()>,
) -> Result<RestoreInfo> {
    if opts.bump_revision > 0 && !opts.mark_compacted {
        return Err(bad("--mark-compacted required if --bump-revision > 0"));
    }
    if db_path.exists() {
        return Err(bad(format!("{} already exists", db_path.display())));
    }
    let status = snapshot_status(snapshot)?;
    let bump = i64::try_from(opts.bump_revision).map_err(|_| bad("bump revision too large"))?;
    let revision = status
        .revision
        .checked_add(bump)
        .ok_or_else(|| bad("bump revision too large"))?;

    let mut tmp_name = db_path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".restore");
    let tmp = db_path.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_file(&tmp)?;
    }
    let mut compact_revision = -1;
    {
        let backend = Backend::open(&tmp, BackendConfig::default())?;
        let mut wtx = Some(backend.write_tx()?);
        let mut batch = 0usize;
        let kept: [BytesTable; 4] = [KEY_TABLE, LEASE_TABLE, AUTH_USERS_TABLE, AUTH_ROLES_TABLE];
        let dropped: [BytesTable; 2] = [MEMBERS_TABLE, ALARM_TABLE];
        let kept_meta = [
            META_SCHEDULED_COMPACT_REV,
            META_FINISHED_COMPACT_REV,
            META_AUTH_ENABLED,
            META_AUTH_REVISION,
        ];
        read_snapshot(snapshot, |table, k, v| {
            let tx = wtx.as_mut().expect("restore transaction is open");
            if table == META_TABLE.name() {
                let key = std::str::from_utf8(k).map_err(|_| bad("meta key is not utf-8"))?;
                if let Some(key) = kept_meta.iter().find(|m| **m == key) {
                    tx.tx.open_table(META_TABLE)?.insert(*key, v)?;
                    if *key == META_FINISHED_COMPACT_REV {
                        compact_revision = decode_meta_revision(v).unwrap_or(-1);
                    }
                }
            } else if let Some(def) = kept.iter().find(|d| d.name() == table) {
                tx.tx.open_table(*def)?.insert(k, v)?;
            } else if !dropped.iter().any(|d| d.name() == table) {
                return Err(bad(format!("unknown table {table:?} in snapshot")));
            }
            batch += k.len() + v.len();
            if batch >= RESTORE_BATCH_BYTES {
                batch = 0;
                backend.commit(wtx.take().expect("open"))?;
                wtx = Some(backend.write_tx()?);
            }
            Ok(())
        })?;
        let mut tx = wtx.take().expect("restore transaction is open");
        if opts.mark_compacted {
            let enc = encode_meta_revision(revision);
            let mut meta = tx.tx.open_table(META_TABLE)?;
            meta.insert(META_SCHEDULED_COMPACT_REV, enc.as_slice())?;
            meta.insert(META_FINISHED_COMPACT_REV, enc.as_slice())?;
            compact_revision = revision;
        }
        init(&mut tx)?;
        backend.commit_durable(tx)?;
    }
    std::fs::rename(&tmp, db_path)?;
    if let Some(dir) = db_path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(RestoreInfo {
        status,
        revision: revision.max(compact_revision),
        compact_revision,
    })
}

/// A main revision as the meta table stores compaction revisions: mvcc's 17-byte
/// revision key (`main` big endian, `_`, `sub` = 0 big endian).
pub fn encode_meta_revision(main: i64) -> [u8; 17] {
    let mut b = [0u8; 17];
    b[..8].copy_from_slice(&main.to_be_bytes());
    b[8] = b'_';
    b
}

/// The main revision of a 17/18-byte revision key (see [`encode_meta_revision`]).
pub fn decode_meta_revision(b: &[u8]) -> Option<i64> {
    (b.len() >= 17 && b[8] == b'_').then(|| i64::from_be_bytes(b[..8].try_into().expect("8 bytes")))
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Snapshot(msg.into())
}

/// The status of the rows seen so far.
#[derive(Default)]
struct StatusBuilder {
    crc: u32,
    revision: i64,
    total_keys: u64,
}

impl StatusBuilder {
    fn table(&mut self, name: &str) {
        self.crc = crc32c::crc32c_append(self.crc, name.as_bytes());
    }

    fn row(&mut self, k: &[u8], v: &[u8], table: &str) {
        self.crc = crc32c::crc32c_append(self.crc, k);
        self.crc = crc32c::crc32c_append(self.crc, v);
        self.total_keys += 1;
        if table == KEY_TABLE.name() {
            if let Some(rev) = decode_meta_revision(k) {
                self.revision = self.revision.max(rev);
            }
        }
    }

    fn finish(self, total_size: u64, sha256: [u8; SHA256_LEN]) -> SnapshotStatus {
        SnapshotStatus {
            hash: self.crc,
            revision: self.revision,
            total_keys: self.total_keys,
            total_size,
            sha256,
        }
    }
}

struct HashingWriter<W: Write> {
    inner: BufWriter<W>,
    sha: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.inner.write_all(b)?;
        self.sha.update(b);
        self.written += b.len() as u64;
        Ok(())
    }

    fn table(&mut self, name: &str, stats: &mut StatusBuilder) -> Result<()> {
        let n = u16::try_from(name.len()).map_err(|_| bad("table name too long"))?;
        self.put(&[TAG_TABLE])?;
        self.put(&n.to_be_bytes())?;
        self.put(name.as_bytes())?;
        stats.table(name);
        Ok(())
    }

    fn row(&mut self, k: &[u8], v: &[u8], table: &str, stats: &mut StatusBuilder) -> Result<()> {
        let kl = u32::try_from(k.len()).map_err(|_| bad("key too long"))?;
        let vl = u32::try_from(v.len()).map_err(|_| bad("value too long"))?;
        self.put(&[TAG_ROW])?;
        self.put(&kl.to_be_bytes())?;
        self.put(&vl.to_be_bytes())?;
        self.put(k)?;
        self.put(v)?;
        stats.row(k, v, table);
        Ok(())
    }
}

struct HashingReader<R: Read> {
    inner: BufReader<R>,
    sha: Sha256,
    /// Bytes of the dump (before the trailer) not read yet.
    remaining: u64,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        if (buf.len() as u64) > self.remaining {
            return Err(bad("snapshot file is truncated"));
        }
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad("snapshot file is truncated"),
            _ => Error::Io(e),
        })?;
        self.sha.update(&*buf);
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.take(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.take(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.take(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    /// A length that must fit in what is left of the file (a corrupt length must not
    /// make us allocate gigabytes).
    fn len32(&mut self) -> Result<usize> {
        let n = self.u32()?;
        if u64::from(n) > self.remaining {
            return Err(bad("snapshot file is truncated"));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
