//! The config cache against a 3-member cluster (oxcd, or etcd with OXCD_TEST_SERVER=etcd)
//! under concurrent writes, with the leader paused (the cache's stream stalls), a
//! compaction past the cache's revision, then the leader killed (the stream breaks and the
//! reconnect must re-list).
//!
//! Checked: the final content equals a fresh list at the same revision; every acked write
//! shows up as a callback with its exact revision unless it lies inside a reported re-list
//! gap; per key, callback revisions strictly increase; every callback's value is one that
//! was written to that key; a value that does not decode keeps the last good one. Also
//! reports put→callback latency p50/p99.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxcd_client::cache::{CacheBuilder, CacheOptions, ChangeKind, Source};
use oxcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions, PutOptions, RetryPolicy};
use oxcd_testkit::{serial, Cluster, ClusterOpts};

const PREFIX: &str = "/cwm/test/webhooks/";
const KEYS: usize = 16;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Hook {
    url: String,
    seq: u64,
}

#[derive(Debug, Clone)]
struct Seen {
    key: String,
    revision: i64,
    value: Option<String>,
    invalid: bool,
    source: Source,
    at: Instant,
}

/// One writer's record: acked (key, revision, value or None for delete), and every value it
/// ever tried per key (acked or not).
#[derive(Default)]
struct Writes {
    acked: Vec<(String, i64, Option<String>)>,
    tried: HashMap<String, HashSet<String>>,
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Some(Duration::from_secs(3)),
        retry: RetryPolicy::none(),
        ..Default::default()
    }
}

