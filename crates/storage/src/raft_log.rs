//! The Raft log: entries, hard state, conf state and snapshot metadata, persisted in the
//! [`Wal`] (`<data-dir>/member/wal`) and served to raft-rs through its [`Storage`] trait
//! from memory (etcd's WAL + `MemoryStorage`).
//!
//! Invariants:
//! - [`RaftLog::persist`] returns only after the entries and hard state are fsynced; raft-rs
//!   is told an entry is persisted only after that, so nothing acknowledged is lost.
//! - In memory, entries are contiguous from `first_index()` (= snapshot index + 1) to
//!   `last_index()`. Appending at index `i` drops every entry at `>= i` (a log conflict),
//!   in memory and, on replay, from what the WAL gives back.
//! - Every WAL segment starts with the full state (snapshot metadata, conf state, hard
//!   state), so a segment whose entries are all covered by the snapshot can be deleted.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::wal::Wal;
use crate::{Error, Result};

const REC_ENTRY: u8 = 1;
const REC_HARD_STATE: u8 = 2;
const REC_CONF_STATE: u8 = 3;
const REC_SNAPSHOT: u8 = 4;
/// Drop every entry after the recorded index (`--force-new-cluster`).
const REC_TRUNCATE: u8 = 5;

fn put_record(buf: &mut Vec<u8>, kind: u8, msg: &dyn protobuf::Message) -> Result<()> {
    let bytes = msg
        .write_to_bytes()
        .map_err(|e| Error::Corrupt(format!("encoding raft record: {e}")))?;
    buf.push(kind);
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(&bytes);
    Ok(())
}

/// Checks that raft-rs can restore `cs` as it is: raft-rs rebuilds its progress tracker from
/// it and panics ("invalid restore") if the result differs, as it does for zero or repeated
/// ids or a member in two roles, or if it fails ("removed all voters": members but no
/// voter). Used on the recovered state and on peers' snapshots.
pub fn check_conf_state(cs: &ConfState) -> std::result::Result<(), String> {
    let lists = [
        ("voters", &cs.voters),
        ("learners", &cs.learners),
        ("voters_outgoing", &cs.voters_outgoing),
        ("learners_next", &cs.learners_next),
    ];
    for (name, ids) in lists {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(id) = ids.iter().find(|&&id| id == 0 || !seen.insert(id)) {
            return Err(format!("conf state {name} has a zero or repeated id {id}"));
        }
    }
    let both = |a: &[u64], b: &[u64]| a.iter().find(|id| b.contains(id)).copied();
    if let Some(id) = both(&cs.voters, &cs.learners)
        .or_else(|| both(&cs.voters, &cs.learners_next))
        .or_else(|| both(&cs.learners, &cs.learners_next))
        .or_else(|| both(&cs.learners, &cs.voters_outgoing))
    {
        return Err(format!("conf state names member {id} in two roles"));
    }
    if let Some(id) = cs
        .learners_next
        .iter()
        .find(|id| !cs.voters_outgoing.contains(id))
    {
        return Err(format!(
            "conf state learner-next {id} is not an outgoing voter"
        ));
    }
    let others = !cs.learners.is_empty() || !cs.voters_outgoing.is_empty();
    if cs.voters.is_empty() && others {
        return Err("conf state has members but no voter".into());
    }
    if cs.voters_outgoing.is_empty() && cs.auto_leave {
        return Err("conf state auto-leaves a joint configuration it is not in".into());
    }
    Ok(())
}

/// The durable Raft log of this member.
pub struct RaftLog {
    wal: Wal,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    entries: VecDeque<Entry>,
    /// Last entry index written to each WAL segment still on disk.
    segment_last: BTreeMap<u64, u64>,
    /// Applied index, as last told by the Raft thread.
    applied: u64,
}

