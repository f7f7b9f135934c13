//! The in-memory tree index: key -> [`KeyIndex`] (etcd's `treeIndex`,
//! `server/storage/mvcc/index.go`).
//!
//! Invariants:
//! - Keys are ordered bytewise; the index never holds an empty [`KeyIndex`] after a
//!   compaction (an emptied key is dropped).
//! - Ranges are given as etcd's request fields: an empty `end` means the single key `key`;
//!   `end == "\0"` means every key `>= key`; any other `end` is the exclusive bound of
//!   `[key, end)` (a prefix end is just such a bound). An `end <= key` is an empty range;
//!   no input panics.
//! - The index carries revisions not yet visible to readers; every query takes the
//!   revision to read at and ignores anything newer.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::error::{Error, Result};
use crate::key_index::KeyIndex;
use crate::revision::Revision;

/// The key -> revisions index.
#[derive(Debug, Default, Clone)]
pub struct TreeIndex {
    tree: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    /// An empty index.
    pub fn new() -> TreeIndex {
        TreeIndex::default()
    }

    /// Number of keys with at least one revision (live or not).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The key's state at `at_rev`: (modified, created, version); `None` if it does not
    /// exist then.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<(Revision, Revision, i64)> {
        self.tree.get(key)?.get(at_rev)
    }

    /// The key indexes in the range (see the module doc for `end`), in key order.
    fn visit<'a>(
        &'a self,
        key: &'a [u8],
        end: &'a [u8],
    ) -> Box<dyn Iterator<Item = &'a KeyIndex> + 'a> {
        if end.is_empty() {
            return Box::new(self.tree.get(key).into_iter());
        }
        let upper = if end == [0] {
            Bound::Unbounded
        } else if end <= key {
            return Box::new(std::iter::empty());
        } else {
            Bound::Excluded(end)
        };
        Box::new(
            self.tree
                .range::<[u8], _>((Bound::Included(key), upper))
                .map(|(_, ki)| ki),
        )
    }

    /// The keys live at `at_rev` in the range, with the revision of each one's state then.
    pub fn range(&self, key: &[u8], end: &[u8], at_rev: i64) -> Vec<(Vec<u8>, Revision)> {
        self.visit(key, end)
            .filter_map(|ki| ki.get(at_rev).map(|(m, _, _)| (ki.key().to_vec(), m)))
            .collect()
    }

    /// The revisions of the first `limit` keys live at `at_rev` in the range (`limit == 0`:
    /// all of them), and how many keys are live then in the range in total.
    pub fn revisions(
        &self,
        key: &[u8],
        end: &[u8],
        at_rev: i64,
        limit: usize,
    ) -> (Vec<Revision>, usize) {
        let mut revs = Vec::new();
        let mut total = 0;
        for (modified, _, _) in self.visit(key, end).filter_map(|ki| ki.get(at_rev)) {
            if limit == 0 || revs.len() < limit {
                revs.push(modified);
            }
            total += 1;
        }
        (revs, total)
    }

    /// How many keys are live at `at_rev` in the range.
    pub fn count_revisions(&self, key: &[u8], end: &[u8], at_rev: i64) -> usize {
        self.visit(key, end)
            .filter(|ki| ki.get(at_rev).is_some())
            .count()
    }

    /// Every revision `>= rev` of the keys in the range (the last sub revision of each
    /// main revision per key), in revision order (etcd's `RangeSince`, for watchers).
    pub fn range_since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut revs: Vec<Revision> = self.visit(key, end).flat_map(|ki| ki.since(rev)).collect();
        revs.sort_unstable();
        revs
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev.main, rev.sub),
            None => {
                let mut ki = KeyIndex::new(key.to_vec());
                ki.put(rev.main, rev.sub);
                self.tree.insert(key.to_vec(), ki);
            }
        }
    }

    /// Records a delete of `key` at `rev`; [`Error::RevisionNotFound`] if the key is not
    /// live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> Result<()> {
        self.tree
            .get_mut(key)
            .ok_or(Error::RevisionNotFound)?
            .tombstone(rev.main, rev.sub)
    }

    /// Restores a put read from the backend (records are replayed in revision order).
    pub fn restore_put(&mut self, key: &[u8], rev: Revision, created: Revision, ver: i64) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev.main, rev.sub),
            None => {
                let ki = KeyIndex::restored(key.to_vec(), created, rev, ver);
                self.tree.insert(key.to_vec(), ki);
            }
        }
    }

    /// Restores a tombstone read from the backend. A tombstone on a key that is not live
    /// is ignored with a warning (as etcd does).
    pub fn restore_tombstone(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) => {
                if let Err(e) = ki.tombstone(rev.main, rev.sub) {
                    tracing::warn!(key = ?String::from_utf8_lossy(key), %rev, "restoring tombstone: {e}");
                }
            }
            None => {
                let ki = KeyIndex::restored_tombstone(key.to_vec(), rev.main, rev.sub);
                self.tree.insert(key.to_vec(), ki);
            }
        }
    }

    /// Compacts every key at `rev` and drops the keys left empty; returns the revisions
    /// `<= rev` that must stay in the backend.
    pub fn compact(&mut self, rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.tree.retain(|_, ki| {
            ki.compact(rev, &mut available);
            !ki.is_empty()
        });
        available
    }

    /// The revisions a compaction at `rev` would keep (tombstones at `rev` excluded), without
    /// changing the index.
    pub fn keep(&self, rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.tree.values() {
            ki.keep(rev, &mut available);
        }
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// foo: put 2, put 3, delete 6; foo1: put 4; foo2: put 5 (sub 1);
    /// "fop": put 7.
    fn test_index() -> TreeIndex {
        let mut ti = TreeIndex::new();
        ti.put(b"foo", r(2));
        ti.put(b"foo", r(3));
        ti.put(b"foo1", r(4));
        ti.put(b"foo2", Revision::new(5, 1));
        ti.tombstone(b"foo", r(6)).unwrap();
        ti.put(b"fop", r(7));
        ti
    }

    #[test]
    fn get() {
        let ti = test_index();
        assert_eq!(ti.get(b"foo", 1), None);
        assert_eq!(ti.get(b"foo", 2), Some((r(2), r(2), 1)));
        assert_eq!(ti.get(b"foo", 5), Some((r(3), r(2), 2)));
        assert_eq!(ti.get(b"foo", 6), None);
        assert_eq!(ti.get(b"nope", 6), None);
    }

    #[test]
    fn range_end_forms() {
        let ti = test_index();
        let keys = |end: &[u8], at| -> Vec<Vec<u8>> {
            ti.range(b"foo", end, at)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        // Single key.
        assert_eq!(keys(b"", 5), vec![b"foo".to_vec()]);
        assert!(keys(b"", 6).is_empty());
        // [foo, foo2)
        assert_eq!(keys(b"foo2", 5), vec![b"foo".to_vec(), b"foo1".to_vec()]);
        // Prefix "foo" -> end "fop".
        assert_eq!(
            keys(b"fop", 7),
            vec![b"foo1".to_vec(), b"foo2".to_vec()],
            "foo deleted at 6"
        );
        // "\0": to the end of the keyspace.
        assert_eq!(
            keys(b"\0", 7),
            vec![b"foo1".to_vec(), b"foo2".to_vec(), b"fop".to_vec()]
        );
        // An end at or before the key is empty, and never panics.
        assert!(keys(b"foo", 7).is_empty());
        assert!(keys(b"a", 7).is_empty());
        assert!(ti.range(b"\0", b"\0", 7).len() == 3);
    }

    #[test]
    fn revisions_and_count() {
        let ti = test_index();
        let (revs, total) = ti.revisions(b"foo", b"\0", 5, 0);
        assert_eq!(revs, vec![r(3), r(4), Revision::new(5, 1)]);
        assert_eq!(total, 3);
        let (revs, total) = ti.revisions(b"foo", b"\0", 5, 2);
        assert_eq!(revs, vec![r(3), r(4)]);
        assert_eq!(total, 3, "total ignores the limit");
        assert_eq!(ti.revisions(b"foo", b"", 4, 0), (vec![r(3)], 1));
        assert_eq!(ti.revisions(b"foo", b"", 6, 0), (vec![], 0));
        assert_eq!(ti.revisions(b"foo", b"", 1, 0), (vec![], 0));
        assert_eq!(ti.count_revisions(b"foo", b"\0", 7), 3);
        assert_eq!(ti.count_revisions(b"foo", b"\0", 3), 1);
        assert_eq!(ti.count_revisions(b"a", b"b", 7), 0);
    }

    #[test]
    fn tombstone_requires_a_live_key() {
        let mut ti = test_index();
        assert!(matches!(
            ti.tombstone(b"foo", r(8)),
            Err(Error::RevisionNotFound)
        ));
        assert!(matches!(
            ti.tombstone(b"nope", r(8)),
            Err(Error::RevisionNotFound)
        ));
        ti.put(b"foo", r(8));
        assert_eq!(ti.get(b"foo", 8), Some((r(8), r(8), 1)), "a new generation");
    }

    #[test]
    fn range_since() {
        let ti = test_index();
        assert_eq!(
            ti.range_since(b"foo", b"\0", 3),
            vec![r(3), r(4), Revision::new(5, 1), r(6), r(7)]
        );
        assert_eq!(ti.range_since(b"foo", b"", 1), vec![r(2), r(3), r(6)]);
    }

    #[test]
    fn compact_and_keep() {
        let mut ti = test_index();
        let keep = ti.keep(6);
        // foo's tombstone at 6 is not in keep, but compact keeps it.
        assert_eq!(keep, [r(4), Revision::new(5, 1)].into_iter().collect());
        let kept = ti.compact(6);
        assert_eq!(
            kept,
            [r(4), Revision::new(5, 1), r(6)].into_iter().collect()
        );
        assert_eq!(ti.len(), 4);
        assert_eq!(ti.range_since(b"foo", b"", 0), vec![r(6)]);
        // Compacting past the tombstone drops the key.
        let kept = ti.compact(7);
        assert_eq!(
            kept,
            [r(4), Revision::new(5, 1), r(7)].into_iter().collect()
        );
        assert_eq!(ti.len(), 3);
        assert_eq!(ti.get(b"foo", 7), None);
        assert_eq!(ti.get(b"foo1", 7), Some((r(4), r(4), 1)));
    }

    #[test]
    fn restore() {
        let mut ti = TreeIndex::new();
        // After a compaction at 6 the backend holds: foo 6(t), foo1 4 (created 4, v1),
        // foo 8 (a new generation).
        ti.restore_put(b"foo1", r(4), r(4), 1);
        ti.restore_tombstone(b"foo", r(6));
        ti.restore_put(b"foo", r(8), r(8), 1);
        ti.restore_tombstone(b"bar", r(9));
        ti.restore_tombstone(b"bar", r(10)); // not live: ignored
        assert_eq!(ti.get(b"foo", 6), None);
        assert_eq!(ti.get(b"foo", 8), Some((r(8), r(8), 1)));
        assert_eq!(ti.get(b"foo1", 8), Some((r(4), r(4), 1)));
        assert_eq!(ti.range_since(b"foo", b"", 0), vec![r(6), r(8)]);
        assert_eq!(ti.get(b"bar", 10), None);
    }
}
