//! The per-stream response queue between the watchable store (producer, on the apply
//! thread or the sync thread) and the gRPC stream (one async consumer).
//!
//! Invariants:
//! - Pushing never blocks: an event response is refused when the queue already holds its
//!   capacity (the watcher then becomes a victim); control responses (created, canceled,
//!   progress, compacted) are always accepted, so they are never lost or reordered with the
//!   events of the same watcher.
//! - Responses come out in push order. After [`Queue::close`] the consumer gets `None`.
//! - Wake-ups are not lost: `tokio::sync::Notify` keeps a permit when no one is waiting.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::WatchResponse;

#[derive(Debug, Default)]
struct Inner {
    msgs: VecDeque<WatchResponse>,
    closed: bool,
}

/// A stream's queue of responses.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Queue {
    /// Queues an event response unless `cap` responses are already queued; gives it back
    /// if the queue is full or closed.
    pub fn try_push(&self, resp: WatchResponse, cap: usize) -> Result<(), WatchResponse> {
        let mut q = self.inner.lock();
        if q.closed || q.msgs.len() >= cap {
            return Err(resp);
        }
        q.msgs.push_back(resp);
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a control response whatever the length.
    pub fn push(&self, resp: WatchResponse) {
        let mut q = self.inner.lock();
        if q.closed {
            return;
        }
        q.msgs.push_back(resp);
        drop(q);
        self.wake.notify_one();
    }

    /// Number of queued responses.
    pub fn len(&self) -> usize {
        self.inner.lock().msgs.len()
    }

    /// Ends the stream: queued responses are dropped, the consumer gets `None`.
    pub fn close(&self) {
        let mut q = self.inner.lock();
        q.closed = true;
        q.msgs = VecDeque::new();
        drop(q);
        self.wake.notify_one();
    }

    /// The next response, waiting for one; `None` once closed.
    pub async fn recv(&self) -> Option<WatchResponse> {
        loop {
            {
                let mut q = self.inner.lock();
                if q.closed {
                    return None;
                }
                if let Some(m) = q.msgs.pop_front() {
                    // A drained burst (e.g. thousands of `created`) gives its memory back.
                    if q.msgs.is_empty() && q.msgs.capacity() > 256 {
                        q.msgs.shrink_to(16);
                    }
                    return Some(m);
                }
            }
            self.wake.notified().await;
        }
    }

    /// The next response if one is queued.
    pub fn try_recv(&self) -> Option<WatchResponse> {
        let mut q = self.inner.lock();
        if q.closed {
            return None;
        }
        q.msgs.pop_front()
    }
}
