//! Delivery of a published batch to the synced watchers (etcd's `notify`), called by
//! [`Store::publish`](crate::Store::publish) on the apply thread.
//!
//! Invariants:
//! - Runs under the state lock and never blocks: a watcher whose stream queue is full
//!   becomes a victim holding its response, with `min_rev` past the batch.
//! - A watcher gets one response per batch holding all its events of the batch (so never
//!   part of a revision); it shares the batch's event list when it wants all of it.

use std::collections::HashMap;
use std::sync::Arc;

use oxcd_api::mvccpb::Event;

use super::{Inner, Shared, State, NO_DELETE, NO_PUT, SENT};
use crate::store::EventSink;

impl Inner {
    /// Hands a published batch to the synced watchers (etcd's `notify`).
    /// Returns true if it moved watchers to unsynced.
    fn notify(&mut self, rev: i64, events: Vec<Event>) -> bool {
        if rev <= self.rev {
            return false;
        }
        let first = events
            .first()
            .and_then(|e| e.kv.as_ref())
            .map_or(0, |kv| kv.mod_revision);
        let last = events
            .last()
            .and_then(|e| e.kv.as_ref())
            .map_or(0, |kv| kv.mod_revision);
        if first != self.rev + 1 || last != rev {
            // Revisions are missing from the batch (a snapshot was installed): catch every
            // synced watcher up from the backend instead.
            tracing::info!(
                from = self.rev + 1,
                to = rev,
                "watch: revisions skipped; resyncing watchers"
            );
            let from = self.rev + 1;
            self.rev = rev;
            for slot in 0..self.watchers.len() as u32 {
                if self.watchers[slot as usize].state == State::Synced {
                    self.detach(slot);
                    self.watchers[slot as usize].min_rev = from;
                    self.attach(slot, State::Unsynced);
                }
            }
            self.kicked = true;
            return true;
        }
        self.rev = rev;
        let all: Arc<[Event]> = events.into();
        // Entry id -> indexes of the batch's events in its range.
        let mut hits: Vec<(u32, Vec<u32>)> = Vec::new();
        let mut hit_index: HashMap<u32, usize> = HashMap::new();
        let mut matched = Vec::new();
        for (i, ev) in all.iter().enumerate() {
            let Some(kv) = ev.kv.as_ref() else { continue };
            matched.clear();
            self.ranges.matching(&kv.key, &mut matched);
            for &e in &matched {
                let h = *hit_index.entry(e).or_insert_with(|| {
                    hits.push((e, Vec::new()));
                    hits.len() - 1
                });
                hits[h].1.push(i as u32);
            }
        }
        for (entry, idx) in hits {
            let shared: Arc<[Event]> = if idx.len() == all.len() {
                Arc::clone(&all)
            } else {
                idx.iter().map(|&i| all[i as usize].clone()).collect()
            };
            // A victim is swap-removed from the list: the last watcher moves into its
            // place and is visited next.
            let mut i = 0;
            while i < self.ranges.get(entry).synced.len() {
                let slot = self.ranges.get(entry).synced[i];
                i += 1;
                let w = self.watchers[slot as usize];
                let plain = w.flags & (NO_PUT | NO_DELETE) == 0
                    && shared
                        .first()
                        .and_then(|e| e.kv.as_ref())
                        .is_some_and(|kv| kv.mod_revision >= w.min_rev);
                let evs = if plain {
                    Arc::clone(&shared)
                } else {
                    let v: Vec<Event> = shared.iter().filter(|e| w.wants(e)).cloned().collect();
                    if v.is_empty() {
                        continue;
                    }
                    v.into()
                };
                let resp = w.response(rev, evs);
                let Some(s) = self.streams[w.stream as usize].as_ref() else {
                    continue;
                };
                match s.queue.try_push(resp, s.cap()) {
                    Ok(()) => self.watchers[slot as usize].flags |= SENT,
                    Err(resp) => {
                        self.detach(slot);
                        self.watchers[slot as usize].min_rev = rev + 1;
                        self.make_victim(slot, resp);
                        i -= 1;
                    }
                }
            }
        }
        false
    }
}

impl EventSink for Shared {
    fn published(&self, rev: i64, events: Vec<Event>) {
        let mut st = self.inner.lock();
        let resync = st.notify(rev, events);
        drop(st);
        if resync {
            self.kick.notify_one();
        }
    }
}
