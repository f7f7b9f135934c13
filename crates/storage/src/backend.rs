//! The backend: one redb database file (`<data-dir>/member/snap/db`, as etcd's bolt db).
//!
//! Invariants:
//! - Every write goes through a [`WriteTx`]; its commit is non-durable (no fsync) unless the
//!   batch limit or batch interval is reached, or [`Backend::force_commit`] is called. Data
//!   committed non-durably is visible to readers at once; after a crash the database rolls
//!   back to its last durable commit, and the raft log replays from the consistent index
//!   stored there.
//! - The consistent index is written in the same transaction as the data it covers
//!   ([`WriteTx::set_consistent_index`]); [`Backend::durable_index`] is the consistent index
//!   of the last durable commit, the point up to which the raft log may be compacted.
//! - The open [`Database`] sits behind a lock so an online defragmentation
//!   ([`crate::defrag`]) can swap in a rewritten file; a transaction keeps the database it
//!   began on alive. Write transactions begin under `write_gate`, which the swap holds, so
//!   none begins on a database that is being replaced.
//! - Rows are deleted from [`KEY_TABLE`](crate::schema::KEY_TABLE) only by compaction, and a compaction records each
//!   one with [`WriteTx::note_key_deleted`] (the defragmentation replays those deletions).
//!   Replacing tables wholesale (a Raft snapshot install) is announced by
//!   [`Backend::reload_consistent_index`], which makes a running defragmentation fail.
//! - [`Backend::size`] and [`Backend::size_in_use`] are atomics, cheap enough to read on
//!   every write (the quota check).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redb::{Database, Durability, ReadableDatabase};

use crate::schema::{META_CONSISTENT_INDEX, META_TABLE, META_TERM, SNAPSHOT_TABLES};
use crate::Result;

/// When a batch of non-durable commits must be made durable.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Durable commit after this many non-durable ones (etcd: batch limit 10000).
    pub batch_limit: usize,
    /// Durable commit when the last one is older than this (etcd: 100 ms).
    pub batch_interval: Duration,
    /// redb's page cache. Pages beyond it are read through the OS page cache, which is not
    /// part of the server's resident memory (redb's own default is 1 GiB).
    pub cache_bytes: usize,
    /// How often [`Backend::force_commit`] recomputes [`Backend::size_in_use`] exactly:
    /// redb walks every page for it, so not at every idle commit.
    pub size_stats_interval: Duration,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            batch_limit: 10_000,
            batch_interval: Duration::from_millis(100),
            cache_bytes: 64 << 20,
            size_stats_interval: Duration::from_secs(10),
        }
    }
}

struct BatchState {
    pending: usize,
    last_durable: Instant,
    /// Consistent index of the newest commit, durable or not.
    latest_index: u64,
}

/// Space accounting (etcd's `dbSize` / `dbSizeInUse`).
struct SizeState {
    /// The file's length, refreshed after every commit.
    file: AtomicU64,
    /// Allocated pages x page size, as of `stats_at`.
    in_use: AtomicU64,
    /// The file's length when `in_use` was computed.
    file_at_stats: AtomicU64,
    /// Bytes admitted by the quota since `in_use` was computed ([`Backend::note_admitted`]):
    /// writes that reuse freed pages do not grow the file, so growth alone undercounts.
    admitted: AtomicU64,
    stats_at: Mutex<Option<Instant>>,
}

/// The redb-backed store shared by MVCC, leases and cluster metadata.
pub struct Backend {
    db: RwLock<Arc<Database>>,
    /// Held while a write transaction begins, and by a defragmentation's swap.
    write_gate: Mutex<()>,
    path: PathBuf,
    cfg: BackendConfig,
    batch: Mutex<BatchState>,
    durable_index: AtomicU64,
    sizes: SizeState,
    /// Bumped whenever the tables were replaced wholesale.
    pub(crate) generation: AtomicU64,
    /// While a defragmentation runs: the KEY_TABLE keys deleted by commits since it began.
    pub(crate) defrag_log: Mutex<Option<Vec<Vec<u8>>>>,
    /// One defragmentation at a time.
    pub(crate) defrag_running: Mutex<()>,
}

/// An open write transaction. Commit it with [`Backend::commit`].
pub struct WriteTx {
    pub tx: redb::WriteTransaction,
    consistent_index: Option<u64>,
    /// `Some` when a defragmentation was running as this transaction began.
    deleted_keys: Option<Mutex<Vec<Vec<u8>>>>,
}

