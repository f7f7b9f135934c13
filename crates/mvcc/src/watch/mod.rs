//! The watchable store: etcd's `watchableStore` (`server/storage/mvcc/watchable_store.go`,
//! `watcher_group.go`, `watcher.go`) over [`Store`].
//!
//! A [`WatchStream`] (one per gRPC Watch stream) carries many watchers and one response
//! [`Queue`]. Each watcher is in exactly one state:
//! - *synced*: it has every event up to the store's notified revision; it sits in its range
//!   entry's synced list and receives the events of each published batch directly
//!   (from [`Store::publish`], on the apply thread);
//! - *unsynced*: its next revision `min_rev` is `<=` the notified revision; the sync thread
//!   catches it up from the backend in batches (at most [`MAX_REVS_PER_SYNC`] revisions per
//!   watcher per round), then moves it to synced;
//! - *victim*: its stream's queue was full; it holds the one response it could not get and
//!   is not fed anything else; the sync thread retries the response every 10 ms, then
//!   moves the watcher to unsynced (or synced if nothing happened since);
//! - *compacted*: it fell behind the compaction revision, got `compact_revision` and
//!   `canceled`; it keeps its id until the client cancels it or the stream ends.
//!
//! Invariants:
//! - Events reach watchers only after their batch committed and was published: the store
//!   calls [`EventSink::published`] from `publish`, which takes the state lock, so `rev`
//!   (the notified revision) only ever covers delivered-or-queued events.
//! - Per watcher, responses are queued in revision order, with no revision twice and none
//!   skipped from its start revision on (until it is canceled or compacted); all events
//!   of one revision go in one response. The `created` response is queued, under the
//!   same lock that registers the watcher, before any of its events.
//! - A published batch that does not cover every revision since `rev` (the store was
//!   reloaded from a snapshot) moves all synced watchers to unsynced, so they are caught
//!   up from the backend instead of missing revisions.
//! - Nothing here blocks the apply thread on a client: queue pushes never wait, and the
//!   sync thread reads large catch-ups without holding the state lock (only catch-ups of
//!   at most [`LOCKED_SYNC_REVS`] revisions read under it, which guarantees progress).
//! - A stream-wide progress request is answered (watch id -1) only when every watcher of
//!   the stream is synced; otherwise it is answered as soon as they all are.

mod notify;
mod queue;
mod ranges;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use oxcd_api::etcdserverpb::WatchCreateRequest;
use oxcd_api::mvccpb::{event::EventType, Event};
use parking_lot::{Condvar, Mutex};

use crate::store::{EventSink, Store};
use queue::Queue;
use ranges::{KeyRange, RangeTable};

/// etcd's `ErrWatcherDuplicateID`.
pub const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's `ErrEmptyWatcherRange`.
pub const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// etcd's `clientv3.InvalidWatchID`: the id of stream-wide progress responses and of
/// refused creates.
pub const INVALID_WATCH_ID: i64 = -1;
/// Most revisions one watcher is caught up by per sync round (etcd's `watchBatchMaxRevs`).
pub const MAX_REVS_PER_SYNC: i64 = 1000;
/// Catch-ups of at most this many revisions read the backend under the state lock.
pub const LOCKED_SYNC_REVS: i64 = 256;
/// Most unsynced watchers handled per sync round (etcd's `maxWatchersPerSync`).
pub const MAX_WATCHERS_PER_SYNC: usize = 512;
/// A stream queue holds at most this many responses plus two per watcher of the stream.
pub const QUEUE_BASE: usize = 128;

/// A response for the gRPC layer, which adds the header's cluster fields, the previous
/// kvs (`prev_kv`) and fragmentation (`fragment`).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchResponse {
    pub watch_id: i64,
    /// The header revision.
    pub revision: i64,
    pub events: Arc<[Event]>,
    pub compact_revision: i64,
    pub created: bool,
    pub canceled: bool,
    pub cancel_reason: &'static str,
    /// The watcher asked for previous kvs.
    pub prev_kv: bool,
    /// The watcher allows fragmented responses.
    pub fragment: bool,
}

