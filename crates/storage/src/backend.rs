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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
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
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            batch_limit: 10_000,
            batch_interval: Duration::from_millis(100),
            cache_bytes: 64 << 20,
        }
    }
}

struct BatchState {
    pending: usize,
    last_durable: Instant,
    /// Consistent index of the newest commit, durable or not.
    latest_index: u64,
}

/// The redb-backed store shared by MVCC, leases and cluster metadata.
pub struct Backend {
    db: Database,
    path: PathBuf,
    cfg: BackendConfig,
    batch: Mutex<BatchState>,
    durable_index: AtomicU64,
    /// Bytes in use by live data as of the last [`Backend::force_commit`]: redb computes
    /// it inside a write transaction, which Status must not open (it would wait for, and
    /// then hold up, the apply loop).
    in_use: AtomicU64,
}

/// An open write transaction. Commit it with [`Backend::commit`].
pub struct WriteTx {
    pub tx: redb::WriteTransaction,
    consistent_index: Option<u64>,
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
}

impl Backend {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, cfg: BackendConfig) -> Result<Backend> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::builder()
            .set_cache_size(cfg.cache_bytes)
            .create(path)?;
        // Create every table up front so read transactions never miss one.
        let tx = db.begin_write()?;
        for t in SNAPSHOT_TABLES {
            tx.open_table(t)?;
        }
        tx.open_table(META_TABLE)?;
        tx.commit()?;
        let backend = Backend {
            db,
            path: path.to_path_buf(),
            cfg,
            batch: Mutex::new(BatchState {
                pending: 0,
                last_durable: Instant::now(),
                latest_index: 0,
            }),
            durable_index: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
        };
        backend.force_commit()?;
        let (ci, _) = backend.consistent_index()?;
        backend.durable_index.store(ci, Ordering::Release);
        backend.batch.lock().latest_index = ci;
        Ok(backend)
    }

    /// Begins a write transaction (redb allows one at a time; callers serialize on it).
    pub fn write_tx(&self) -> Result<WriteTx> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::None)?;
        Ok(WriteTx {
            tx,
            consistent_index: None,
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

    /// Makes every earlier non-durable commit durable.
    pub fn force_commit(&self) -> Result<()> {
        let tx = self.db.begin_write()?;
        if let Ok(st) = tx.stats() {
            let used = st.stored_bytes() + st.metadata_bytes() + st.fragmented_bytes();
            self.in_use.store(used, Ordering::Release);
        }
        let mut b = self.batch.lock();
        self.commit_locked(
            &mut b,
            WriteTx {
                tx,
                consistent_index: None,
            },
            true,
        )
    }

    fn commit_locked(&self, b: &mut BatchState, mut tx: WriteTx, durable: bool) -> Result<()> {
        if !durable {
            tx.tx.set_durability(Durability::None)?;
        } else {
            tx.tx.set_durability(Durability::Immediate)?;
        }
        let ci = tx.consistent_index;
        fail::fail_point!("beforeCommit");
        tx.tx.commit()?;
        fail::fail_point!("afterCommit");
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
        Ok(self.db.begin_read()?)
    }

    /// The consistent index and term stored with the data (0, 0 for a new database).
    pub fn consistent_index(&self) -> Result<(u64, u64)> {
        let rtx = self.read_tx()?;
        let t = rtx.open_table(META_TABLE)?;
        let get = |k: &str| -> Result<u64> {
            Ok(t.get(k)?
                .map(|v| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&v.value()[..8]);
                    u64::from_be_bytes(b)
                })
                .unwrap_or(0))
        };
        Ok((get(META_CONSISTENT_INDEX)?, get(META_TERM)?))
    }

    /// Re-reads the consistent index after the tables were replaced wholesale (a snapshot
    /// was installed) and treats it as durable (the install committed durably).
    pub fn reload_consistent_index(&self) -> Result<()> {
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

    /// The database file's size in bytes (etcd's `dbSize`).
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes of the file in use by live data (etcd's `dbSizeInUse`), as of the last
    /// durable commit the apply loop forced (when idle, at snapshots and at shutdown).
    pub fn size_in_use(&self) -> u64 {
        match self.in_use.load(Ordering::Acquire) {
            0 => self.size(),
            used => used,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
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