impl WriteTx {
    /// Records the raft index (and term) this transaction's data brings the store up to.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) -> Result<()> {
        let mut t = self.tx.open_table(META_TABLE)?;
        t.insert(META_CONSISTENT_INDEX, index.to_be_bytes().as_slice())?;
        t.insert(META_TERM, term.to_be_bytes().as_slice())?;
        self.consistent_index = Some(index);
        Ok(())
    }

    /// Records that `key` was deleted from [`KEY_TABLE`](crate::schema::KEY_TABLE) in this transaction (compaction
    /// must call it for every row it removes; a no-op unless a defragmentation is running).
    /// Takes `&self` so it can be called while a table of this transaction is open.
    pub fn note_key_deleted(&self, key: &[u8]) {
        if let Some(d) = self.deleted_keys.as_ref() {
            d.lock().push(key.to_vec());
        }
    }
}

/// Path of the file a defragmentation writes before renaming it over the database.
pub(crate) fn defrag_tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".defrag");
    path.with_file_name(name)
}

impl Backend {
    /// Opens (creating if needed) the database at `path`. A leftover file of an interrupted
    /// defragmentation is removed: the database it was meant to replace is still whole.
    pub fn open(path: &Path, cfg: BackendConfig) -> Result<Backend> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = defrag_tmp_path(path);
        if tmp.exists() {
            tracing::warn!(path = %tmp.display(), "removing the file of an interrupted defragmentation");
            std::fs::remove_file(&tmp)?;
        }
        // redb panics on some corrupt files instead of failing (the `backend_recovery`
        // fuzz target: "entered unreachable code" in its B-tree). Nothing is shared yet, so
        // the panic is contained and the file refused like any other corrupt one.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open_db(path, &cfg)));
        let db = opened.map_err(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            crate::Error::BackendCorrupt(format!(
                "{}: redb panicked opening it: {why}",
                path.display()
            ))
        })??;
        let backend = Backend {
            db: RwLock::new(Arc::new(db)),
            write_gate: Mutex::new(()),
            path: path.to_path_buf(),
            cfg,
            batch: Mutex::new(BatchState {
                pending: 0,
                last_durable: Instant::now(),
                latest_index: 0,
            }),
            durable_index: AtomicU64::new(0),
            sizes: SizeState {
                file: AtomicU64::new(0),
                in_use: AtomicU64::new(0),
                file_at_stats: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                stats_at: Mutex::new(None),
            },
            generation: AtomicU64::new(0),
            defrag_log: Mutex::new(None),
            defrag_running: Mutex::new(()),
        };
        backend.force_commit()?;
        let (ci, _) = backend.consistent_index()?;
        backend.durable_index.store(ci, Ordering::Release);
        backend.batch.lock().latest_index = ci;
        Ok(backend)
    }

    /// The database currently in use.
    pub(crate) fn db(&self) -> Arc<Database> {
        Arc::clone(&self.db.read())
    }

    pub(crate) fn config(&self) -> &BackendConfig {
        &self.cfg
    }

    /// Begins a write transaction (redb allows one at a time; callers serialize on it).
    pub fn write_tx(&self) -> Result<WriteTx> {
        let _gate = self.write_gate.lock();
        let mut tx = self.db().begin_write()?;
        tx.set_durability(Durability::None)?;
        let deleted_keys = self
            .defrag_log
            .lock()
            .as_ref()
            .map(|_| Mutex::new(Vec::new()));
        Ok(WriteTx {
            tx,
            consistent_index: None,
            deleted_keys,
        })
    }

    /// Commits `tx`, durably if the batch limit or interval says so. Returns whether the
    /// commit was durable.
    pub fn commit(&self, tx: WriteTx) -> Result<bool> {
        let mut b = self.batch.lock();
        let durable = b.pending + 1 >= self.cfg.batch_limit
            || b.last_durable.elapsed() >= self.cfg.batch_interval;
        self.commit_locked(&mut b, tx, durable)?;
        Ok(durable)
    }

    /// Commits `tx` durably (fsync) before returning.
    pub fn commit_durable(&self, tx: WriteTx) -> Result<()> {
        let mut b = self.batch.lock();
        self.commit_locked(&mut b, tx, true)
    }

    /// Makes every earlier non-durable commit durable. Every `size_stats_interval` it also
    /// recomputes [`Backend::size_in_use`].
    pub fn force_commit(&self) -> Result<()> {
        let tx = self.write_tx()?;
        let due = self
            .sizes
            .stats_at
            .lock()
            .is_none_or(|t| t.elapsed() >= self.cfg.size_stats_interval);
        if due {
            self.record_stats(&tx.tx);
        }
        let mut b = self.batch.lock();
        self.commit_locked(&mut b, tx, true)
    }

    /// Recomputes [`Backend::size_in_use`] now (after a compaction frees pages). Costs a
    /// walk of every page inside a write transaction, so writes wait for it.
    pub fn refresh_size_in_use(&self) -> Result<()> {
        let tx = self.write_tx()?;
        self.record_stats(&tx.tx);
        drop(tx);
        Ok(())
    }

    fn record_stats(&self, tx: &redb::WriteTransaction) {
        if let Ok(st) = tx.stats() {
            let used = bytes_in_use(&st);
            self.sizes.in_use.store(used, Ordering::Release);
            self.sizes.admitted.store(0, Ordering::Release);
            self.sizes
                .file_at_stats
                .store(self.file_len(), Ordering::Release);
            *self.sizes.stats_at.lock() = Some(Instant::now());
        }
    }

    fn commit_locked(&self, b: &mut BatchState, mut tx: WriteTx, durable: bool) -> Result<()> {
        if !durable {
            tx.tx.set_durability(Durability::None)?;
        } else {
            tx.tx.set_durability(Durability::Immediate)?;
        }
        let ci = tx.consistent_index;
        fail::fail_point!("beforeCommit");
        let started = Instant::now();
        tx.tx.commit()?;
        crate::metrics::BACKEND_COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        fail::fail_point!("afterCommit");
        let deleted = tx.deleted_keys.take().map(Mutex::into_inner);
        if let Some(deleted) = deleted.filter(|d| !d.is_empty()) {
            if let Some(log) = self.defrag_log.lock().as_mut() {
                log.extend(deleted);
            }
        }
        if let Some(ci) = ci {
            b.latest_index = b.latest_index.max(ci);
        }
        if durable {
            b.pending = 0;
            b.last_durable = Instant::now();
            self.durable_index.store(b.latest_index, Ordering::Release);
        } else {
            b.pending += 1;
        }
        self.sizes.file.store(self.file_len(), Ordering::Release);
        Ok(())
    }

    /// Whether non-durable commits are older than the batch interval (the apply loop calls
    /// [`Backend::force_commit`] when idle and this is true).
    pub fn commit_due(&self) -> bool {
        let b = self.batch.lock();
        b.pending > 0 && b.last_durable.elapsed() >= self.cfg.batch_interval
    }

    /// Begins a read transaction: a consistent view of the last commit, durable or not.
    pub fn read_tx(&self) -> Result<redb::ReadTransaction> {
        Ok(self.db.read().begin_read()?)
    }

    /// The consistent index and term stored with the data (0, 0 for a new database).
    pub fn consistent_index(&self) -> Result<(u64, u64)> {
        let rtx = self.read_tx()?;
        let t = rtx.open_table(META_TABLE)?;
        Ok((
            meta_u64(&t, META_CONSISTENT_INDEX)?,
            meta_u64(&t, META_TERM)?,
        ))
    }

    /// Re-reads the consistent index after the tables were replaced wholesale (a snapshot
    /// was installed) and treats it as durable (the install committed durably). A running
    /// defragmentation fails (it cannot follow a wholesale replacement).
    pub fn reload_consistent_index(&self) -> Result<()> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let (ci, _) = self.consistent_index()?;
        let mut b = self.batch.lock();
        b.latest_index = ci;
        b.pending = 0;
        self.durable_index.store(ci, Ordering::Release);
        Ok(())
    }

    /// The consistent index of the last durable commit.
    pub fn durable_index(&self) -> u64 {
        self.durable_index.load(Ordering::Acquire)
    }

    fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The database file's size in bytes (etcd's `dbSize`), as of the last commit.
    pub fn size(&self) -> u64 {
        match self.sizes.file.load(Ordering::Acquire) {
            0 => self.file_len(),
            n => n,
        }
    }

    /// Bytes of the file in use by live data (etcd's `dbSizeInUse`): the bytes the trees
    /// hold as of the last exact computation (see [`bytes_in_use`]), plus the larger of what
    /// the file grew by and what the quota admitted since (writes into pages a compaction
    /// freed do not grow the file), at most the file's size.
    pub fn size_in_use(&self) -> u64 {
        let size = self.size();
        let used = self.sizes.in_use.load(Ordering::Acquire);
        if used == 0 {
            return size;
        }
        let grown = size.saturating_sub(self.sizes.file_at_stats.load(Ordering::Acquire));
        let admitted = self.sizes.admitted.load(Ordering::Acquire);
        (used + grown.max(admitted)).min(size)
    }

    /// Counts `bytes` a write admitted by the quota will add (until the next exact
    /// computation of [`Backend::size_in_use`]).
    pub fn note_admitted(&self, bytes: u64) {
        self.sizes.admitted.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the write transaction in flight, if any, and blocks new ones while `f`
    /// runs with a read view of the latest commit and a place to put a new database.
    pub(crate) fn exclusive<T>(
        &self,
        f: impl FnOnce(&Database, &mut Option<Database>) -> Result<T>,
    ) -> Result<T> {
        let _gate = self.write_gate.lock();
        let old = self.db();
        // Waits for the writer in flight; holding it (never committed) keeps any other
        // user of `old` from writing while `f` runs.
        let hold = old.begin_write()?;
        // A writer that just committed finishes its bookkeeping (the defragmentation's
        // deletion log) under the batch lock.
        drop(self.batch.lock());
        let mut replacement = None;
        let out = f(&old, &mut replacement);
        // Swap even when `f` failed after putting a replacement in place: the file at our
        // path is the replacement from then on.
        if let Some(new) = replacement {
            // A rewrite keeps the bytes the trees hold: carry the estimate over instead of
            // walking the new file's pages while writes are held.
            let used = self.size_in_use();
            *self.db.write() = Arc::new(new);
            let mut b = self.batch.lock();
            b.pending = 0;
            b.last_durable = Instant::now();
            self.durable_index.store(b.latest_index, Ordering::Release);
            let len = self.file_len();
            self.sizes.file.store(len, Ordering::Release);
            self.sizes.in_use.store(used.min(len), Ordering::Release);
            self.sizes.file_at_stats.store(len, Ordering::Release);
        }
        drop(hold);
        out
    }
}

