//! The Raft log: entries, hard state, conf state and snapshot metadata on raft-engine
//! (`<data-dir>/member/wal`), served to raft-rs through its [`Storage`] trait.
//!
//! Invariants:
//! - [`RaftLog::persist`] returns only after the entries and hard state are fsynced; raft-rs
//!   is told an entry is persisted only after that, so nothing acknowledged is lost.
//! - Entries are contiguous from `first_index()` (= snapshot index + 1) to `last_index()`.
//!   Appending at index `i` drops every existing entry at `>= i` (a follower's log conflict).
//! - A torn last record (crash mid-write) is dropped on open, as etcd repairs a torn WAL tail;
//!   corruption anywhere else makes [`RaftLog::open`] fail with [`Error::Corrupt`].
//! - Recent entries are also kept in memory ([`EntryCache`]) so the apply path and follower
//!   replication do not re-read and re-decode them from disk.

use std::collections::VecDeque;
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use crate::{Error, Result};

/// The single raft group oxcd keeps in the engine.
const GROUP: u64 = 1;
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Entries kept in memory beyond what raft-engine holds on disk.
const CACHE_MAX_ENTRIES: usize = 4096;
const CACHE_MAX_BYTES: usize = 64 << 20;

#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;
    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Newest entries in memory, contiguous, ending at the log's last index.
#[derive(Default)]
struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl EntryCache {
    fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        // Drop conflicting suffix, or everything if the new entries are not contiguous.
        match self.entries.front().map(|e| e.index) {
            Some(front)
                if first.index >= front && first.index <= front + self.entries.len() as u64 =>
            {
                let keep = (first.index - front) as usize;
                for e in self.entries.drain(keep..) {
                    self.bytes -= e.compute_size() as usize;
                }
            }
            _ => {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        for e in ents {
            self.bytes += e.compute_size() as usize;
            self.entries.push_back(e.clone());
        }
        while self.entries.len() > CACHE_MAX_ENTRIES || self.bytes > CACHE_MAX_BYTES {
            match self.entries.pop_front() {
                Some(e) => self.bytes -= e.compute_size() as usize,
                None => break,
            }
        }
    }

    fn get(&self, idx: u64) -> Option<&Entry> {
        let front = self.entries.front()?.index;
        if idx < front {
            return None;
        }
        self.entries.get((idx - front) as usize)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// The durable Raft log of this member.
pub struct RaftLog {
    engine: Engine,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    last_index: u64,
    cache: EntryCache,
}

impl RaftLog {
    /// Opens (creating if needed) the log in `dir`. Returns an error on corruption that is
    /// not a torn tail.
    pub fn open(dir: &Path) -> Result<RaftLog> {
        std::fs::create_dir_all(dir)?;
        let cfg = Config {
            dir: dir.to_string_lossy().into_owned(),
            recovery_mode: RecoveryMode::TolerateTailCorruption,
            target_file_size: ReadableSize::mb(64),
            purge_threshold: ReadableSize::mb(256),
            // Recycled files keep their size, so fdatasync need not flush file metadata.
            format_version: raft_engine::Version::V2,
            enable_log_recycle: true,
            batch_compression_threshold: ReadableSize(0),
            ..Config::default()
        };
        let engine = Engine::open(cfg).map_err(|e| match e {
            raft_engine::Error::Corruption(m) => Error::Corrupt(m),
            other => Error::RaftLog(other),
        })?;
        let hard_state: HardState = engine
            .get_message(GROUP, KEY_HARD_STATE)?
            .unwrap_or_default();
        let conf_state: ConfState = engine
            .get_message(GROUP, KEY_CONF_STATE)?
            .unwrap_or_default();
        let snapshot_meta: SnapshotMetadata = engine
            .get_message(GROUP, KEY_SNAPSHOT_META)?
            .unwrap_or_default();
        let last_index = engine
            .last_index(GROUP)
            .unwrap_or(snapshot_meta.index)
            .max(snapshot_meta.index);
        if let Some(first) = engine.first_index(GROUP) {
            if first > snapshot_meta.index + 1 {
                return Err(Error::Corrupt(format!(
                    "raft log starts at index {first} but the last snapshot is at {}",
                    snapshot_meta.index
                )));
            }
        }
        Ok(RaftLog {
            engine,
            hard_state,
            conf_state,
            snapshot_meta,
            last_index,
            cache: EntryCache::default(),
        })
    }

    /// Whether the log has never been written (a new member).
    pub fn is_new(&self) -> bool {
        self.last_index == 0
            && self.hard_state == HardState::default()
            && self.conf_state.voters.is_empty()
    }

    /// Writes the initial membership of a new cluster.
    pub fn bootstrap(&mut self, conf_state: ConfState) -> Result<()> {
        let mut batch = LogBatch::default();
        batch.put_message(GROUP, KEY_CONF_STATE.to_vec(), &conf_state)?;
        self.engine.write(&mut batch, true)?;
        self.conf_state = conf_state;
        Ok(())
    }

    /// Durably appends `entries` and/or saves `hard_state`, in one fsynced write.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<()> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut batch = LogBatch::default();
        if !entries.is_empty() {
            // raft-engine drops existing entries at or after the first new index (a conflict).
            batch.add_entries::<EntryExt>(GROUP, entries)?;
        }
        if let Some(hs) = hard_state {
            batch.put_message(GROUP, KEY_HARD_STATE.to_vec(), hs)?;
        }
        self.engine.write(&mut batch, true)?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
            self.cache.append(entries);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Saves a new membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<()> {
        let mut batch = LogBatch::default();
        batch.put_message(GROUP, KEY_CONF_STATE.to_vec(), &cs)?;
        self.engine.write(&mut batch, true)?;
        self.conf_state = cs;
        Ok(())
    }

    /// Updates only the commit index of the hard state (raft-rs's `Ready::committed` /
    /// `LightReady::commit_index`), durably.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }

    /// Marks everything up to `index` as covered by a snapshot (the backend holds it
    /// durably) and drops those entries from disk.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.snapshot_meta.index || index > self.last_index {
            return Ok(());
        }
        let term = self
            .term(index)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        let mut batch = LogBatch::default();
        batch.put_message(GROUP, KEY_SNAPSHOT_META.to_vec(), &meta)?;
        self.engine.write(&mut batch, true)?;
        self.snapshot_meta = meta;
        // compact_to(i) keeps index i and later; the entry at `index` itself is covered.
        self.engine.compact_to(GROUP, index + 1);
        self.engine.purge_expired_files()?;
        Ok(())
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let mut batch = LogBatch::default();
        batch.put_message(GROUP, KEY_SNAPSHOT_META.to_vec(), meta)?;
        batch.put_message(GROUP, KEY_CONF_STATE.to_vec(), meta.get_conf_state())?;
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        batch.put_message(GROUP, KEY_HARD_STATE.to_vec(), &hs)?;
        self.engine.write(&mut batch, true)?;
        self.engine.compact_to(GROUP, meta.index + 1);
        self.snapshot_meta = meta.clone();
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state = hs;
        self.last_index = self.last_index.max(meta.index);
        if self.last_index == meta.index {
            self.cache.clear();
        }
        Ok(())
    }

    /// The hard state last persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The membership last persisted.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Index of the last snapshot (entries up to it are compacted away).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_meta.index
    }

    fn entry(&self, idx: u64) -> raft::Result<Entry> {
        if let Some(e) = self.cache.get(idx) {
            return Ok(e.clone());
        }
        match self.engine.get_entry::<EntryExt>(GROUP, idx) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(raft::Error::Store(StorageError::Unavailable)),
            Err(e) => Err(raft::Error::Store(StorageError::Other(Box::new(e)))),
        }
    }
}