async fn writer(c: Client, id: usize, stop: Arc<AtomicBool>, out: Arc<Mutex<Writes>>) {
    for n in 0..100_000u64 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("{PREFIX}{}", (n as usize * 7 + id) % KEYS);
        if n % 11 == 5 {
            if let Ok(r) = c.delete(key.clone(), &DeleteOptions::default()).await {
                let rev = r.header.unwrap().revision;
                if r.deleted > 0 {
                    out.lock().unwrap().acked.push((key, rev, None));
                }
            }
            continue;
        }
        let value = format!(r#"{{"url":"http://h{id}/{n}","seq":{n}}}"#);
        out.lock()
            .unwrap()
            .tried
            .entry(key.clone())
            .or_default()
            .insert(value.clone());
        match c
            .put(key.clone(), value.clone(), &PutOptions::default())
            .await
        {
            Ok(r) => out
                .lock()
                .unwrap()
                .acked
                .push((key, r.header.unwrap().revision, Some(value))),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn cache_survives_leader_kill_and_compaction() {
    let _g = serial();
    let mut cl = match Cluster::try_start("cache", ClusterOpts::new(3)) {
        Ok(c) => c,
        Err(e) if e.contains("server binary not found") => {
            eprintln!("SKIP: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let all = [0, 1, 2];
    let leader = cl.wait_leader(&all, Duration::from_secs(20));
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let mut cache_eps = vec![cl.members[leader].client_url()];
    cache_eps.extend(others.iter().map(|&i| cl.members[i].client_url()));
    let writer_eps: Vec<String> = others.iter().map(|&i| cl.members[i].client_url()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let (cache, wclient) = rt.block_on(async {
        let cc = Client::connect_with(&cache_eps, &opts()).await.unwrap();
        assert_eq!(
            cc.current_endpoint(),
            cache_eps[0],
            "cache starts on the leader"
        );
        let wc = Client::connect_with(&writer_eps, &opts()).await.unwrap();
        wc.put(
            format!("{PREFIX}0"),
            r#"{"url":"http://first","seq":0}"#,
            &PutOptions::default(),
        )
        .await
        .unwrap();
        let s = seen.clone();
        let cache = CacheBuilder::<Hook>::namespace("/cwm", "test")
            .unwrap()
            .options(CacheOptions {
                progress_interval: Duration::from_millis(500),
                ..Default::default()
            })
            .on_prefix(PREFIX, move |c| {
                let (value, invalid) = match &c.kind {
                    ChangeKind::Put(h) => (
                        Some(format!(r#"{{"url":"{}","seq":{}}}"#, h.url, h.seq)),
                        false,
                    ),
                    ChangeKind::Delete => (None, false),
                    ChangeKind::Invalid(_) => (None, true),
                };
                s.lock().unwrap().push(Seen {
                    key: c.key.clone(),
                    revision: c.revision,
                    value,
                    invalid,
                    source: c.source,
                    at: Instant::now(),
                });
            })
            .start(&cc)
            .await
            .unwrap();
        (cache, wc)
    });
    assert_eq!(
        cache.get(&format!("{PREFIX}0")).unwrap().url,
        "http://first"
    );

    // A value that does not decode: reported, last good value kept, then replaced.
    rt.block_on(async {
        let bad = wclient
            .put(format!("{PREFIX}0"), "not json", &PutOptions::default())
            .await
            .unwrap();
        let bad_rev = bad.header.unwrap().revision;
        cache
            .wait_revision(bad_rev, Duration::from_secs(10))
            .await
            .unwrap();
        // Callbacks run right after the revision is applied.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            cache.get(&format!("{PREFIX}0")).unwrap().url,
            "http://first"
        );
        let h = cache.health();
        assert_eq!(
            h.invalid.get(&format!("{PREFIX}0")).map(|v| v.0),
            Some(bad_rev)
        );
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.invalid && s.revision == bad_rev));
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writes: Vec<Arc<Mutex<Writes>>> = (0..2).map(|_| Arc::default()).collect();
    let handles: Vec<_> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| rt.spawn(writer(wclient.clone(), i, stop.clone(), w.clone())))
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    // Stall the cache's stream: its member (the leader) stops answering.
    let before = cache.health().revision;
    cl.pause(leader);
    let old_id = cl.members[leader].id;
    cl.try_wait_leader(&others, Duration::from_secs(30), old_id)
        .expect("a new leader among the other two");
    std::thread::sleep(Duration::from_millis(1000));
    // Compact past everything the stalled cache has seen.
    let compacted = rt.block_on(async {
        let c = Client::connect_with(&writer_eps, &opts()).await.unwrap();
        let mut rev = 0;
        for _ in 0..50 {
            if let Ok(r) = c
                .range(
                    PREFIX,
                    &GetOptions {
                        count_only: true,
                        ..GetOptions::prefix()
                    },
                )
                .await
            {
                rev = r.header.unwrap().revision;
                // Only once the writers got past the stalled cache.
                if rev > before + 20 && c.compact(rev, true).await.is_ok() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        rev
    });
    assert!(
        compacted > before,
        "compaction {compacted} must pass the cache's revision {before}"
    );
    // Now break the stream: the reconnect starts below the compaction and must re-list.
    cl.kill9(leader);
    std::thread::sleep(Duration::from_millis(4000));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });

    // Final state: a fresh list at one revision equals the cache at that revision.
    let (final_rev, listed) = rt.block_on(async {
        let r = wclient.range(PREFIX, &GetOptions::prefix()).await.unwrap();
        (r.header.unwrap().revision, r.kvs)
    });
    rt.block_on(cache.wait_revision(final_rev, Duration::from_secs(90)))
        .unwrap_or_else(|e| panic!("{e}; health {:?}", cache.health()));
    std::thread::sleep(Duration::from_millis(300));
    let (cache_rev, snap) = cache.snapshot();
    assert!(cache_rev >= final_rev);
    let listed: BTreeMap<String, (i64, Hook)> = listed
        .iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                (kv.mod_revision, serde_json::from_slice(&kv.value).unwrap()),
            )
        })
        .collect();
    let cached: BTreeMap<String, (i64, Hook)> = snap
        .iter()
        .map(|(k, e)| (k.clone(), (e.mod_revision, (*e.value).clone())))
        .collect();
    assert_eq!(cached, listed, "cache content at {final_rev}");

    let health = cache.health();
    eprintln!("cache health: {health:?}");
    assert!(
        health.relists >= 1,
        "the compacted watch must have re-listed: {health:?}"
    );
    assert!(health.reconnects >= 1, "{health:?}");
    assert!(health.connected);
    assert!(health.invalid.is_empty());

    // Callbacks: strictly increasing per key; every acked write seen unless inside a gap.
    let seen_v = seen.lock().unwrap().clone();
    let mut last: HashMap<&str, i64> = HashMap::new();
    for s in &seen_v {
        let prev = last.insert(&s.key, s.revision).unwrap_or(0);
        assert!(
            s.revision > prev,
            "callback revisions of {} go {prev} -> {}",
            s.key,
            s.revision
        );
    }
    let by_rev: HashSet<(&str, i64)> = seen_v
        .iter()
        .map(|s| (s.key.as_str(), s.revision))
        .collect();
    let in_gap = |r: i64| health.relist_gaps.iter().any(|&(a, b)| a < r && r <= b);
    let mut acked = 0;
    let mut tried: HashMap<String, HashSet<String>> = HashMap::new();
    for w in &writes {
        let w = w.lock().unwrap();
        for (k, r, _) in &w.acked {
            acked += 1;
            assert!(
                by_rev.contains(&(k.as_str(), *r)) || in_gap(*r),
                "acked write {k}@{r} has no callback and is outside the re-list gaps {:?}",
                health.relist_gaps
            );
        }
        for (k, vs) in &w.tried {
            tried
                .entry(k.clone())
                .or_default()
                .extend(vs.iter().cloned());
        }
    }
    assert!(acked > 50, "only {acked} writes acked");
    for s in seen_v
        .iter()
        .filter(|s| s.source == Source::Watch && s.revision > before)
    {
        if let Some(v) = &s.value {
            assert!(
                tried.get(&s.key).is_some_and(|t| t.contains(v)),
                "{} got unknown value {v}",
                s.key
            );
        }
    }

    // put -> callback latency on the healed cluster.
    let lat_key = format!("{PREFIX}latency");
    let mut lat = Vec::new();
    rt.block_on(async {
        for n in 0..200u64 {
            let start = Instant::now();
            let v = format!(r#"{{"url":"http://lat","seq":{n}}}"#);
            let rev = wclient
                .put(lat_key.clone(), v, &PutOptions::default())
                .await
                .unwrap()
                .header
                .unwrap()
                .revision;
            // Callbacks run just after the revision is applied: poll for this one.
            let mut at = None;
            for _ in 0..5000 {
                at = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|s| s.key == lat_key && s.revision == rev)
                    .map(|s| s.at);
                if at.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            lat.push(
                at.expect("latency callback within ~5 s")
                    .duration_since(start),
            );
        }
    });
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    eprintln!(
        "put->callback latency over {} puts: p50 {p50:?}, p99 {p99:?}",
        lat.len()
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
    drop(cache);
}
