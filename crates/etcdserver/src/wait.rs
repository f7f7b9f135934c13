//! etcd's `wait.Wait`: a registry from proposal id to the oneshot on which the proposing
//! request waits for its apply result.
//!
//! Invariants: an id is registered before its proposal enters Raft and is removed exactly
//! once, by `trigger` (the apply loop) or by `cancel` (the request gave up); a trigger for an
//! id nobody waits on (another member's proposal, or one that timed out) is a no-op.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Registry of pending proposals, sharded to keep lock hold times short.
pub struct Wait<T> {
    shards: Vec<Mutex<HashMap<u64, oneshot::Sender<T>>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<T> Wait<T> {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, oneshot::Sender<T>>> {
        &self.shards[(id % self.shards.len() as u64) as usize]
    }

    /// Registers `id`; the returned receiver yields the apply result.
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().insert(id, tx);
        rx
    }

    /// Delivers `value` to the waiter of `id`, if any.
    pub fn trigger(&self, id: u64, value: T) {
        if let Some(tx) = self.shard(id).lock().remove(&id) {
            let _ = tx.send(value);
        }
    }

    /// Forgets `id` (its request timed out or was dropped).
    pub fn cancel(&self, id: u64) {
        self.shard(id).lock().remove(&id);
    }

    /// Whether anyone waits on `id`.
    #[cfg(test)]
    pub fn is_registered(&self, id: u64) -> bool {
        self.shard(id).lock().contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_the_registered_waiter_once() {
        let w = Wait::default();
        let rx = w.register(42);
        assert!(w.is_registered(42));
        w.trigger(42, "done");
        w.trigger(42, "again");
        assert_eq!(rx.await.unwrap(), "done");
        assert!(!w.is_registered(42));
        w.trigger(7, "nobody");
    }
}
