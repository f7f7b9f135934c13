//! The sync thread: etcd's `syncWatchersLoop` (catch unsynced watchers up from the
//! backend) and `syncVictimsLoop` (retry the responses victims could not queue), in one
//! thread.
//!
//! Invariants:
//! - A round chooses at most [`MAX_WATCHERS_PER_SYNC`] unsynced watchers, marks them
//!   `SYNCING`, and reads the revisions `[min of their min_rev, to]` (at most
//!   [`MAX_REVS_PER_SYNC`] of them, `to <= rev`) from one backend read transaction opened
//!   after `rev` was read, so every revision read is committed. It checks the compaction
//!   revision after opening that transaction: a watcher whose `min_rev` is below it is
//!   answered as compacted, anything at or above it is still in the snapshot.
//! - Catch-ups longer than [`LOCKED_SYNC_REVS`] read without the state lock; a watcher
//!   canceled meanwhile has lost its `SYNCING` mark (its slot may be reused), so its result
//!   is dropped. Short catch-ups read under the lock, so a watcher close to the head always
//!   reaches synced even under a constant write load.
//! - The thread holds the shared state only through a `Weak` between rounds; it stops when
//!   the watchable store is dropped.

use std::sync::Weak;
use std::time::Duration;

use oxcd_api::mvccpb::{event::EventType, Event};
use oxcd_storage::schema::KEY_TABLE;
use parking_lot::MutexGuard;

use super::ranges::KeyRange;
use super::{
    Inner, Shared, State, LOCKED_SYNC_REVS, MAX_REVS_PER_SYNC, MAX_WATCHERS_PER_SYNC, SYNCING,
};
use crate::error::{Error, Result};
use crate::revision::{is_tombstone, Revision};
use crate::store::{decode_kv, Store};

/// How often victims are retried.
const VICTIM_RETRY: Duration = Duration::from_millis(10);
/// How often unsynced watchers are looked at without a kick (etcd: 100 ms).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn run(weak: Weak<Shared>) {
    loop {
        let Some(sh) = weak.upgrade() else { return };
        if sh.stop.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let victims = retry_victims(&sh);
        let synced = sync_unsynced(&sh);
        if !victims && !synced {
            let mut st = sh.inner.lock();
            if !st.kicked {
                let wait = if st.victims.is_empty() {
                    SYNC_INTERVAL
                } else {
                    VICTIM_RETRY
                };
                sh.kick.wait_for(&mut st, wait);
            }
            st.kicked = false;
        }
    }
}

/// Retries every victim whose stream has room; true if any was delivered.
fn retry_victims(sh: &Shared) -> bool {
    let mut st = sh.inner.lock();
    let mut progressed = false;
    // Backwards: a delivered victim is swap-removed, moving a visited one into its place; a
    // victim again is appended (also visited).
    let mut i = st.victims.len();
    while i > 0 {
        i -= 1;
        let slot = st.victims[i].0;
        let stream = st.watchers[slot as usize].stream;
        let room = st.streams[stream as usize]
            .as_ref()
            .is_some_and(|s| s.queue.len() < s.cap());
        if !room {
            continue;
        }
        if let Some(resp) = st.detach(slot) {
            st.deliver(slot, resp);
            progressed = true;
        }
    }
    progressed
}

