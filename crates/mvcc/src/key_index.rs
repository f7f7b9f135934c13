//! One key's history: etcd's `keyIndex` (`server/storage/mvcc/key_index.go`).
//!
//! A key index holds at least one *generation*; a generation is the life of the key from its
//! creation to its deletion. A tombstone (delete) appends the tombstone revision to the
//! current generation and opens a new, empty one. Each revision points at a record in the
//! backend's key table.
//!
//! For example `put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0)` on key "foo"
//! gives (newest first):
//!
//! ```text
//! {empty}
//! {4.0, 5.0(t)}
//! {1.0, 2.0, 3.0(t)}
//! ```
//!
//! Compaction at `rev` removes the revisions `<= rev` except the largest one, which is the
//! key's state at `rev`; a generation left with nothing at or before `rev` is removed, and
//! when all generations are gone the key index is empty (the tree index then drops it).
//! Continuing the example: `compact(2)` leaves `{2.0, 3.0(t)}` as the oldest generation,
//! `compact(4)` leaves `{4.0, 5.0(t)}`, `compact(5)` leaves `{5.0(t)}` (the tombstone at the
//! compaction revision is kept so watchers from that revision still see the delete), and
//! `compact(6)` leaves only `{empty}`: the key index should be removed.
//!
//! Invariants:
//! - Revisions are appended in strictly increasing order (the store hands them out); a
//!   violation is a bug and panics, as in etcd.
//! - Every generation but the last is non-empty and ends with its tombstone.
//! - A key deleted and re-created within one main revision (a delete followed by a put in
//!   one txn) is alive at that revision: its later sub revision supersedes the tombstone in
//!   reads and compaction.

use smallvec::{smallvec, SmallVec};
use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::revision::Revision;

/// The life of a key from creation to deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of revisions in this generation, including compacted ones.
    pub ver: i64,
    /// The revision that created the key (the first put of the generation).
    pub created: Revision,
    /// The generation's live revisions, oldest first; the last one of a closed generation
    /// is its tombstone.
    pub revs: SmallVec<[Revision; 1]>,
}

impl Generation {
    /// Whether the generation holds no revision.
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the last revision with `main <= at_rev`.
    fn find_revision_index(&self, at_rev: i64) -> Option<usize> {
        self.revs
            .partition_point(|r| r.main <= at_rev)
            .checked_sub(1)
    }
}

/// The revisions of one key, grouped in generations (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    key: Vec<u8>,
    /// The last revision that modified the key.
    modified: Revision,
    /// Inline storage for the common case (one generation of one revision): no heap
    /// allocation per key beyond the key itself.
    generations: SmallVec<[Generation; 1]>,
}

impl KeyIndex {
    /// An empty key index for `key`.
    pub fn new(key: Vec<u8>) -> KeyIndex {
        KeyIndex {
            key,
            modified: Revision::default(),
            generations: smallvec![Generation::default()],
        }
    }

    /// A key index restored from the backend, whose first record seen is a put at
    /// `modified` of a key created at `created` with version `ver` (etcd's `restore`).
    pub fn restored(key: Vec<u8>, created: Revision, modified: Revision, ver: i64) -> KeyIndex {
        KeyIndex {
            key,
            modified,
            generations: smallvec![Generation {
                ver,
                created,
                revs: smallvec![modified],
            }],
        }
    }