impl RaftLog {
    /// Opens (creating if needed) the log in `dir`, replaying the WAL. A torn last write is
    /// repaired; corruption anywhere else is [`Error::Corrupt`].
    pub fn open(dir: &Path) -> Result<RaftLog> {
        let (wal, frames) = Wal::open(dir)?;
        let mut hard_state = HardState::default();
        let mut conf_state = ConfState::default();
        let mut snapshot_meta = SnapshotMetadata::default();
        let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut segment_last = BTreeMap::new();
        for frame in frames {
            let mut p = &frame.payload[..];
            while !p.is_empty() {
                let corrupt = || {
                    Error::Corrupt(format!(
                        "malformed record in WAL segment {:016x}",
                        frame.segment
                    ))
                };
                let kind = p[0];
                let len = u32::from_le_bytes(
                    p.get(1..5)
                        .ok_or_else(corrupt)?
                        .try_into()
                        .map_err(|_| corrupt())?,
                ) as usize;
                let body = p.get(5..5 + len).ok_or_else(corrupt)?;
                p = &p[5 + len..];
                let bad = |e: protobuf::ProtobufError| Error::Corrupt(format!("WAL record: {e}"));
                match kind {
                    REC_ENTRY => {
                        let e = Entry::parse_from_bytes(body).map_err(bad)?;
                        segment_last.insert(frame.segment, e.index);
                        entries.split_off(&e.index);
                        entries.insert(e.index, e);
                    }
                    REC_HARD_STATE => {
                        hard_state = HardState::parse_from_bytes(body).map_err(bad)?
                    }
                    REC_CONF_STATE => {
                        conf_state = ConfState::parse_from_bytes(body).map_err(bad)?
                    }
                    REC_SNAPSHOT => {
                        let m = SnapshotMetadata::parse_from_bytes(body).map_err(bad)?;
                        if m.index >= snapshot_meta.index {
                            snapshot_meta = m;
                        }
                    }
                    REC_TRUNCATE => {
                        let idx: [u8; 8] = body.try_into().map_err(|_| corrupt())?;
                        entries.split_off(&(u64::from_be_bytes(idx) + 1));
                    }
                    other => {
                        return Err(Error::Corrupt(format!("unknown WAL record type {other}")))
                    }
                }
            }
        }
        let entries: VecDeque<Entry> = entries
            .split_off(&(snapshot_meta.index + 1))
            .into_values()
            .collect();
        for (i, e) in entries.iter().enumerate() {
            if e.index != snapshot_meta.index + 1 + i as u64 {
                return Err(Error::Corrupt(format!(
                    "raft log has a gap: expected index {}, found {} (snapshot at {})",
                    snapshot_meta.index + 1 + i as u64,
                    e.index,
                    snapshot_meta.index
                )));
            }
        }
        for cs in [&conf_state, snapshot_meta.get_conf_state()] {
            check_conf_state(cs).map_err(|e| Error::Corrupt(format!("WAL: {e}")))?;
        }
        // raft-rs panics on a hard state committing past the log; refuse it as corruption
        // instead (a commit below the snapshot is raised by the raft node at start).
        let last = snapshot_meta.index + entries.len() as u64;
        if hard_state.commit > last {
            return Err(Error::Corrupt(format!(
                "hard state commit {} is past the last log index {last}",
                hard_state.commit
            )));
        }
        Ok(RaftLog {
            wal,
            hard_state,
            conf_state,
            snapshot_meta,
            entries,
            segment_last,
            applied: 0,
        })
    }

    /// Whether the log has never been written (a new member).
    pub fn is_new(&self) -> bool {
        self.entries.is_empty()
            && self.snapshot_meta.index == 0
            && self.hard_state == HardState::default()
            && self.conf_state.voters.is_empty()
            && self.conf_state.learners.is_empty()
    }

    /// The full state, written at the head of every new segment.
    fn state_frame(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        put_record(&mut buf, REC_SNAPSHOT, &self.snapshot_meta)?;
        put_record(&mut buf, REC_CONF_STATE, &self.conf_state)?;
        put_record(&mut buf, REC_HARD_STATE, &self.hard_state)?;
        Ok(buf)
    }

    fn append_frame(&mut self, payload: &[u8]) -> Result<()> {
        let head = self.state_frame()?;
        self.wal.append(payload, || head)
    }

