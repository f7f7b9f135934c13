//! Online defragmentation: rewrites the database into a new, compact file while reads and
//! writes go on (etcd stops all writes for the whole of its defrag).
//!
//! Steps:
//! 1. Briefly exclusive: wait for the write transaction in flight, start logging the
//!    key-table deletions of every later commit, and open a read transaction R0.
//! 2. Online: copy the key table from R0 into `<db>.defrag`, in bounded transactions.
//! 3. Online, a few rounds: open a newer read transaction, copy the key-table rows above
//!    the last key copied (revisions only grow), then replay the logged deletions.
//! 4. Exclusive (short: only what changed since the last round): the same once more from
//!    the latest commit, plus every other table wholesale (they are small); commit the new
//!    file durably, rename it over the database, fsync the directory, swap it in.
//!
//! Invariants:
//! - Until the rename the database file is untouched; after it, the file at the path is
//!   complete and durable. A crash at any point leaves a database that opens with all its
//!   data; [`Backend::open`] removes a leftover `<db>.defrag`.
//! - Rows of the key table are never rewritten in place: a row is added once (at a new
//!   revision) and deleted only by compaction, which logs it ([`WriteTx::note_key_deleted`]).
//!   Deletions are replayed after the rows they may hit were copied.
//! - A wholesale replacement of the tables (a Raft snapshot install) while it runs makes
//!   the defragmentation fail, leaving the database as it was.
//!
//! [`WriteTx::note_key_deleted`]: crate::WriteTx::note_key_deleted

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle};

use crate::backend::{defrag_tmp_path, open_db, Backend};
use crate::schema::{BytesTable, KEY_TABLE, META_TABLE, SNAPSHOT_TABLES};
use crate::{Error, Result};

/// Rows per new-file write transaction, in bytes.
const TX_BYTES: usize = 4 << 20;
/// The new file is made durable every this many bytes, spreading its writeback.
const DURABLE_BYTES: usize = 64 << 20;
/// Online catch-up rounds at most before the exclusive phase.
const MAX_ROUNDS: usize = 8;
/// A round that copied less than this goes straight to the exclusive phase.
const SMALL_ROUND_BYTES: usize = 1 << 20;

/// Points of a defragmentation, for crash tests ([`Backend::defragment_observed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragStage {
    /// The key table of the first read transaction is in the new file (online).
    Copied,
    /// Inside the exclusive phase, the new file complete and durable, not renamed yet.
    NewFileDurable,
    /// The new file was renamed over the database (directory not fsynced yet).
    Renamed,
    /// The new database is in use.
    Swapped,
}

/// What a defragmentation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragReport {
    /// File size before.
    pub size_before: u64,
    /// File size after.
    pub size_after: u64,
    /// Online catch-up rounds run.
    pub rounds: usize,
    /// How long writes were held (the exclusive phase).
    pub exclusive: Duration,
}

impl Backend {
    /// Defragments the database online (etcd's `Maintenance.Defragment`, without stopping
    /// writes). Fails if another defragmentation is running or the tables were replaced
    /// wholesale meanwhile; on failure the database is as it was.
    pub fn defragment(&self) -> Result<DefragReport> {
        self.defragment_observed(|_| Ok(()))
    }

    /// [`Backend::defragment`], calling `at` at each [`DefragStage`]; an error from `at`
    /// stops the defragmentation there (crash tests copy the files at each stage).
    pub fn defragment_observed(
        &self,
        mut at: impl FnMut(DefragStage) -> Result<()>,
    ) -> Result<DefragReport> {
        let Some(_one) = self.defrag_running.try_lock() else {
            return Err(Error::Defrag("a defragmentation is already running".into()));
        };
        let size_before = self.size();
        let generation = self.generation.load(Ordering::Acquire);
        let tmp = defrag_tmp_path(self.path());
        let mut cleanup = Cleanup {
            backend: self,
            tmp: Some(tmp.clone()),
        };
        if tmp.exists() {
            std::fs::remove_file(&tmp)?;
        }
        let new = open_db(&tmp, self.config())?;
        let r0 = self.exclusive(|old, _| {
            *self.defrag_log.lock() = Some(Vec::new());
            Ok(old.begin_read()?)
        })?;
        let mut copier = Copier {
            new,
            last_key: None,
            since_durable: 0,
        };
        copier.copy_keys(&r0)?;
        drop(r0);
        at(DefragStage::Copied)?;

        let mut rounds = 0;
        while rounds < MAX_ROUNDS {
            rounds += 1;
            self.check_generation(generation)?;
            let r = self.read_tx()?;
            let copied = copier.copy_keys(&r)?;
            drop(r);
            let deleted = copier.replay_deletions(self)?;
            if copied + deleted * 17 < SMALL_ROUND_BYTES {
                break;
            }
        }

        // Flush the bulk of the new file before writes are held, so the exclusive phase
        // only writes back what it copies itself.
        copier.make_durable()?;
        let started = Instant::now();
        self.exclusive(|old, replacement| {
            self.check_generation(generation)?;
            let r = old.begin_read()?;
            copier.copy_keys(&r)?;
            copier.replay_deletions(self)?;
            copier.copy_small_tables(&r)?;
            at(DefragStage::NewFileDurable)?;
            std::fs::rename(&tmp, self.path())?;
            cleanup.tmp = None;
            *replacement = Some(copier.new);
            at(DefragStage::Renamed)?;
            if let Some(dir) = self.path().parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })?;
        let exclusive = started.elapsed();
        drop(cleanup);
        at(DefragStage::Swapped)?;
        let report = DefragReport {
            size_before,
            size_after: self.size(),
            rounds,
            exclusive,
        };
        tracing::info!(?report, "defragmented backend");
        Ok(report)
    }

