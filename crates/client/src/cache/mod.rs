//! A watched, typed, in-memory copy of a key prefix (etcd's `mirror`, grown up).
//!
//! ```no_run
//! # async fn demo(client: oxcd_client::Client) -> oxcd_client::Result<()> {
//! use oxcd_client::cache::{CacheBuilder, ChangeKind};
//! #[derive(serde::Deserialize)]
//! struct Hook { url: String }
//! let cache = CacheBuilder::<Hook>::json("/cwm/shop/webhooks/")
//!     .on_prefix("/cwm/shop/webhooks/", |c| {
//!         if let ChangeKind::Put(h) = &c.kind {
//!             println!("{} -> {} at {}", c.key, h.url, c.revision);
//!         }
//!     })
//!     .start(&client)
//!     .await?;
//! let hook = cache.get("/cwm/shop/webhooks/1");
//! # Ok(()) }
//! ```
//!
//! Invariants:
//! - The cache lists the prefix at a revision R, then watches it from R + 1; events are
//!   applied one at a time in revision order, so the content is always the prefix as of
//!   [`Health::revision`] (less values that do not decode, see below).
//! - A broken watch is re-opened from the last applied revision + 1 on the next endpoint,
//!   after an exponential backoff (1 s doubling up to 60 s, plus up to 25 % jitter within
//!   that bound; reset once a stream delivers). A watch refused because that revision was compacted makes the cache
//!   list again and report only the differences ([`Source::Relist`]).
//! - A value that does not decode is reported ([`ChangeKind::Invalid`],
//!   [`Health::invalid`]) and the key keeps its last good value.
//! - Callbacks run on the cache's task, one change at a time, in revision order, never under
//!   the cache's lock (they may read the cache). A slow callback delays the cache.
//! - Lookups ([`ConfigCache::get`]) are one hash-map read under a read lock.

mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use state::State;
pub use state::{Change, ChangeKind, Decoder, Entry, Source};

use crate::{Client, Error, GetOptions, Result, WatchOptions};

/// A change callback.
pub type Callback<T> = Arc<dyn Fn(&Change<T>) + Send + Sync>;

/// Check a namespace against the seed's rule `[a-zA-Z0-9_-]{1,64}`.
pub fn validate_namespace(ns: &str) -> Result<()> {
    let ok = (1..=64).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "namespace {ns:?} must match [a-zA-Z0-9_-]{{1,64}}"
        )))
    }
}

/// Reconnect and progress settings.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// First reconnect delay.
    pub min_backoff: Duration,
    /// Largest reconnect delay.
    pub max_backoff: Duration,
    /// How often the cache asks for a progress notification (keeps lag accurate while idle).
    pub progress_interval: Duration,
    /// A stream silent for this long (no answer to progress requests) is treated as broken.
    pub stale_after: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            progress_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(20),
        }
    }
}

impl CacheOptions {
    /// The delay before reconnect attempt `n` (0-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let d = self
            .min_backoff
            .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        d.mul_f64(1.0 + rand::random::<f64>() * 0.25)
            .min(self.max_backoff)
    }
}

/// How the cache is doing.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// A watch stream is open.
    pub connected: bool,
    /// The revision the content reflects.
    pub revision: i64,
    /// The newest cluster revision seen in any response.
    pub cluster_revision: i64,
    /// `cluster_revision - revision` (0 when caught up).
    pub lag: i64,
    /// Watch streams opened after the first.
    pub reconnects: u64,
    /// Lists after the first (each after a compaction).
    pub relists: u64,
    /// The revision ranges `(from, to]` covered by the last (up to 16) re-lists: changes
    /// inside them were reported only as the difference between two lists.
    pub relist_gaps: Vec<(i64, i64)>,
    /// The last error met, with the endpoint it came from.
    pub last_error: Option<String>,
    /// Keys whose newest value does not decode: key → (revision, reason).
    pub invalid: BTreeMap<String, (i64, String)>,
}

struct Shared<T> {
    state: RwLock<State<T>>,
    health: Mutex<Health>,
    by_key: RwLock<HashMap<String, Vec<Callback<T>>>>,
    by_prefix: RwLock<Vec<(String, Callback<T>)>>,
}