impl WatchResponse {
    fn new(watch_id: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            watch_id,
            revision,
            events: Arc::from(Vec::new()),
            compact_revision: 0,
            created: false,
            canceled: false,
            cancel_reason: "",
            prev_kv: false,
            fragment: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Free,
    Synced,
    Unsynced,
    Victim,
    Compacted,
}

const NO_PUT: u8 = 1;
const NO_DELETE: u8 = 2;
const PREV_KV: u8 = 4;
const FRAGMENT: u8 = 8;
const PROGRESS: u8 = 16;
/// Events were queued since the last progress tick.
const SENT: u8 = 32;
/// Being caught up by the sync thread (outside the lock).
const SYNCING: u8 = 64;

/// One watcher: 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Watcher {
    id: i64,
    /// The next revision it is owed.
    min_rev: i64,
    range: u32,
    stream: u32,
    /// Its index in the list of its state (synced list, unsynced, victims).
    pos: u32,
    state: State,
    flags: u8,
}

impl Watcher {
    const FREE: Watcher = Watcher {
        id: 0,
        min_rev: 0,
        range: 0,
        stream: 0,
        pos: 0,
        state: State::Free,
        flags: 0,
    };

    /// Whether the watcher wants `ev` (filters and start revision).
    fn wants(&self, ev: &Event) -> bool {
        let rev = ev.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        if rev < self.min_rev {
            return false;
        }
        if ev.r#type == EventType::Delete as i32 {
            self.flags & NO_DELETE == 0
        } else {
            self.flags & NO_PUT == 0
        }
    }

    fn response(&self, revision: i64, events: Arc<[Event]>) -> WatchResponse {
        WatchResponse {
            events,
            prev_kv: self.flags & PREV_KV != 0,
            fragment: self.flags & FRAGMENT != 0,
            ..WatchResponse::new(self.id, revision)
        }
    }
}

#[derive(Debug)]
struct StreamState {
    queue: Arc<Queue>,
    ids: HashMap<i64, u32>,
    next_id: i64,
    /// Watchers in state unsynced or victim.
    not_synced: u32,
    deferred_progress: bool,
}

impl StreamState {
    fn cap(&self) -> usize {
        QUEUE_BASE + 2 * self.ids.len()
    }
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
struct Inner {
    /// The last revision whose events were handed to watchers.
    rev: i64,
    watchers: Vec<Watcher>,
    free: Vec<u32>,
    ranges: RangeTable,
    unsynced: Vec<u32>,
    victims: Vec<(u32, WatchResponse)>,
    streams: Vec<Option<StreamState>>,
    free_streams: Vec<u32>,
    /// The sync thread has work it was not told of yet.
    kicked: bool,
}

/// Counts of watchers by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub streams: usize,
    pub watchers: usize,
    pub synced: usize,
    pub unsynced: usize,
    pub victims: usize,
    pub ranges: usize,
}

pub(crate) struct Shared {
    store: Arc<Store>,
    inner: Mutex<Inner>,
    /// Wakes the sync thread.
    kick: Condvar,
    stop: AtomicBool,
}

/// The watchable store (see the module doc). Dropping it stops its sync thread; streams
/// still open keep working for synced watchers.
pub struct WatchableStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WatchableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchableStore")
            .field("stats", &self.stats())
            .finish()
    }
}