impl Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_meta.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        for idx in low..high {
            let e = self.entry(idx)?;
            size += u64::from(e.compute_size());
            // raft-rs expects at least one entry even when it exceeds max_size.
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_meta.index {
            return Ok(self.snapshot_meta.term);
        }
        if idx < self.snapshot_meta.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_meta.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Sending the backend to a lagging follower belongs to the cluster issue; a single
        // member never asks for one.
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_and_state_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RaftLog::open(dir.path()).unwrap();
            assert!(log.is_new());
            log.bootstrap(ConfState {
                voters: vec![7],
                ..Default::default()
            })
            .unwrap();
            let hs = HardState {
                term: 2,
                vote: 7,
                commit: 3,
                ..Default::default()
            };
            log.persist(
                &[ent(1, 1, b"a"), ent(2, 2, b"b"), ent(3, 2, b"c")],
                Some(&hs),
            )
            .unwrap();
        }
        let log = RaftLog::open(dir.path()).unwrap();
        assert!(!log.is_new());
        assert_eq!(log.last_index().unwrap(), 3);
        assert_eq!(log.first_index().unwrap(), 1);
        assert_eq!(log.term(2).unwrap(), 2);
        assert_eq!(log.hard_state().commit, 3);
        assert_eq!(log.conf_state().voters, vec![7]);
        let es = log
            .entries(1, 4, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            es.iter().map(|e| e.data.to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn conflicting_append_replaces_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path()).unwrap();
        log.persist(&[ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 1, b"c")], None)
            .unwrap();
        log.persist(&[ent(2, 2, b"x")], None).unwrap();
        assert_eq!(log.last_index().unwrap(), 2);
        assert_eq!(log.term(2).unwrap(), 2);
        assert!(log.term(3).is_err());
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.term(2).unwrap(), 2);
        let es = log
            .entries(1, 3, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(es[1].data.to_vec(), b"x".to_vec());
    }

    #[test]
    fn compaction_moves_first_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path()).unwrap();
        let es: Vec<Entry> = (1..=10).map(|i| ent(i, 1, b"v")).collect();
        log.persist(&es, None).unwrap();
        log.compact(6).unwrap();
        assert_eq!(log.first_index().unwrap(), 7);
        assert_eq!(log.term(6).unwrap(), 1);
        assert!(matches!(
            log.entries(5, 8, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.first_index().unwrap(), 7);
        assert_eq!(log.last_index().unwrap(), 10);
        assert_eq!(
            log.entries(7, 11, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            4
        );
    }
}