/// Builds a [`ConfigCache`].
pub struct CacheBuilder<T> {
    prefix: String,
    decoder: Decoder<T>,
    opts: CacheOptions,
    by_key: HashMap<String, Vec<Callback<T>>>,
    by_prefix: Vec<(String, Callback<T>)>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> CacheBuilder<T> {
    /// A cache of `prefix` whose values are JSON.
    pub fn json(prefix: impl Into<String>) -> Self {
        Self::with_decoder(prefix, |b: &[u8]| {
            serde_json::from_slice(b).map_err(|e| e.to_string())
        })
    }

    /// A cache of `/{root}/{namespace}/` (the namespace checked by [`validate_namespace`]).
    pub fn namespace(root: &str, namespace: &str) -> Result<Self> {
        validate_namespace(namespace)?;
        Ok(Self::json(format!(
            "{}/{namespace}/",
            root.trim_end_matches('/')
        )))
    }
}

impl<T: Send + Sync + 'static> CacheBuilder<T> {
    /// A cache of `prefix` with a custom decoder.
    pub fn with_decoder(
        prefix: impl Into<String>,
        decode: impl Fn(&[u8]) -> std::result::Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        CacheBuilder {
            prefix: prefix.into(),
            decoder: Arc::new(decode),
            opts: CacheOptions::default(),
            by_key: HashMap::new(),
            by_prefix: Vec::new(),
        }
    }

