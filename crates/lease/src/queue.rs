//! A min-queue of (instant, lease id) with lazy invalidation, used for expiry and for
//! checkpoint scheduling (etcd's `LeaseExpiredNotifier` and `leaseCheckpointHeap`).
//!
//! Invariants: an entry is *live* only if the owner still records that same instant for
//! that lease (the owner checks on pop); stale entries are skipped. The queue is rebuilt
//! from the owner's live entries when it grows past twice their number (plus slack), so
//! frequent renewals cannot grow it without bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::LeaseId;

/// Entries beyond twice the live ones tolerated before a rebuild.
const REBUILD_SLACK: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct TimeQueue {
    heap: BinaryHeap<Reverse<(Instant, LeaseId)>>,
}

impl TimeQueue {
    pub(crate) fn push(&mut self, at: Instant, id: LeaseId) {
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest entry, if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, LeaseId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the queue holds too many stale entries for `live` live ones.
    pub(crate) fn needs_rebuild(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + REBUILD_SLACK
    }

    /// Replaces the content with exactly `live`.
    pub(crate) fn rebuild(&mut self, live: impl Iterator<Item = (Instant, LeaseId)>) {
        self.heap = live.map(Reverse).collect();
    }
}
