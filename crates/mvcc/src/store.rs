//! The MVCC store: etcd's `store` (`server/storage/mvcc/kvstore.go`) over the redb backend.
//!
//! Concurrency model:
//! - Exactly one writer (the server's apply loop) and many concurrent readers. A write runs
//!   in a backend [`WriteTx`] owned by the caller: [`Store::write`] starts a
//!   [`WriteTxn`] in it, and several write txns (one per raft entry) may run
//!   one after another in one `WriteTx`, each with its own main revision, each seeing the
//!   ones before it. The caller then commits the `WriteTx` and calls [`Store::publish`].
//! - Two revisions are kept: the write-side *current* revision (the last write txn that
//!   ended) and the *published* revision (the last one whose `WriteTx` committed). Readers
//!   ([`Store::read`]) only ever see the published revision or older ones: they read the
//!   shared index filtered at that revision and a backend read transaction opened after
//!   the revision was published.
//! - The index sits behind one `RwLock` together with the compaction revision, taken for
//!   one index lookup or update at a time, never across a whole request.
//!
//! Invariants:
//! - An empty store's current revision is 1 (as etcd's); the compaction revision starts
//!   at -1 (nothing compacted).
//! - Every revision in the index up to the published revision has its record in the
//!   backend's key table (compaction deletes only revisions it also drops from the index).
//! - A `WriteTx` whose write txns or compaction touched the store must be committed, or the
//!   store discarded (reopened): the index is updated in place, as etcd's is, and a failed
//!   commit is fatal to the server anyway.
//! - [`Store::compact`] is synchronous, inside the caller's `WriteTx`; [`Store::compact_logical`]
//!   does only the index part there and leaves the backend part to bounded steps
//!   ([`crate::compaction`], etcd's background batches). The synchronous one: scheduledCompactRev, the index compaction, the deletion
//!   of every compacted revision from the key table and finishedCompactRev are all written
//!   in that one transaction. Readers see the new compaction revision at once (reads below
//!   it fail with `Compacted`); compacting at a revision newer than the published one
//!   (written in the same, not yet committed batch) therefore makes reads at the published
//!   revision fail with `Compacted` until the batch is published.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use oxcd_api::mvccpb::{Event, KeyValue};
use oxcd_storage::schema::{KEY_TABLE, META_TABLE};
use oxcd_storage::{Backend, WriteTx};
use parking_lot::{Mutex, RwLock};
use prost::Message;
use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::index::TreeIndex;
use crate::read::{RangeOptions, RangeResult, ReadTxn, ReadView};
use crate::revision::{is_tombstone, Revision};
use crate::write::WriteTxn;

/// META_TABLE key of the revision of the last compaction started (etcd's name).
pub const SCHEDULED_COMPACT_KEY: &str = oxcd_storage::schema::META_SCHEDULED_COMPACT_REV;
/// META_TABLE key of the revision of the last compaction finished (etcd's name).
pub const FINISHED_COMPACT_KEY: &str = oxcd_storage::schema::META_FINISHED_COMPACT_REV;

/// The index and the compaction revision, changed together under one lock so that a
/// reader never sees a compacted index with an older compaction revision.
#[derive(Debug)]
pub(crate) struct Indexed {
    pub(crate) tree: TreeIndex,
    pub(crate) compact_rev: i64,
}

/// The multi-version key-value store.
pub struct Store {
    backend: Arc<Backend>,
    pub(crate) index: RwLock<Indexed>,
    /// Write side: the revision of the last write txn that ended.
    pub(crate) current_rev: AtomicI64,
    /// Read side: the last revision whose backend transaction committed.
    published_rev: AtomicI64,
    /// Held by the one writer (a write txn or a compaction) for its duration.
    pub(crate) writer: Mutex<()>,
    /// The watchable store, once one is attached: it receives each published batch's
    /// events (see [`crate::watch`]).
    pub(crate) watch_sink: OnceLock<Weak<dyn EventSink>>,
    /// Events of the write txns ended since the last publish (only kept while a sink is
    /// attached).
    pub(crate) pending_events: Mutex<Vec<Event>>,
}