impl WatchableStore {
    /// Attaches a watchable store to `store` and starts its sync thread. A store takes one
    /// watchable store in its life; a second one is an error.
    pub fn new(store: Arc<Store>) -> std::io::Result<WatchableStore> {
        let shared = Arc::new(Shared {
            store: Arc::clone(&store),
            inner: Mutex::new(Inner::default()),
            kick: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sink: Arc<dyn EventSink> = shared.clone();
        if store.watch_sink.set(Arc::downgrade(&sink)).is_err() {
            return Err(std::io::Error::other(
                "the store already has a watchable store",
            ));
        }
        {
            let mut st = shared.inner.lock();
            st.rev = st.rev.max(store.published_revision());
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("watch-sync".into())
            .spawn(move || sync::run(weak))?;
        Ok(WatchableStore { shared })
    }

    /// The store watched.
    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// The last revision whose events were handed to watchers.
    pub fn rev(&self) -> i64 {
        self.shared.inner.lock().rev
    }

    /// Opens a stream.
    pub fn open_stream(&self) -> WatchStream {
        let queue = Arc::new(Queue::default());
        let mut st = self.shared.inner.lock();
        let s = StreamState {
            queue: Arc::clone(&queue),
            ids: HashMap::new(),
            next_id: 0,
            not_synced: 0,
            deferred_progress: false,
        };
        let id = match st.free_streams.pop() {
            Some(id) => {
                st.streams[id as usize] = Some(s);
                id
            }
            None => {
                st.streams.push(Some(s));
                (st.streams.len() - 1) as u32
            }
        };
        WatchStream {
            shared: Arc::clone(&self.shared),
            id,
            queue,
            closed: AtomicBool::new(false),
        }
    }

    /// Counts of streams and watchers by state.
    pub fn stats(&self) -> WatchStats {
        let st = self.shared.inner.lock();
        let mut s = WatchStats {
            streams: st.streams.iter().flatten().count(),
            unsynced: st.unsynced.len(),
            victims: st.victims.len(),
            ranges: st.ranges.len(),
            ..WatchStats::default()
        };
        for w in &st.watchers {
            match w.state {
                State::Free => {}
                State::Synced => {
                    s.watchers += 1;
                    s.synced += 1;
                }
                _ => s.watchers += 1,
            }
        }
        s
    }
}

impl Drop for WatchableStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.kick.notify_all();
    }
}

/// One watch stream: its watchers and its response queue. Dropping it (or
/// [`WatchStream::close`]) cancels every watcher and ends the queue.
pub struct WatchStream {
    shared: Arc<Shared>,
    id: u32,
    queue: Arc<Queue>,
    closed: AtomicBool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").field("id", &self.id).finish()
    }
}

impl WatchStream {
    /// Answers a create refused before it reached the store (e.g. by auth: etcd's
    /// "etcdserver: permission denied") with `created`, `canceled`, watch id -1 and the
    /// reason.
    pub fn refuse_create(&self, reason: &'static str) {
        let guard = self.shared.inner.lock();
        let rev = guard.rev;
        if let Some(stream) = guard.streams[self.id as usize].as_ref() {
            stream.queue.push(WatchResponse {
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..WatchResponse::new(INVALID_WATCH_ID, rev)
            });
        }
    }

