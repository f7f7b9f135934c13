//! Key-value traffic against single members through `etcd-client`: connecting, one-off
//! puts/gets, bulk load, and the check that acknowledged writes survived.
//!
//! Invariants: every connect and RPC is bounded in time; errors come back as text (or, for
//! the verifying helpers, as a panic naming the member and the first differences).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};

use super::{Acked, Cluster};

/// A member's keys under a prefix: key -> (value, mod revision).
type Dump = BTreeMap<String, (String, i64)>;

/// Connects an `etcd-client` to `url` (3 s bound; 10 s per request afterwards).
pub async fn connect(url: String) -> Result<Client, String> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    match tokio::time::timeout(
        Duration::from_secs(3),
        Client::connect([url.clone()], Some(opts)),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("connect {url}: {e}")),
        Err(_) => Err(format!("connect {url}: timed out")),
    }
}

impl Cluster {
    /// A client of member `i`.
    pub fn client(&self, i: usize) -> Client {
        let url = self.members[i].client_url();
        self.rt
            .block_on(connect(url))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Serializable range over `prefix` on member `i`: key -> (value, mod_revision).
    pub fn dump(&self, i: usize, prefix: &str) -> BTreeMap<String, (String, i64)> {
        let url = self.members[i].client_url();
        let shown = prefix.to_string();
        let prefix = prefix.to_string();
        self.rt
            .block_on(async move {
                let mut c = connect(url).await?;
                let r = tokio::time::timeout(
                    Duration::from_secs(20),
                    c.get(
                        prefix,
                        Some(GetOptions::new().with_prefix().with_serializable()),
                    ),
                )
                .await
                .map_err(|_| "get timed out".to_string())?
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(
                    r.kvs()
                        .iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(kv.key()).into_owned(),
                                (
                                    String::from_utf8_lossy(kv.value()).into_owned(),
                                    kv.mod_revision(),
                                ),
                            )
                        })
                        .collect(),
                )
            })
            .unwrap_or_else(|e| panic!("dump {shown} on {}: {e}", self.members[i].name))
    }

    /// Checks that every acknowledged put is present on every member in `idx` with its
    /// value and the revision it was acknowledged with, and that the members hold identical
    /// data under `prefix`. Members must have converged first.
    pub fn verify_acked(&self, idx: &[usize], prefix: &str, acked: &[Acked]) {
        let mut first: Option<(usize, Dump)> = None;
        for &i in idx {
            let d = self.dump(i, prefix);
            let mut missing = Vec::new();
            let mut wrong = Vec::new();
            for (k, v, rev) in acked {
                match d.get(k) {
                    None => missing.push(format!("{k}@{rev}")),
                    Some((v2, r2)) if v2 != v || r2 != rev => wrong.push(format!(
                        "{k}: acked ({v}, rev {rev}), found ({v2}, rev {r2})"
                    )),
                    _ => {}
                }
            }
            assert!(
                missing.is_empty() && wrong.is_empty(),
                "{}: {} of {} acknowledged puts missing (first: {:?}), {} differ (first: {:?})",
                self.members[i].name,
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(10)],
                wrong.len(),
                &wrong[..wrong.len().min(10)],
            );
            match &first {
                None => first = Some((i, d)),
                Some((j, d0)) => {
                    if *d0 != d {
                        let only0: Vec<_> =
                            d0.keys().filter(|k| !d.contains_key(*k)).take(5).collect();
                        let only1: Vec<_> =
                            d.keys().filter(|k| !d0.contains_key(*k)).take(5).collect();
                        let diff: Vec<_> = d0
                            .iter()
                            .filter(|(k, v)| d.get(*k).is_some_and(|v2| v2 != *v))
                            .take(5)
                            .collect();
                        panic!(
                            "{} and {} hold different data under {prefix}: {} vs {} keys; only on first {only0:?}, only on second {only1:?}, differing {diff:?}",
                            self.members[*j].name,
                            self.members[i].name,
                            d0.len(),
                            d.len()
                        );
                    }
                }
            }
        }
        // Revisions of acknowledged puts are unique.
        let mut seen = HashSet::new();
        for (k, _, rev) in acked {
            assert!(
                seen.insert(*rev),
                "two acknowledged puts got revision {rev} (one is {k})"
            );
        }
    }

    /// One put on member `i` with a bound; Ok(revision) or the error text.
    pub fn put(&self, i: usize, key: &str, value: &str, timeout: Duration) -> Result<i64, String> {
        let url = self.members[i].client_url();
        let (k, v) = (key.to_string(), value.to_string());
        self.rt.block_on(async move {
            let mut c = connect(url).await?;
            match tokio::time::timeout(timeout, c.put(k, v, None)).await {
                Ok(Ok(r)) => Ok(r.header().map(|h| h.revision()).unwrap_or(-1)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("client-side timeout after {timeout:?}")),
            }
        })
    }

    /// One get on member `i`; Ok(Some((value, mod_rev))) / Ok(None) or the error text.
    pub fn get(
        &self,
        i: usize,
        key: &str,
        serializable: bool,
        timeout: Duration,
    ) -> Result<Option<(String, i64)>, String> {
        let url = self.members[i].client_url();
        let k = key.to_string();
        self.rt.block_on(async move {
            let mut c = connect(url).await?;
            let opts = serializable.then(|| GetOptions::new().with_serializable());
            match tokio::time::timeout(timeout, c.get(k, opts)).await {
                Ok(Ok(r)) => Ok(r.kvs().first().map(|kv| {
                    (
                        String::from_utf8_lossy(kv.value()).into_owned(),
                        kv.mod_revision(),
                    )
                })),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("client-side timeout after {timeout:?}")),
            }
        })
    }

    /// Sequential puts of `<prefix><i>` = value, `count` of them, on member `i`, with up
    /// to `conc` in flight. Returns the last revision.
    pub fn load(&self, i: usize, prefix: &str, count: usize, conc: usize) -> i64 {
        let url = self.members[i].client_url();
        let prefix = prefix.to_string();
        self.rt.block_on(async move {
            let c = connect(url).await.expect("connect");
            let next = Arc::new(AtomicUsize::new(0));
            let mut hs = Vec::new();
            for _ in 0..conc {
                let mut c = c.clone();
                let next = next.clone();
                let prefix = prefix.clone();
                hs.push(tokio::spawn(async move {
                    let mut last = 0;
                    for _ in 0..count {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= count {
                            break;
                        }
                        let r = tokio::time::timeout(
                            Duration::from_secs(15),
                            c.put(format!("{prefix}{k:06}"), format!("value-{k}"), None),
                        )
                        .await
                        .unwrap_or_else(|_| panic!("put {prefix}{k} timed out"))
                        .unwrap_or_else(|e| panic!("put {prefix}{k}: {e}"));
                        last = last.max(r.header().unwrap().revision());
                    }
                    last
                }));
            }
            let mut last = 0;
            for h in hs {
                last = last.max(h.await.expect("loader panicked"));
            }
            last
        })
    }
}