/// Receives, in revision order, the events of every published batch (the watchable store).
/// Called by [`Store::publish`] on the writer's thread; must not block for long.
pub(crate) trait EventSink: Send + Sync {
    fn published(&self, rev: i64, events: Vec<Event>);
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("current_rev", &self.current_revision())
            .field("published_rev", &self.published_revision())
            .field("compact_rev", &self.compact_revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store on `backend`: rebuilds the index from the key table (in revision
    /// order, as etcd's restore), reads the compaction revisions and redoes a compaction
    /// that was scheduled but not finished. Everything found is published.
    pub fn open(backend: Arc<Backend>) -> Result<Store> {
        let rtx = backend.read_tx()?;
        let meta = rtx.open_table(META_TABLE)?;
        let finished = read_meta_rev(&meta, FINISHED_COMPACT_KEY)?;
        let scheduled = read_meta_rev(&meta, SCHEDULED_COMPACT_KEY)?;
        let compact_rev = finished.unwrap_or(-1);

        let keys = rtx.open_table(KEY_TABLE)?;
        let mut tree = TreeIndex::new();
        let mut current_rev = 1;
        for entry in keys.iter()? {
            let (k, v) = entry?;
            let (k, v) = (k.value(), v.value());
            let rev = Revision::from_bytes(k)
                .ok_or_else(|| Error::Corrupt(format!("bad revision key {k:?}")))?;
            let kv = decode_kv(rev, v)?;
            current_rev = rev.main;
            if is_tombstone(k) {
                tree.restore_tombstone(&kv.key, rev);
            } else {
                tree.restore_put(
                    &kv.key,
                    rev,
                    Revision::new(kv.create_revision, 0),
                    kv.version,
                );
            }
        }
        drop((keys, meta, rtx));
        // The revisions up to the compaction revision may all have been deleted.
        let current_rev = current_rev.max(compact_rev);

        let store = Store {
            backend: Arc::clone(&backend),
            index: RwLock::new(Indexed { tree, compact_rev }),
            current_rev: AtomicI64::new(current_rev),
            published_rev: AtomicI64::new(current_rev),
            writer: Mutex::new(()),
            watch_sink: OnceLock::new(),
            pending_events: Mutex::new(Vec::new()),
        };
        if let Some(scheduled) = scheduled.filter(|&s| s > compact_rev) {
            tracing::info!(
                scheduled,
                finished = compact_rev,
                "redoing unfinished compaction"
            );
            let mut wtx = backend.write_tx()?;
            match store.compact(&mut wtx, scheduled) {
                Ok(_) => backend.commit_durable(wtx)?,
                Err(e @ (Error::Compacted | Error::FutureRev)) => {
                    tracing::warn!(scheduled, "compaction encountered error: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(
            current_rev,
            compact_rev = store.compact_revision(),
            keys = store.index.read().tree.len(),
            "mvcc store opened"
        );
        Ok(store)
    }

    /// The backend the store lives in.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// The revision of the last write txn that ended (committed or not).
    pub fn current_revision(&self) -> i64 {
        self.current_rev.load(Ordering::Acquire)
    }

    /// The revision readers see: the last one published after its commit.
    pub fn published_revision(&self) -> i64 {
        self.published_rev.load(Ordering::Acquire)
    }

    /// The last compaction revision (-1 if the store was never compacted).
    pub fn compact_revision(&self) -> i64 {
        self.index.read().compact_rev
    }

    /// Makes every write txn ended so far visible to readers. Call it after the `WriteTx`
    /// holding them committed.
    /// With a watchable store attached, it then hands it the batch's events.
    pub fn publish(&self) {
        let rev = self.current_revision();
        crate::metrics::KEYS_TOTAL.set(self.index.read().tree.len() as f64);
        self.published_rev.store(rev, Ordering::Release);
        if let Some(sink) = self.watch_sink.get().and_then(Weak::upgrade) {
            let events = std::mem::take(&mut *self.pending_events.lock());
            sink.published(rev, events);
        }
    }

    /// Whether write txns must keep their events for a watchable store.
    pub(crate) fn keeps_events(&self) -> bool {
        self.watch_sink.get().is_some_and(|w| w.strong_count() > 0)
    }

    /// A consistent read view at the published revision.
    pub fn read(&self) -> Result<ReadTxn<'_>> {
        // Load the revision before opening the backend transaction: the data of a published
        // revision was committed before it was published, so the transaction holds it.
        let rev = self.published_revision();
        let rtx = self.backend.read_tx()?;
        let table = rtx.open_table(KEY_TABLE)?;
        Ok(ReadTxn::new(self, rev, table))
    }

    /// Range over the published revision (a read view of its own).
    pub fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        self.read()?.range(key, end, opts)
    }

    /// Starts a write txn in `wtx`, at main revision `current + 1`.
    pub fn write<'a>(&'a self, wtx: &'a mut WriteTx) -> Result<WriteTxn<'a>> {
        let guard = self.writer.lock();
        let wtx: &'a WriteTx = wtx;
        let table = wtx.tx.open_table(KEY_TABLE)?;
        Ok(WriteTxn::new(self, guard, table, self.current_revision()))
    }

    /// Compacts the store at `rev`, synchronously in `wtx` (see the module doc): every
    /// revision `<= rev` that is not the state of some key at `rev` is removed from the
    /// index and the backend. Returns the number of backend records removed.
    /// `Compacted` if `rev` is not above the last compaction, `FutureRev` if it is above
    /// the current revision. For a compaction whose backend part runs in bounded steps
    /// off the apply path, see [`Store::compact_logical`].
    pub fn compact(&self, wtx: &mut WriteTx, rev: i64) -> Result<usize> {
        let keep = self.compact_index(wtx, rev)?;
        fail::fail_point!("compactBeforeCommit");
        let removed = delete_compacted(wtx, rev, &keep)?;
        fail::fail_point!("compactBeforeSetFinishedCompact");
        write_meta_rev(wtx, FINISHED_COMPACT_KEY, rev)?;
        fail::fail_point!("compactAfterCommit");
        tracing::info!(rev, removed, kept = keep.len(), "compacted mvcc store");
        Ok(removed)
    }

    /// The logical part of a compaction: checks `rev`, writes scheduledCompactRev in
    /// `wtx`, compacts the index and sets the compaction revision. Returns the revisions
    /// `<= rev` the backend must keep.
    pub(crate) fn compact_index(&self, wtx: &mut WriteTx, rev: i64) -> Result<HashSet<Revision>> {
        let _writer = self.writer.lock();
        let mut idx = self.index.write();
        if rev <= idx.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.current_revision() {
            return Err(Error::FutureRev);
        }
        write_meta_rev(wtx, SCHEDULED_COMPACT_KEY, rev)?;
        let keep = idx.tree.compact(rev);
        idx.compact_rev = rev;
        Ok(keep)
    }

    /// etcd's `rangeKeys`: the kvs in the range at `opts.rev` (<= 0: `cur_rev`), read from
    /// `table`, for a view whose newest revision is `cur_rev`.
    pub(crate) fn range_keys<T>(
        &self,
        table: &T,
        key: &[u8],
        end: &[u8],
        cur_rev: i64,
        opts: RangeOptions,
    ) -> Result<RangeResult>
    where
        T: ReadableTable<&'static [u8], &'static [u8]>,
    {
        if opts.rev > cur_rev {
            return Err(Error::FutureRev);
        }
        let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
        let limit = usize::try_from(opts.limit).unwrap_or(0);
        let (revs, total) = {
            let idx = self.index.read();
            if rev < idx.compact_rev {
                return Err(Error::Compacted);
            }
            if opts.count_only {
                let count = idx.tree.count_revisions(key, end, rev);
                return Ok(RangeResult {
                    kvs: Vec::new(),
                    rev: cur_rev,
                    count: count as i64,
                });
            }
            idx.tree.revisions(key, end, rev, limit)
        };
        let mut kvs = Vec::with_capacity(revs.len());
        for r in revs {
            let v = table.get(r.to_bytes().as_slice())?.ok_or_else(|| {
                Error::Corrupt(format!(
                    "revision {r} is in the index but not in the backend"
                ))
            })?;
            kvs.push(decode_kv(r, v.value())?);
        }
        Ok(RangeResult {
            kvs,
            rev: cur_rev,
            count: total as i64,
        })
    }
}

/// Decodes the record stored at `rev`.
pub(crate) fn decode_kv(rev: Revision, v: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(v).map_err(|e| Error::Corrupt(format!("record at revision {rev}: {e}")))
}

/// Reads a compaction revision stored as etcd does (a 17-byte revision key).
fn read_meta_rev<T>(meta: &T, key: &str) -> Result<Option<i64>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(v) = meta.get(key)? else {
        return Ok(None);
    };
    let rev = Revision::from_bytes(v.value())
        .ok_or_else(|| Error::Corrupt(format!("bad {key} value {:?}", v.value())))?;
    Ok(Some(rev.main))
}

pub(crate) fn write_meta_rev(wtx: &mut WriteTx, key: &str, rev: i64) -> Result<()> {
    let mut meta = wtx.tx.open_table(META_TABLE)?;
    meta.insert(key, Revision::new(rev, 0).to_bytes().as_slice())?;
    Ok(())
}

/// Deletes from the key table every revision `<= rev` not in `keep`.
fn delete_compacted(wtx: &WriteTx, rev: i64, keep: &HashSet<Revision>) -> Result<usize> {
    let mut table = wtx.tx.open_table(KEY_TABLE)?;
    let end = Revision::new(rev.saturating_add(1), 0).to_bytes();
    let mut removed = 0;
    table.retain_in::<&[u8], _>(..end.as_slice(), |k, _| match Revision::from_bytes(k) {
        Some(r) if !keep.contains(&r) => {
            removed += 1;
            wtx.note_key_deleted(k);
            false
        }
        _ => true,
    })?;
    Ok(removed)
}

#[cfg(test)]
mod tests;

impl Store {
    /// Rebuilds the index and revisions from the backend after its tables were replaced
    /// wholesale (a Raft snapshot from the leader was installed).
    pub fn reload(&self) -> Result<()> {
        let _writer = self.writer.lock();
        let fresh = Store::open(Arc::clone(&self.backend))?;
        let rev = fresh.current_revision();
        *self.index.write() = fresh.index.into_inner();
        self.current_rev.store(rev, Ordering::Release);
        self.published_rev.store(rev, Ordering::Release);
        self.watchers_skip_to(rev);
        Ok(())
    }

    /// Tells the watchable store that the revisions up to `rev` came without events (a
    /// snapshot was installed): its watchers are caught up from the backend.
    fn watchers_skip_to(&self, rev: i64) {
        self.pending_events.lock().clear();
        if let Some(sink) = self.watch_sink.get().and_then(Weak::upgrade) {
            sink.published(rev, Vec::new());
        }
    }
}