    /// Reconnect and progress settings.
    pub fn options(mut self, opts: CacheOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Call `f` on every change of `key` (including the first list).
    pub fn on_key(
        mut self,
        key: impl Into<String>,
        f: impl Fn(&Change<T>) + Send + Sync + 'static,
    ) -> Self {
        self.by_key.entry(key.into()).or_default().push(Arc::new(f));
        self
    }

    /// Call `f` on every change of a key starting with `prefix` (including the first list).
    pub fn on_prefix(
        mut self,
        prefix: impl Into<String>,
        f: impl Fn(&Change<T>) + Send + Sync + 'static,
    ) -> Self {
        self.by_prefix.push((prefix.into(), Arc::new(f)));
        self
    }

    /// List the prefix (failing if that fails: e.g. the cluster is unreachable), then keep
    /// the cache up to date in a background task.
    pub async fn start(self, client: &Client) -> Result<ConfigCache<T>> {
        if self.prefix.is_empty() {
            return Err(Error::InvalidArgument(
                "cache prefix must not be empty".into(),
            ));
        }
        let shared = Arc::new(Shared {
            state: RwLock::new(State::default()),
            health: Mutex::new(Health::default()),
            by_key: RwLock::new(self.by_key),
            by_prefix: RwLock::new(self.by_prefix),
        });
        let worker = Worker {
            client: client.clone(),
            prefix: self.prefix.clone(),
            decoder: self.decoder,
            opts: self.opts,
            shared: shared.clone(),
        };
        worker
            .list(Source::Initial)
            .await
            .map_err(|e| Error::Context {
                context: format!(
                    "cache of {:?}: first list from {} failed",
                    self.prefix,
                    client.current_endpoint()
                ),
                source: Box::new(e),
            })?;
        let task = tokio::spawn(worker.run());
        Ok(ConfigCache {
            prefix: self.prefix,
            shared,
            task,
        })
    }
}

/// The cache (see the module docs). Dropping it stops its task.
pub struct ConfigCache<T> {
    prefix: String,
    shared: Arc<Shared<T>>,
    task: JoinHandle<()>,
}

impl<T> Drop for ConfigCache<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> std::fmt::Debug for ConfigCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<T: Send + Sync + 'static> ConfigCache<T> {
    /// The cached prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The value of `key`, if present (and decodable at least once).
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        let st = self.shared.state.read().expect("cache lock");
        st.entries.get(key).map(|e| e.value.clone())
    }

    /// The entry of `key` with its revisions.
    pub fn entry(&self, key: &str) -> Option<Entry<T>> {
        let st = self.shared.state.read().expect("cache lock");
        st.entries.get(key).cloned()
    }

    /// Every entry, sorted by key, and the revision they reflect.
    pub fn snapshot(&self) -> (i64, BTreeMap<String, Entry<T>>) {
        let st = self.shared.state.read().expect("cache lock");
        let m = st
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        (st.revision, m)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.shared.state.read().expect("cache lock").entries.len()
    }

    /// Whether the cache has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache's health.
    pub fn health(&self) -> Health {
        let mut h = self.shared.health.lock().expect("health lock").clone();
        let st = self.shared.state.read().expect("cache lock");
        h.revision = st.revision;
        h.cluster_revision = h.cluster_revision.max(st.revision);
        h.lag = h.cluster_revision - st.revision;
        h.invalid = st
            .invalid
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        h
    }

    /// Wait (up to `timeout`) until the content reflects at least `revision`.
    pub async fn wait_revision(&self, revision: i64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.shared.state.read().expect("cache lock").revision < revision {
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "cache of {:?} did not reach revision {revision} in {timeout:?}",
                    self.prefix
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Add a key callback (it sees changes from now on).
    pub fn on_key(&self, key: impl Into<String>, f: impl Fn(&Change<T>) + Send + Sync + 'static) {
        let mut m = self.shared.by_key.write().expect("callback lock");
        m.entry(key.into()).or_default().push(Arc::new(f));
    }

    /// Add a prefix callback (it sees changes from now on).
    pub fn on_prefix(
        &self,
        prefix: impl Into<String>,
        f: impl Fn(&Change<T>) + Send + Sync + 'static,
    ) {
        let mut v = self.shared.by_prefix.write().expect("callback lock");
        v.push((prefix.into(), Arc::new(f)));
    }
}

/// Why a watch stream ended.
enum Ended {
    /// The start revision was compacted: list again.
    Compacted,
    /// Broken stream or refused watch (with the error).
    Broken(String),
}

struct Worker<T> {
    client: Client,
    prefix: String,
    decoder: Decoder<T>,
    opts: CacheOptions,
    shared: Arc<Shared<T>>,
}

impl<T: Send + Sync + 'static> Worker<T> {
    fn note_error(&self, e: &str) {
        let mut h = self.shared.health.lock().expect("health lock");
        h.connected = false;
        h.last_error = Some(format!("{}: {e}", self.client.current_endpoint()));
        tracing::warn!(prefix = %self.prefix, error = %e, "config cache");
    }

    fn note_cluster_revision(&self, rev: i64) {
        let mut h = self.shared.health.lock().expect("health lock");
        h.cluster_revision = h.cluster_revision.max(rev);
    }

    fn notify(&self, changes: &[Change<T>]) {
        if changes.is_empty() {
            return;
        }
        let by_key = self.shared.by_key.read().expect("callback lock").clone();
        let by_prefix = self.shared.by_prefix.read().expect("callback lock").clone();
        for c in changes {
            if let ChangeKind::Invalid(e) = &c.kind {
                tracing::warn!(key = %c.key, revision = c.revision, error = %e, "config cache: value does not decode, keeping the last good one");
            }
            for f in by_key.get(&c.key).into_iter().flatten() {
                f(c);
            }
            for (p, f) in &by_prefix {
                if c.key.starts_with(p.as_str()) {
                    f(c);
                }
            }
        }
    }

    /// List the prefix and replace the content with it.
    async fn list(&self, source: Source) -> Result<()> {
        let resp = self
            .client
            .range(self.prefix.clone(), &GetOptions::prefix())
            .await?;
        let rev = resp.header.map(|h| h.revision).unwrap_or(0);
        let (from, changes) = {
            let mut st = self.shared.state.write().expect("cache lock");
            let from = st.revision;
            (from, st.relist(&resp.kvs, rev, &self.decoder, source))
        };
        self.note_cluster_revision(rev);
        if source == Source::Relist {
            let mut h = self.shared.health.lock().expect("health lock");
            h.relists += 1;
            if h.relist_gaps.len() == 16 {
                h.relist_gaps.remove(0);
            }
            h.relist_gaps.push((from, rev));
        }
        self.notify(&changes);
        Ok(())
    }

    async fn run(self) {
        let mut failures: u32 = 0;
        let mut need_list = false;
        let mut opened_before = false;
        loop {
            if need_list {
                if let Err(e) = self.list(Source::Relist).await {
                    self.note_error(&format!("re-list failed: {e}"));
                    self.client.fail_over();
                    tokio::time::sleep(self.opts.backoff(failures)).await;
                    failures = failures.saturating_add(1);
                    continue;
                }
                need_list = false;
            }
            let start = self.shared.state.read().expect("cache lock").revision + 1;
            let (ended, delivered) = self.watch(start, &mut opened_before).await;
            if delivered {
                failures = 0;
            }
            match ended {
                Ended::Compacted => {
                    self.note_error(&format!(
                        "watch from revision {start} was compacted; listing again"
                    ));
                    need_list = true;
                }
                Ended::Broken(e) => {
                    self.note_error(&e);
                    self.client.fail_over();
                    tokio::time::sleep(self.opts.backoff(failures)).await;
                    failures = failures.saturating_add(1);
                }
            }
        }
    }

    /// Watch from `start` until the stream ends; returns why, and whether it delivered
    /// anything.
    async fn watch(&self, start: i64, opened_before: &mut bool) -> (Ended, bool) {
        let opts = WatchOptions {
            start_revision: start,
            ..WatchOptions::prefix()
        };
        let (watcher, mut stream) = match self.client.watch(self.prefix.clone(), &opts).await {
            Ok(w) => w,
            Err(Error::WatchCanceled(reason)) if reason.contains("compacted") => {
                return (Ended::Compacted, false)
            }
            Err(e) => return (Ended::Broken(format!("opening watch: {e}")), false),
        };
        {
            let mut h = self.shared.health.lock().expect("health lock");
            h.connected = true;
            if *opened_before {
                h.reconnects += 1;
            }
        }
        *opened_before = true;
        let mut delivered = false;
        let mut tick = tokio::time::interval(self.opts.progress_interval);
        tick.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let resp = match msg {
                        Some(Ok(r)) => r,
                        Some(Err(e)) => return (Ended::Broken(format!("watch stream: {e}")), delivered),
                        None => return (Ended::Broken("watch stream ended".into()), delivered),
                    };
                    last_heard = Instant::now();
                    if resp.compact_revision != 0 {
                        return (Ended::Compacted, delivered);
                    }
                    if resp.canceled {
                        return (Ended::Broken(format!("watch canceled: {}", resp.cancel_reason)), delivered);
                    }
                    let hdr = resp.header.map(|h| h.revision).unwrap_or(0);
                    self.note_cluster_revision(hdr);
                    delivered = true;
                    let changes = {
                        let mut st = self.shared.state.write().expect("cache lock");
                        if resp.events.is_empty() && !resp.created {
                            // A progress notification: everything up to `hdr` was sent.
                            st.revision = st.revision.max(hdr);
                            Vec::new()
                        } else {
                            st.apply(&resp.events, &self.decoder)
                        }
                    };
                    self.notify(&changes);
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > self.opts.stale_after {
                        return (Ended::Broken(format!("watch silent for {:?}", self.opts.stale_after)), delivered);
                    }
                    if watcher.request_progress().await.is_err() {
                        return (Ended::Broken("watch request side closed".into()), delivered);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_the_seed_rule() {
        for ok in ["a", "shop-1", "A_b", &"x".repeat(64)] {
            validate_namespace(ok).unwrap();
        }
        for bad in ["", "a/b", "ü", "a b", &"x".repeat(65), ".."] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_goes_from_one_to_sixty_seconds() {
        let o = CacheOptions::default();
        let b0 = o.backoff(0);
        assert!(b0 >= Duration::from_secs(1) && b0 <= Duration::from_millis(1250));
        let b3 = o.backoff(3);
        assert!(b3 >= Duration::from_secs(8) && b3 <= Duration::from_secs(10));
        let b = o.backoff(40);
        assert_eq!(b, Duration::from_secs(60));
    }
}