    /// Creates a watcher as asked by `req` and queues its `created` response (header
    /// revision: the notified revision, after which its events start when
    /// `start_revision` is 0). A refused create (empty range, duplicate id) is answered
    /// with `created`, `canceled`, watch id -1 and the reason, as etcd does.
    pub fn watch(&self, req: &WatchCreateRequest) {
        let mut key = req.key.clone();
        if key.is_empty() {
            key = vec![0]; // etcd: "\x00 is the smallest key"
        }
        let end: Option<Box<[u8]>> = match req.range_end.as_slice() {
            [] => None,
            [0] => Some(Box::default()),
            e => Some(Box::from(e)),
        };
        let mut flags = 0;
        for f in &req.filters {
            match *f {
                0 => flags |= NO_PUT,
                1 => flags |= NO_DELETE,
                _ => {}
            }
        }
        if req.prev_kv {
            flags |= PREV_KV;
        }
        if req.fragment {
            flags |= FRAGMENT;
        }
        if req.progress_notify {
            flags |= PROGRESS;
        }

        let mut guard = self.shared.inner.lock();
        let st = &mut *guard;
        let rev = st.rev;
        let Some(stream) = st.streams[self.id as usize].as_mut() else {
            return;
        };
        let refuse = |reason| WatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..WatchResponse::new(INVALID_WATCH_ID, rev)
        };
        if matches!(&end, Some(e) if !e.is_empty() && **e <= *key) {
            stream.queue.push(refuse(ERR_EMPTY_RANGE));
            return;
        }
        let id = if req.watch_id == 0 {
            while stream.ids.contains_key(&stream.next_id) {
                stream.next_id += 1;
            }
            stream.next_id += 1;
            stream.next_id - 1
        } else if stream.ids.contains_key(&req.watch_id) {
            stream.queue.push(refuse(ERR_DUPLICATE_ID));
            return;
        } else {
            req.watch_id
        };
        let min_rev = if req.start_revision == 0 {
            rev + 1
        } else {
            req.start_revision
        };
        stream.queue.push(WatchResponse {
            created: true,
            ..WatchResponse::new(id, rev)
        });
        let range = st.ranges.intern(KeyRange {
            key: key.into(),
            end,
        });
        let slot = match st.free.pop() {
            Some(s) => s,
            None => {
                st.watchers.push(Watcher::FREE);
                (st.watchers.len() - 1) as u32
            }
        };
        st.watchers[slot as usize] = Watcher {
            id,
            min_rev,
            range,
            stream: self.id,
            pos: 0,
            state: State::Free,
            flags,
        };
        if let Some(s) = st.streams[self.id as usize].as_mut() {
            s.ids.insert(id, slot);
        }
        if min_rev > rev {
            st.attach(slot, State::Synced);
        } else {
            st.attach(slot, State::Unsynced);
            st.kicked = true;
            drop(guard);
            self.shared.kick.notify_one();
        }
    }

    /// Cancels watcher `id` and queues its `canceled` response; false (and no response,
    /// as etcd) if the stream has no such watcher.
    pub fn cancel(&self, id: i64) -> bool {
        let mut st = self.shared.inner.lock();
        let rev = st.rev;
        let Some(slot) = st.streams[self.id as usize]
            .as_ref()
            .and_then(|s| s.ids.get(&id).copied())
        else {
            return false;
        };
        st.remove(slot);
        if let Some(s) = st.streams[self.id as usize].as_mut() {
            s.queue.push(WatchResponse {
                canceled: true,
                ..WatchResponse::new(id, rev)
            });
        }
        true
    }

    /// A stream-wide progress request: queues a response with watch id -1 and the notified
    /// revision once every watcher of the stream is synced (at once if they are).
    pub fn request_progress(&self) {
        let mut guard = self.shared.inner.lock();
        let st = &mut *guard;
        let rev = st.rev;
        if let Some(s) = st.streams[self.id as usize].as_mut() {
            if s.not_synced == 0 {
                s.queue.push(WatchResponse::new(INVALID_WATCH_ID, rev));
            } else {
                s.deferred_progress = true;
            }
        }
    }

    /// The per-watcher progress timer fired (etcd's progress ticker): every synced watcher
    /// of the stream that asked for progress notifications and got no event since the
    /// last tick gets an empty response at the notified revision.
    pub fn progress_tick(&self) {
        let mut guard = self.shared.inner.lock();
        let st = &mut *guard;
        let rev = st.rev;
        let Some(s) = st.streams[self.id as usize].as_ref() else {
            return;
        };
        let cap = s.cap();
        for &slot in s.ids.values() {
            let w = &mut st.watchers[slot as usize];
            if w.flags & PROGRESS == 0 {
                continue;
            }
            if w.flags & SENT == 0 && w.state == State::Synced {
                let _ = s.queue.try_push(WatchResponse::new(w.id, rev), cap);
            }
            w.flags &= !SENT;
        }
    }

    /// The next response, waiting for one; `None` once the stream is closed.
    pub async fn recv(&self) -> Option<WatchResponse> {
        self.queue.recv().await
    }

    /// The next response if one is queued.
    pub fn try_recv(&self) -> Option<WatchResponse> {
        self.queue.try_recv()
    }

    /// Number of responses queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Cancels every watcher and ends the queue (idempotent).
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut st = self.shared.inner.lock();
        if let Some(s) = st.streams[self.id as usize].take() {
            s.queue.close();
            // Put it back while removing so `remove` finds it, then free the slot.
            let slots: Vec<u32> = s.ids.values().copied().collect();
            st.streams[self.id as usize] = Some(s);
            for slot in slots {
                st.remove(slot);
            }
            st.streams[self.id as usize] = None;
            st.free_streams.push(self.id);
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// Puts a detached watcher (state `Free`) into `state`'s list (not `Victim`: see
    /// [`Inner::make_victim`]).
    fn attach(&mut self, slot: u32, state: State) {
        let w = self.watchers[slot as usize];
        debug_assert_eq!(w.state, State::Free);
        let pos = match state {
            State::Synced => self.ranges.add_synced(w.range, slot),
            State::Unsynced => {
                self.unsynced.push(slot);
                (self.unsynced.len() - 1) as u32
            }
            State::Compacted => 0,
            State::Victim | State::Free => unreachable!("attach to {state:?}"),
        };
        let w = &mut self.watchers[slot as usize];
        w.pos = pos;
        w.state = state;
        if state == State::Unsynced {
            if let Some(s) = self.streams[w.stream as usize].as_mut() {
                s.not_synced += 1;
            }
        }
        let stream = w.stream;
        if state == State::Synced {
            self.settle_progress(stream);
        }
    }

    /// Makes a detached watcher a victim holding `resp`.
    fn make_victim(&mut self, slot: u32, resp: WatchResponse) {
        self.victims.push((slot, resp));
        let w = &mut self.watchers[slot as usize];
        w.pos = (self.victims.len() - 1) as u32;
        w.state = State::Victim;
        if let Some(s) = self.streams[w.stream as usize].as_mut() {
            s.not_synced += 1;
        }
    }

    /// Takes a watcher out of its state's list (state becomes `Free`; it keeps its slot,
    /// range and id). Returns the victim response it held, if any.
    fn detach(&mut self, slot: u32) -> Option<WatchResponse> {
        let w = self.watchers[slot as usize];
        let mut held = None;
        match w.state {
            State::Free | State::Compacted => {}
            State::Synced => {
                if let Some(moved) = self.ranges.remove_synced(w.range, w.pos) {
                    self.watchers[moved as usize].pos = w.pos;
                }
            }
            State::Unsynced => {
                self.unsynced.swap_remove(w.pos as usize);
                if let Some(&moved) = self.unsynced.get(w.pos as usize) {
                    self.watchers[moved as usize].pos = w.pos;
                }
            }
            State::Victim => {
                let (_, resp) = self.victims.swap_remove(w.pos as usize);
                held = Some(resp);
                if let Some(&(moved, _)) = self.victims.get(w.pos as usize) {
                    self.watchers[moved as usize].pos = w.pos;
                }
            }
        }
        if matches!(w.state, State::Unsynced | State::Victim) {
            if let Some(s) = self.streams[w.stream as usize].as_mut() {
                s.not_synced -= 1;
            }
        }
        self.watchers[slot as usize].state = State::Free;
        held
    }

    /// Removes a watcher for good: out of its list, its range released, its id freed.
    fn remove(&mut self, slot: u32) {
        let w = self.watchers[slot as usize];
        self.detach(slot);
        if w.state != State::Compacted {
            self.ranges.release(w.range);
        }
        if let Some(s) = self.streams[w.stream as usize].as_mut() {
            s.ids.remove(&w.id);
            if s.ids.is_empty() && s.ids.capacity() > 64 {
                s.ids.shrink_to_fit();
            }
        }
        self.watchers[slot as usize] = Watcher::FREE;
        self.free.push(slot);
        self.settle_progress(w.stream);
    }

    /// Sends a deferred stream-wide progress response once every watcher is synced.
    fn settle_progress(&mut self, stream: u32) {
        let rev = self.rev;
        if let Some(s) = self.streams[stream as usize].as_mut() {
            if s.deferred_progress && s.not_synced == 0 {
                s.deferred_progress = false;
                s.queue.push(WatchResponse::new(INVALID_WATCH_ID, rev));
            }
        }
    }

    /// Answers a watcher that fell behind compaction: `compact_revision` and canceled. It
    /// must be detached; if its queue is full it goes back to unsynced (retried later).
    fn compacted(&mut self, slot: u32, compact_rev: i64) {
        let w = self.watchers[slot as usize];
        let resp = WatchResponse {
            compact_revision: compact_rev,
            canceled: true,
            ..WatchResponse::new(w.id, 0)
        };
        let pushed = self.streams[w.stream as usize]
            .as_ref()
            .is_some_and(|s| s.queue.try_push(resp, s.cap()).is_ok());
        if pushed {
            self.ranges.release(w.range);
            self.attach(slot, State::Compacted);
            self.settle_progress(w.stream);
        } else {
            self.attach(slot, State::Unsynced);
        }
    }

    /// Queues `resp` for a detached watcher: on success it becomes synced if it is owed
    /// nothing more (`min_rev > rev`), else unsynced; if the queue is full it becomes a
    /// victim holding `resp`.
    fn deliver(&mut self, slot: u32, resp: WatchResponse) {
        let w = self.watchers[slot as usize];
        let pushed = match self.streams[w.stream as usize].as_ref() {
            Some(s) => s.queue.try_push(resp, s.cap()),
            None => return,
        };
        match pushed {
            Ok(()) => {
                self.watchers[slot as usize].flags |= SENT;
                let state = if w.min_rev > self.rev {
                    State::Synced
                } else {
                    State::Unsynced
                };
                self.attach(slot, state);
            }
            Err(resp) => self.make_victim(slot, resp),
        }
    }
}
