//! Interned watch key ranges and the synced watchers of each (etcd's `watcherGroup`: a map
//! for single keys plus an interval tree for ranges).
//!
//! Invariants:
//! - Each distinct range (single key, `[key, end)`, or `[key, +inf)`) is stored once, as one
//!   [`RangeEntry`] with a reference count (the live watchers on it, whatever their state);
//!   an entry whose count drops to 0 is freed and its id reused.
//! - `synced` of an entry lists exactly the synced watchers on it; a watcher's `pos` (kept
//!   by the caller) is its index there, so removal is O(1) (`swap_remove`).
//! - Single keys are found by hash; multi-key ranges by a stabbing query on a static
//!   interval tree over the sorted ranges, rebuilt lazily after a range was added or freed.
//!   A query costs O(log n + hits) whatever the number of watchers per range.

use std::collections::HashMap;

/// A watched key range. `end`: `None` for the single key `key`; `Some(empty)` for every key
/// `>= key`; otherwise the exclusive end (`> key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyRange {
    pub key: Box<[u8]>,
    pub end: Option<Box<[u8]>>,
}

impl KeyRange {
    /// Whether `k` is in the range.
    pub fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => *self.key == *k,
            Some(end) => *self.key <= *k && end_after(end, k),
        }
    }
}

/// Whether a multi-key range end (empty = +inf) lies after `k`.
fn end_after(end: &[u8], k: &[u8]) -> bool {
    end.is_empty() || end > k
}

/// Whether range end `a` is greater than `b` (empty = +inf).
fn end_gt(a: &[u8], b: &[u8]) -> bool {
    if a.is_empty() {
        !b.is_empty()
    } else {
        !b.is_empty() && a > b
    }
}

/// One distinct range and its synced watchers (watcher slots).
#[derive(Debug)]
pub(crate) struct RangeEntry {
    pub range: KeyRange,
    refs: u32,
    pub synced: Vec<u32>,
}

/// All ranges watched (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct RangeTable {
    entries: Vec<Option<RangeEntry>>,
    free: Vec<u32>,
    by_range: HashMap<KeyRange, u32>,
    singles: HashMap<Box<[u8]>, u32>,
    /// Multi-key entry ids sorted by (key, end), and per implicit-tree node (the middle of
    /// each sub-slice) the index in `sorted` of the entry with the greatest end below it.
    sorted: Vec<u32>,
    max_end: Vec<u32>,
    dirty: bool,
}

impl RangeTable {
    /// The entry `id` (which must be live).
    pub fn get(&self, id: u32) -> &RangeEntry {
        self.entries[id as usize]
            .as_ref()
            .expect("live range entry")
    }

    pub fn get_mut(&mut self, id: u32) -> &mut RangeEntry {
        self.entries[id as usize]
            .as_mut()
            .expect("live range entry")
    }

    /// Number of distinct ranges.
    pub fn len(&self) -> usize {
        self.by_range.len()
    }

    /// Takes a reference on `range`, adding it if new; returns its id.
    pub fn intern(&mut self, range: KeyRange) -> u32 {
        if let Some(&id) = self.by_range.get(&range) {
            self.get_mut(id).refs += 1;
            return id;
        }
        let entry = RangeEntry {
            range: range.clone(),
            refs: 1,
            synced: Vec::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        if range.end.is_none() {
            self.singles.insert(range.key.clone(), id);
        } else {
            self.dirty = true;
        }
        self.by_range.insert(range, id);
        id
    }

    /// Drops a reference on entry `id`, freeing it when none is left.
    pub fn release(&mut self, id: u32) {
        let e = self.get_mut(id);
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let e = self.entries[id as usize].take().expect("live range entry");
        debug_assert!(e.synced.is_empty());
        if e.range.end.is_none() {
            self.singles.remove(&e.range.key);
        } else {
            self.dirty = true;
        }
        self.by_range.remove(&e.range);
        self.free.push(id);
    }

    /// Adds watcher `slot` to the synced list of `id`; returns its position there.
    pub fn add_synced(&mut self, id: u32, slot: u32) -> u32 {
        let s = &mut self.get_mut(id).synced;
        s.push(slot);
        (s.len() - 1) as u32
    }

    /// Removes the synced watcher at `pos` of entry `id`; returns the slot of the watcher
    /// moved into `pos` (whose position the caller must update), if any.
    pub fn remove_synced(&mut self, id: u32, pos: u32) -> Option<u32> {
        let s = &mut self.get_mut(id).synced;
        s.swap_remove(pos as usize);
        let moved = s.get(pos as usize).copied();
        if s.is_empty() && s.capacity() > 64 {
            s.shrink_to_fit();
        }
        moved
    }

    /// Appends to `out` the ids of the entries with synced watchers whose range holds `key`.
    pub fn matching(&mut self, key: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.singles.get(key) {
            if !self.get(id).synced.is_empty() {
                out.push(id);
            }
        }
        if self.dirty {
            self.rebuild();
        }
        let start = out.len();
        self.stab(0, self.sorted.len(), key, out);
        // Drop entries without synced watchers (kept in the tree until freed).
        let mut n = start;
        for i in start..out.len() {
            if !self.get(out[i]).synced.is_empty() {
                out[n] = out[i];
                n += 1;
            }
        }
        out.truncate(n);
    }

    fn end_of(&self, sorted_idx: usize) -> &[u8] {
        self.get(self.sorted[sorted_idx])
            .range
            .end
            .as_deref()
            .unwrap_or_default()
    }

    fn stab(&self, lo: usize, hi: usize, key: &[u8], out: &mut Vec<u32>) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        if !end_after(self.end_of(self.max_end[mid] as usize), key) {
            return; // nothing below this node ends after `key`
        }
        self.stab(lo, mid, key, out);
        let e = self.get(self.sorted[mid]);
        if *e.range.key <= *key {
            if e.range.contains(key) {
                out.push(self.sorted[mid]);
            }
            self.stab(mid + 1, hi, key, out);
        }
    }