/// One round of catching unsynced watchers up; true if it did anything.
fn sync_unsynced(sh: &Shared) -> bool {
    let mut st = sh.inner.lock();
    if st.unsynced.is_empty() {
        return false;
    }
    let rev = st.rev;
    let compact = sh.store.compact_revision();
    let candidates: Vec<u32> = st
        .unsynced
        .iter()
        .take(MAX_WATCHERS_PER_SYNC)
        .copied()
        .collect();
    let mut chosen = Vec::with_capacity(candidates.len());
    let mut ranges: Vec<(u32, KeyRange)> = Vec::new();
    let mut from = i64::MAX;
    for slot in candidates {
        let w = st.watchers[slot as usize];
        if w.min_rev < compact {
            st.detach(slot);
            st.compacted(slot, compact);
            continue;
        }
        st.watchers[slot as usize].flags |= SYNCING;
        chosen.push(slot);
        from = from.min(w.min_rev);
        if !ranges.iter().any(|(id, _)| *id == w.range) {
            ranges.push((w.range, st.ranges.get(w.range).range.clone()));
        }
    }
    if chosen.is_empty() {
        return false;
    }
    let to = rev.min(from.saturating_add(MAX_REVS_PER_SYNC - 1));
    let ranges: Vec<KeyRange> = ranges.into_iter().map(|(_, r)| r).collect();
    let scanned = if rev - from < LOCKED_SYNC_REVS {
        scan(&sh.store, from, to, &ranges)
    } else {
        MutexGuard::unlocked(&mut st, || scan(&sh.store, from, to, &ranges))
    };
    let (events, compact) = match scanned {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, from, to, "watch: reading history failed");
            for slot in chosen {
                st.watchers[slot as usize].flags &= !SYNCING;
            }
            return false;
        }
    };
    deliver_chosen(&mut st, &chosen, &events, to, compact);
    true
}

/// Hands each still-chosen watcher its events of `[min_rev, to]`.
fn deliver_chosen(st: &mut Inner, chosen: &[u32], events: &[Event], to: i64, compact: i64) {
    for &slot in chosen {
        let w = st.watchers[slot as usize];
        if w.state != State::Unsynced || w.flags & SYNCING == 0 {
            continue; // canceled (and maybe replaced) while the history was read
        }
        st.watchers[slot as usize].flags &= !SYNCING;
        st.detach(slot);
        if w.min_rev < compact {
            st.compacted(slot, compact);
            continue;
        }
        if w.min_rev > to {
            // Another chosen watcher started much earlier; this one is not reached yet.
            st.attach(slot, State::Unsynced);
            continue;
        }
        let range = &st.ranges.get(w.range).range;
        let evs: Vec<Event> = events
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| range.contains(&kv.key)) && w.wants(e))
            .cloned()
            .collect();
        st.watchers[slot as usize].min_rev = to + 1;
        if evs.is_empty() {
            let state = if to + 1 > st.rev {
                State::Synced
            } else {
                State::Unsynced
            };
            st.attach(slot, state);
        } else {
            let resp = st.watchers[slot as usize].response(to, evs.into());
            st.deliver(slot, resp);
        }
    }
}

/// The events of revisions `[from, to]` on keys in any of `ranges`, read from one backend
/// snapshot, and the compaction revision read after that snapshot was taken.
fn scan(store: &Store, from: i64, to: i64, ranges: &[KeyRange]) -> Result<(Vec<Event>, i64)> {
    let rtx = store.backend().read_tx()?;
    let table = rtx
        .open_table(KEY_TABLE)
        .map_err(oxcd_storage::Error::from)?;
    let compact = store.compact_revision();
    let lo = Revision::new(from.max(0), 0).to_bytes();
    let hi = Revision::new(to.saturating_add(1), 0).to_bytes();
    let mut events = Vec::new();
    for entry in table
        .range::<&[u8]>(lo.as_slice()..hi.as_slice())
        .map_err(oxcd_storage::Error::from)?
    {
        let (k, v) = entry.map_err(oxcd_storage::Error::from)?;
        let k = k.value();
        let rev = Revision::from_bytes(k)
            .ok_or_else(|| Error::Corrupt(format!("bad revision key {k:?}")))?;
        let mut kv = decode_kv(rev, v.value())?;
        if !ranges.iter().any(|r| r.contains(&kv.key)) {
            continue;
        }
        let r#type = if is_tombstone(k) {
            kv.mod_revision = rev.main;
            EventType::Delete
        } else {
            EventType::Put
        };
        events.push(Event {
            r#type: r#type as i32,
            kv: Some(kv),
            prev_kv: None,
        });
    }
    Ok((events, compact))
}