    fn check_generation(&self, generation: u64) -> Result<()> {
        if self.generation.load(Ordering::Acquire) != generation {
            return Err(Error::Defrag(
                "the backend was replaced by a snapshot meanwhile; retry".into(),
            ));
        }
        Ok(())
    }
}

/// Stops the deletion log and removes the unfinished new file, however the
/// defragmentation ends.
struct Cleanup<'a> {
    backend: &'a Backend,
    tmp: Option<PathBuf>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        *self.backend.defrag_log.lock() = None;
        if let Some(tmp) = self.tmp.take() {
            if let Err(e) = std::fs::remove_file(&tmp) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %tmp.display(), "cannot remove: {e}");
                }
            }
        }
    }
}

/// Writes into the new file.
struct Copier {
    new: Database,
    /// The greatest key-table key copied so far.
    last_key: Option<Vec<u8>>,
    since_durable: usize,
}

impl Copier {
    fn begin(&self) -> Result<redb::WriteTransaction> {
        let mut tx = self.new.begin_write()?;
        tx.set_durability(Durability::None)?;
        Ok(tx)
    }

    fn commit(&mut self, mut tx: redb::WriteTransaction, bytes: usize, last: bool) -> Result<()> {
        self.since_durable += bytes;
        if last || self.since_durable >= DURABLE_BYTES {
            tx.set_durability(Durability::Immediate)?;
            self.since_durable = 0;
        }
        tx.commit()?;
        Ok(())
    }

    fn make_durable(&mut self) -> Result<()> {
        let tx = self.begin()?;
        self.commit(tx, 0, true)
    }

    /// Copies the key-table rows of `r` above `last_key`; returns the bytes copied.
    fn copy_keys(&mut self, r: &ReadTransaction) -> Result<usize> {
        let src = r.open_table(KEY_TABLE)?;
        let lower = match &self.last_key {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => Bound::Unbounded,
        };
        let mut total = 0;
        let mut iter = src.range::<&[u8]>((lower, Bound::Unbounded))?.peekable();
        while iter.peek().is_some() {
            let tx = self.begin()?;
            let mut bytes = 0;
            {
                let mut dst = tx.open_table(KEY_TABLE)?;
                for row in iter.by_ref() {
                    let (k, v) = row?;
                    dst.insert(k.value(), v.value())?;
                    bytes += k.value().len() + v.value().len();
                    self.last_key = Some(k.value().to_vec());
                    if bytes >= TX_BYTES {
                        break;
                    }
                }
            }
            total += bytes;
            self.commit(tx, bytes, false)?;
        }
        Ok(total)
    }

    /// Applies the key-table deletions logged so far; returns how many.
    fn replay_deletions(&mut self, backend: &Backend) -> Result<usize> {
        let deleted = match backend.defrag_log.lock().as_mut() {
            Some(log) => std::mem::take(log),
            None => return Ok(0),
        };
        if deleted.is_empty() {
            return Ok(0);
        }
        let tx = self.begin()?;
        {
            let mut dst = tx.open_table(KEY_TABLE)?;
            for k in &deleted {
                dst.remove(k.as_slice())?;
            }
        }
        self.commit(tx, deleted.len() * 17, false)?;
        Ok(deleted.len())
    }

    /// Copies every table but the key table from `r`, and commits durably.
    fn copy_small_tables(&mut self, r: &ReadTransaction) -> Result<()> {
        let tx = self.begin()?;
        {
            let others = SNAPSHOT_TABLES
                .iter()
                .filter(|t| t.name() != KEY_TABLE.name());
            for def in others {
                copy_table(r, &tx, *def)?;
            }
            let src = r.open_table(META_TABLE)?;
            let mut dst = tx.open_table(META_TABLE)?;
            dst.retain(|_, _| false)?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
            }
        }
        self.commit(tx, 0, true)
    }
}

fn copy_table(r: &ReadTransaction, tx: &redb::WriteTransaction, def: BytesTable) -> Result<()> {
    let src = r.open_table(def)?;
    let mut dst = tx.open_table(def)?;
    dst.retain(|_, _| false)?;
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "defrag_tests.rs"]
mod tests;