    fn rebuild(&mut self) {
        let mut sorted: Vec<u32> = self
            .by_range
            .iter()
            .filter(|(r, _)| r.end.is_some())
            .map(|(_, &id)| id)
            .collect();
        sorted.sort_unstable_by(|&a, &b| self.get(a).range.cmp_key(&self.get(b).range));
        self.sorted = sorted;
        self.max_end = vec![0; self.sorted.len()];
        self.build(0, self.sorted.len());
        self.dirty = false;
    }

    /// Fills `max_end` for the node of `[lo, hi)`; returns the index of its greatest end.
    fn build(&mut self, lo: usize, hi: usize) -> Option<usize> {
        if lo >= hi {
            return None;
        }
        let mid = lo + (hi - lo) / 2;
        let mut best = mid;
        for child in [self.build(lo, mid), self.build(mid + 1, hi)]
            .into_iter()
            .flatten()
        {
            if end_gt(self.end_of(child), self.end_of(best)) {
                best = child;
            }
        }
        self.max_end[mid] = best as u32;
        Some(best)
    }
}

impl KeyRange {
    fn cmp_key(&self, other: &KeyRange) -> std::cmp::Ordering {
        self.key.cmp(&other.key).then_with(|| {
            let (a, b) = (
                self.end.as_deref().unwrap_or_default(),
                other.end.as_deref().unwrap_or_default(),
            );
            if a == b {
                std::cmp::Ordering::Equal
            } else if end_gt(a, b) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, end: Option<&str>) -> KeyRange {
        KeyRange {
            key: key.as_bytes().into(),
            end: end.map(|e| e.as_bytes().into()),
        }
    }

    #[test]
    fn stabbing_matches_brute_force() {
        let mut t = RangeTable::default();
        let mut ranges = Vec::new();
        // A deterministic mix of single keys, bounded and unbounded ranges.
        for i in 0..200u32 {
            let a = format!("k{:03}", (i * 37) % 150);
            let b = format!("k{:03}", (i * 37) % 150 + (i % 17) + 1);
            let range = match i % 5 {
                0 => r(&a, None),
                1 => r(&a, Some("")),
                _ => r(&a, Some(&b)),
            };
            let id = t.intern(range.clone());
            t.add_synced(id, i);
            ranges.push((id, range));
        }
        for k in 0..170u32 {
            let key = format!("k{k:03}");
            let mut got = Vec::new();
            t.matching(key.as_bytes(), &mut got);
            got.sort_unstable();
            got.dedup();
            let mut want: Vec<u32> = ranges
                .iter()
                .filter(|(_, r)| r.contains(key.as_bytes()))
                .map(|(id, _)| *id)
                .collect();
            want.sort_unstable();
            want.dedup();
            assert_eq!(got, want, "key {key}");
        }
    }

    #[test]
    fn interning_and_release() {
        let mut t = RangeTable::default();
        let a = t.intern(r("a", Some("b")));
        let a2 = t.intern(r("a", Some("b")));
        assert_eq!(a, a2);
        let s = t.intern(r("a", None));
        assert_ne!(a, s);
        assert_eq!(t.len(), 2);
        t.release(a);
        assert_eq!(t.len(), 2);
        t.release(a2);
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.matching(b"a", &mut out);
        assert!(out.is_empty(), "no synced watchers");
        let pos = t.add_synced(s, 7);
        assert_eq!(pos, 0);
        t.matching(b"a", &mut out);
        assert_eq!(out, vec![s]);
        assert_eq!(t.remove_synced(s, 0), None);
        t.release(s);
        assert_eq!(t.len(), 0);
    }
}