    /// A key index restored from the backend, whose first record seen is the tombstone at
    /// `main.sub` (its creation was compacted away, so its created revision is unknown).
    pub fn restored_tombstone(key: Vec<u8>, main: i64, sub: i64) -> KeyIndex {
        let mut ki = KeyIndex::restored(key, Revision::default(), Revision::new(main, sub), 1);
        ki.generations.push(Generation::default());
        ki
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The last revision that modified the key.
    pub fn modified(&self) -> Revision {
        self.modified
    }

    /// The generations, oldest first.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// Records a put at `main.sub`.
    ///
    /// # Panics
    /// If `main.sub` is not greater than the last modification (a store bug).
    pub fn put(&mut self, main: i64, sub: i64) {
        let rev = Revision::new(main, sub);
        assert!(
            rev > self.modified,
            "put with an unexpected smaller revision {rev} (modified {}) on key {:?}",
            self.modified,
            String::from_utf8_lossy(&self.key)
        );
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let last = self.generations.len() - 1;
        let g = &mut self.generations[last];
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Records a delete at `main.sub`: appends the tombstone to the current generation and
    /// opens a new one. [`Error::RevisionNotFound`] (and no change) if the key is not live.
    pub fn tombstone(&mut self, main: i64, sub: i64) -> Result<()> {
        if self.generations.last().is_none_or(Generation::is_empty) {
            return Err(Error::RevisionNotFound);
        }
        self.put(main, sub);
        self.generations.push(Generation::default());
        Ok(())
    }

    /// The key's state at `at_rev`: (modified revision, created revision, version), or
    /// `None` if the key does not exist at `at_rev`.
    pub fn get(&self, at_rev: i64) -> Option<(Revision, Revision, i64)> {
        let g = self.find_generation(at_rev)?;
        let n = g.find_revision_index(at_rev)?;
        let newer = (g.revs.len() - n - 1) as i64;
        Some((g.revs[n], g.created, g.ver - newer))
    }

    /// The revisions with `main >= rev`, oldest first; of several revisions sharing a main
    /// revision only the one with the largest sub revision is returned.
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let since = Revision::new(rev, 0);
        // Find the generation to start from: the newest one created before `since`.
        let mut gi = self.generations.len().saturating_sub(1);
        while gi > 0 {
            let g = &self.generations[gi];
            if !g.is_empty() && since > g.created {
                break;
            }
            gi -= 1;
        }
        let mut revs: Vec<Revision> = Vec::new();
        for g in &self.generations[gi..] {
            for &r in &g.revs {
                if since > r {
                    continue;
                }
                match revs.last_mut() {
                    // A later change in the same txn replaces the earlier one, which no
                    // client ever observes.
                    Some(last) if last.main == r.main => *last = r,
                    _ => revs.push(r),
                }
            }
        }
        revs
    }

    /// Removes the revisions `<= at_rev` except the largest one (the key's state at
    /// `at_rev`, added to `available`), and the generations that end before `at_rev`.
    pub fn compact(&mut self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available);
        if let Some(rev_idx) = rev_idx {
            self.generations[gen_idx].revs.drain(..rev_idx);
        }
        self.generations.drain(..gen_idx);
    }

    /// Adds to `available` the revision a compaction at `at_rev` would keep, without
    /// changing the index. Unlike [`KeyIndex::compact`], a tombstone at `at_rev` is not
    /// kept (etcd's hash of the kept revisions depends on this).
    pub fn keep(&self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available);
        let g = &self.generations[gen_idx];
        if let Some(rev_idx) = rev_idx {
            if rev_idx == g.revs.len() - 1 && gen_idx != self.generations.len() - 1 {
                available.remove(&g.revs[rev_idx]);
            }
        }
    }

    /// Finds the generation holding the key's state at `at_rev` (the first that does not
    /// end before `at_rev`, skipping one whose tombstone at `at_rev` is superseded by a
    /// re-creation in the same main revision) and the index of its last revision
    /// `<= at_rev`, which is added to `available`.
    fn do_compact(&self, at_rev: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let last = self.generations.len() - 1;
        let mut gen_idx = 0;
        while gen_idx < last {
            let tomb = self.generations[gen_idx].revs.last().map(|r| r.main);
            let recreated_by = self.generations[gen_idx + 1]
                .revs
                .first()
                .is_some_and(|r| r.main <= at_rev);
            if tomb.is_some_and(|t| t >= at_rev) && !recreated_by {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.find_revision_index(at_rev);
        if let Some(i) = rev_idx {
            available.insert(g.revs[i]);
        }
        (gen_idx, rev_idx)
    }

    /// Whether the key index holds no revision at all.
    pub fn is_empty(&self) -> bool {
        self.generations.iter().all(Generation::is_empty)
    }

    /// The generation `rev` belongs to, or `None` if the key does not exist at `rev` (it
    /// falls between two generations, or before the first).
    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(newest)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && newest.main <= rev {
                // `newest` is this generation's tombstone: deleted at `rev`.
                return None;
            }
            if first.main <= rev {
                return Some(g);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