/// Opens `path` with `cfg`'s cache and creates every table, so read transactions never
/// miss one.
pub(crate) fn open_db(path: &Path, cfg: &BackendConfig) -> Result<Database> {
    let db = Database::builder()
        .set_cache_size(cfg.cache_bytes)
        .create(path)?;
    let tx = db.begin_write()?;
    for t in SNAPSHOT_TABLES {
        tx.open_table(t)?;
    }
    tx.open_table(META_TABLE)?;
    tx.commit()?;
    Ok(db)
}

/// A big-endian u64 meta value (0 when absent).
pub(crate) fn meta_u64<T>(t: &T, key: &str) -> Result<u64>
where
    T: redb::ReadableTable<&'static str, &'static [u8]>,
{
    Ok(t.get(key)?
        .and_then(|v| {
            v.value()
                .get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        })
        .unwrap_or(0))
}

/// What the trees hold: stored keys and values plus page and tree metadata. Free pages,
/// pages a compaction freed but redb has not yet recycled (it recycles them only after
/// later durable commits), and unused room inside pages do not count, so the figure falls
/// as soon as a compaction commits, and a fresh file counts only its data.
fn bytes_in_use(st: &redb::DatabaseStats) -> u64 {
    st.stored_bytes() + st.metadata_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KEY_TABLE;

    #[test]
    fn consistent_index_is_stored_with_data_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let b = Backend::open(&path, BackendConfig::default()).unwrap();
            assert_eq!(b.consistent_index().unwrap(), (0, 0));
            let mut tx = b.write_tx().unwrap();
            tx.tx
                .open_table(KEY_TABLE)
                .unwrap()
                .insert(b"k".as_slice(), b"v".as_slice())
                .unwrap();
            tx.set_consistent_index(7, 2).unwrap();
            b.commit(tx).unwrap();
            // Visible before it is durable.
            assert_eq!(b.consistent_index().unwrap(), (7, 2));
            b.force_commit().unwrap();
            assert_eq!(b.durable_index(), 7);
        }
        let b = Backend::open(&path, BackendConfig::default()).unwrap();
        assert_eq!(b.consistent_index().unwrap(), (7, 2));
        assert_eq!(b.durable_index(), 7);
        let rtx = b.read_tx().unwrap();
        let t = rtx.open_table(KEY_TABLE).unwrap();
        assert_eq!(t.get(b"k".as_slice()).unwrap().unwrap().value(), b"v");
    }
}
