//! The write txn: etcd's `storeTxnWrite` (`server/storage/mvcc/kvstore_txn.go`).
//!
//! Invariants:
//! - A write txn holds the store's writer lock for its whole life; it writes at main
//!   revision `begin + 1`, its n-th change at sub revision `n`.
//! - Each change goes to the backend key table (in the caller's `WriteTx`) and to the shared
//!   index; readers do not see it until the store publishes a revision covering it.
//! - Its ranges see its own changes: with no change yet they read at `begin`, after one at
//!   `begin + 1` (etcd reads at `beginRev + 1` once there are changes).
//! - When it ends (by [`WriteTxn::end`] or by being dropped, e.g. on an error) the store's
//!   current revision becomes `begin + 1` if it changed anything, so the next write txn
//!   never reuses its revision.
//! - A delete writes a tombstone record (an 18-byte revision key) whose value is a
//!   `KeyValue` holding only the key, as etcd's.

use oxcd_api::mvccpb::{event::EventType, Event, KeyValue};
use parking_lot::MutexGuard;
use prost::Message;
use redb::Table;

use crate::error::Result;
use crate::read::{RangeOptions, RangeResult, ReadView};
use crate::revision::Revision;
use crate::store::Store;

/// One write txn of the store (see the module doc).
pub struct WriteTxn<'a> {
    store: &'a Store,
    _writer: MutexGuard<'a, ()>,
    table: Table<'a, &'static [u8], &'static [u8]>,
    begin_rev: i64,
    /// The kvs written, in order; a delete's kv holds only the key.
    changes: Vec<KeyValue>,
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("begin_rev", &self.begin_rev)
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(
        store: &'a Store,
        writer: MutexGuard<'a, ()>,
        table: Table<'a, &'static [u8], &'static [u8]>,
        begin_rev: i64,
    ) -> WriteTxn<'a> {
        WriteTxn {
            store,
            _writer: writer,
            table,
            begin_rev,
            changes: Vec::new(),
        }
    }

    /// The revision its ranges read at: `begin`, or `begin + 1` once it changed something.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    /// The main revision its changes get.
    fn write_rev(&self) -> i64 {
        self.begin_rev + 1
    }

    /// The kvs changed so far.
    pub fn changes(&self) -> &[KeyValue] {
        &self.changes
    }

    /// Puts `key`, keeping etcd's create revision and version rules: a key that exists
    /// keeps its create revision and gets version + 1; a new key (or one deleted before)
    /// starts a generation at this revision with version 1. Returns the txn's revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64> {
        let rev = self.write_rev();
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        let existing = self.store.index.read().tree.get(key, rev);
        let (create_revision, version) = match existing {
            Some((_, created, ver)) => (created.main, ver + 1),
            None => (rev, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        };
        self.table
            .insert(idx_rev.to_bytes().as_slice(), kv.encode_to_vec().as_slice())?;
        self.store.index.write().tree.put(key, idx_rev);
        self.changes.push(kv);
        Ok(rev)
    }

    /// Deletes the keys live in the range; returns how many, and the revision (the txn's
    /// revision if it changed anything so far, else its begin revision).
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64)> {
        let keys = self
            .store
            .index
            .read()
            .tree
            .range(key, end, self.read_rev());
        for (k, _) in &keys {
            self.delete(k)?;
        }
        let rev = if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.write_rev()
        };
        Ok((keys.len() as i64, rev))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        let idx_rev = Revision::new(self.write_rev(), self.changes.len() as i64);
        let kv = KeyValue {
            key: key.to_vec(),
            ..KeyValue::default()
        };
        self.table.insert(
            idx_rev.to_tombstone_bytes().as_slice(),
            kv.encode_to_vec().as_slice(),
        )?;
        self.store.index.write().tree.tombstone(key, idx_rev)?;
        self.changes.push(kv);
        Ok(())
    }

    /// Ends the txn and returns its changes as watch events: a put's event carries the kv;
    /// a delete's carries the key with `mod_revision` set to the txn's revision (as etcd's
    /// watchable store does). With a watchable store attached, the events are also kept
    /// for it until the next [`Store::publish`].
    pub fn end(mut self) -> Vec<Event> {
        self.finish()
    }

    /// Moves the store's current revision past this txn (if it changed anything) and turns
    /// its changes into events, keeping a copy for the watchable store.
    fn finish(&mut self) -> Vec<Event> {
        let rev = self.write_rev();
        let changes = std::mem::take(&mut self.changes);
        if changes.is_empty() {
            return Vec::new();
        }
        self.store
            .current_rev
            .store(rev, std::sync::atomic::Ordering::Release);
        let events: Vec<Event> = changes
            .into_iter()
            .map(|mut kv| {
                let r#type = if kv.create_revision == 0 {
                    kv.mod_revision = rev;
                    EventType::Delete
                } else {
                    EventType::Put
                };
                Event {
                    r#type: r#type as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            })
            .collect();
        if self.store.keeps_events() {
            self.store
                .pending_events
                .lock()
                .extend(events.iter().cloned());
        }
        events
    }
}

impl Drop for WriteTxn<'_> {
    /// A txn dropped without [`WriteTxn::end`] (e.g. on an error) still consumed its
    /// revision; its changes are in the backend, so watchers get them too.
    fn drop(&mut self) {
        self.finish();
    }
}

impl ReadView for WriteTxn<'_> {
    /// The begin revision (etcd's `storeTxnWrite.Rev`).
    fn rev(&self) -> i64 {
        self.begin_rev
    }

    fn first_rev(&self) -> i64 {
        self.store.compact_revision()
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        self.store
            .range_keys(&self.table, key, end, self.read_rev(), opts)
    }
}