    /// Writes the initial membership of a new cluster as a snapshot at index 1 (term 1),
    /// identical on every initial member. A member that joins later has no entry 1, so the
    /// leader catches it up with a snapshot, which carries the membership.
    pub fn bootstrap(&mut self, conf_state: ConfState) -> Result<()> {
        let mut meta = SnapshotMetadata {
            index: 1,
            term: 1,
            ..Default::default()
        };
        meta.set_conf_state(conf_state.clone());
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        let mut buf = Vec::new();
        put_record(&mut buf, REC_SNAPSHOT, &meta)?;
        put_record(&mut buf, REC_CONF_STATE, &conf_state)?;
        put_record(&mut buf, REC_HARD_STATE, &hs)?;
        self.append_frame(&buf)?;
        self.snapshot_meta = meta;
        self.conf_state = conf_state;
        self.hard_state = hs;
        Ok(())
    }

    /// Records the applied index, the point a snapshot for a lagging follower describes.
    pub fn set_applied(&mut self, applied: u64) {
        self.applied = applied;
    }

    /// Durably appends `entries` and/or saves `hard_state`, in one fsynced write.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<()> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            put_record(&mut buf, REC_ENTRY, e)?;
        }
        if let Some(hs) = hard_state {
            put_record(&mut buf, REC_HARD_STATE, hs)?;
        }
        fail::fail_point!("raftBeforeSave");
        self.append_frame(&buf)?;
        fail::fail_point!("raftAfterSave");
        if let Some(first) = entries.first() {
            let keep = first.index.saturating_sub(self.snapshot_meta.index + 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(entries.iter().cloned());
            self.segment_last
                .insert(self.wal.current_segment(), self.last_index_inner());
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Saves a new membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<()> {
        let mut buf = Vec::new();
        put_record(&mut buf, REC_CONF_STATE, &cs)?;
        self.append_frame(&buf)?;
        self.conf_state = cs;
        Ok(())
    }

    /// `--force-new-cluster`: keeps only committed entries and makes `self_id` the only
    /// voter, so a lone surviving member can elect itself after quorum was lost.
    pub fn force_new_cluster(&mut self, self_id: u64) -> Result<()> {
        let commit = self.hard_state.commit.max(self.snapshot_meta.index);
        let cs = ConfState {
            voters: vec![self_id],
            ..Default::default()
        };
        let mut buf = vec![REC_TRUNCATE];
        buf.extend_from_slice(&8u32.to_le_bytes());
        buf.extend_from_slice(&commit.to_be_bytes());
        put_record(&mut buf, REC_CONF_STATE, &cs)?;
        self.append_frame(&buf)?;
        let keep = (commit - self.snapshot_meta.index) as usize;
        self.entries.truncate(keep);
        self.conf_state = cs;
        Ok(())
    }

    /// Raises the persisted commit index to `commit` (no-op if it is not higher).
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }

    /// Marks everything up to `index` as covered by a snapshot (the backend holds it
    /// durably), drops those entries and deletes WAL segments holding nothing newer.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.snapshot_meta.index || index > self.last_index_inner() {
            return Ok(());
        }
        let term = self
            .term(index)
            .map_err(|e| Error::Corrupt(format!("term of {index}: {e}")))?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        let mut buf = Vec::new();
        put_record(&mut buf, REC_SNAPSHOT, &meta)?;
        self.append_frame(&buf)?;
        let drop = (index - self.snapshot_meta.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot_meta = meta;
        self.release_segments()
    }

    fn release_segments(&mut self) -> Result<()> {
        let current = self.wal.current_segment();
        let snap = self.snapshot_meta.index;
        // Oldest segment that still holds an entry after the snapshot, or the current one.
        let keep_from = self
            .segment_last
            .iter()
            .find(|(seq, last)| **last > snap || **seq == current)
            .map(|(seq, _)| *seq)
            .unwrap_or(current);
        self.wal.release_before(keep_from)?;
        self.segment_last = self.segment_last.split_off(&keep_from);
        Ok(())
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata().clone();
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let mut buf = Vec::new();
        put_record(&mut buf, REC_SNAPSHOT, &meta)?;
        put_record(&mut buf, REC_CONF_STATE, meta.get_conf_state())?;
        put_record(&mut buf, REC_HARD_STATE, &hs)?;
        self.append_frame(&buf)?;
        self.entries.clear();
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot_meta = meta;
        self.hard_state = hs;
        self.release_segments()
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

    fn last_index_inner(&self) -> u64 {
        self.snapshot_meta.index + self.entries.len() as u64
    }

    fn entry(&self, idx: u64) -> Option<&Entry> {
        let off = idx.checked_sub(self.snapshot_meta.index + 1)?;
        self.entries.get(off as usize)
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
        if high > self.last_index_inner() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        for idx in low..high {
            let Some(e) = self.entry(idx) else {
                return Err(raft::Error::Store(StorageError::Unavailable));
            };
            size += u64::from(e.compute_size());
            // raft-rs expects at least one entry even when it exceeds max_size.
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
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
        self.entry(idx)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_meta.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_inner())
    }

    /// A snapshot at the applied index. Its data is sent separately by the transport: the
    /// backend's rows, read when the message is sent, whose consistent index is at least
    /// this index.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.applied.max(self.snapshot_meta.index);
        let term = self.term(index)?;
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        Ok(snap)
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

    fn all(log: &RaftLog) -> Vec<(u64, u64, Vec<u8>)> {
        let (lo, hi) = (log.first_index().unwrap(), log.last_index().unwrap() + 1);
        log.entries(lo, hi, None, GetEntriesContext::empty(false))
            .unwrap()
            .into_iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect()
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
            // Bootstrap is a snapshot at index 1; entries start at 2.
            assert_eq!(log.first_index().unwrap(), 2);
            assert_eq!(log.term(1).unwrap(), 1);
            let hs = HardState {
                term: 2,
                vote: 7,
                commit: 4,
                ..Default::default()
            };
            log.persist(
                &[ent(2, 1, b"a"), ent(3, 2, b"b"), ent(4, 2, b"c")],
                Some(&hs),
            )
            .unwrap();
        }
        let mut log = RaftLog::open(dir.path()).unwrap();
        assert!(!log.is_new());
        assert_eq!(log.last_index().unwrap(), 4);
        assert_eq!(log.first_index().unwrap(), 2);
        assert_eq!(log.term(3).unwrap(), 2);
        assert_eq!(log.hard_state().commit, 4);
        assert_eq!(log.conf_state().voters, vec![7]);
        assert_eq!(
            all(&log),
            vec![
                (2, 1, b"a".to_vec()),
                (3, 2, b"b".to_vec()),
                (4, 2, b"c".to_vec())
            ]
        );
        // A snapshot for a lagging follower describes the applied index.
        log.set_applied(3);
        let snap = log.snapshot(0, 9).unwrap();
        assert_eq!(
            (snap.get_metadata().index, snap.get_metadata().term),
            (3, 2)
        );
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![7]);
    }

    #[test]
    fn conflicting_append_replaces_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path()).unwrap();
        log.persist(&[ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 1, b"c")], None)
            .unwrap();
        log.persist(&[ent(2, 2, b"x")], None).unwrap();
        assert_eq!(log.last_index().unwrap(), 2);
        assert!(log.term(3).is_err());
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(
            all(&log),
            vec![(1, 1, b"a".to_vec()), (2, 2, b"x".to_vec())]
        );
    }

    #[test]
    fn compaction_moves_first_index_and_survives_reopen() {
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
        assert_eq!(all(&log).len(), 4);
    }

    #[test]
    fn old_segments_are_released_after_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RaftLog::open(dir.path()).unwrap();
        log.bootstrap(ConfState {
            voters: vec![1],
            ..Default::default()
        })
        .unwrap();
        let es: Vec<Entry> = (2..=5).map(|i| ent(i, 1, b"v")).collect();
        log.persist(&es, None).unwrap();
        let head = log.state_frame().unwrap();
        log.wal.rotate(head).unwrap();
        log.persist(&[ent(6, 1, b"w")], None).unwrap();
        log.compact(5).unwrap();
        // Only segments count (a `crash-journal` build keeps its journal beside them).
        let files = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("wal".as_ref()))
            .count();
        assert_eq!(files, 1, "the first segment should be gone");
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.conf_state().voters, vec![1]);
        assert_eq!(all(&log), vec![(6, 1, b"w".to_vec())]);
    }
}
