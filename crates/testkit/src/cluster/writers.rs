//! Background writers for failover tests: tasks that put unique keys until told to stop,
//! moving to the next member after an error, and report what was acknowledged.
//!
//! Invariants: each writer is bounded by a deadline, a put count and a 12 s bound per put;
//! joining is bounded (60 s per writer); every acknowledged put is reported with the
//! revision from its response header.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::Client;

use super::{connect, Cluster};

/// An acknowledged put: key, value, revision from the response header.
pub type Acked = (String, String, i64);

/// What writers achieved.
#[derive(Debug, Default)]
pub struct WriterReport {
    pub acked: Vec<Acked>,
    pub errors: usize,
    pub last_error: Option<String>,
}

impl Cluster {
    /// Starts `n` writer tasks putting `<prefix>/w<w>/<i>` keys until `stop` is set, `limit`
    /// elapses or `max_puts` per writer. Writer w starts on member `targets[w % len]` and
    /// moves to the next target after an error (so writes continue through a failover).
    pub fn spawn_writers(
        &self,
        n: usize,
        prefix: &str,
        targets: &[usize],
        stop: Arc<AtomicBool>,
        limit: Duration,
        max_puts: usize,
    ) -> Vec<tokio::task::JoinHandle<WriterReport>> {
        let urls: Vec<String> = targets
            .iter()
            .map(|&i| self.members[i].client_url())
            .collect();
        let deadline = Instant::now() + limit;
        (0..n)
            .map(|w| {
                let urls = urls.clone();
                let stop = stop.clone();
                let prefix = prefix.to_string();
                self.rt.spawn(async move {
                    let mut rep = WriterReport::default();
                    let mut t = w % urls.len();
                    let mut client: Option<Client> = None;
                    for i in 0..max_puts {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        if client.is_none() {
                            match connect(urls[t].clone()).await {
                                Ok(c) => client = Some(c),
                                Err(e) => {
                                    rep.errors += 1;
                                    rep.last_error = Some(e);
                                    t = (t + 1) % urls.len();
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    continue;
                                }
                            }
                        }
                        let c = client.as_mut().unwrap();
                        let key = format!("{prefix}/w{w}/{i:06}");
                        let value = format!("v-{w}-{i}-{}", "x".repeat(i % 32));
                        match tokio::time::timeout(
                            Duration::from_secs(12),
                            c.put(key.clone(), value.clone(), None),
                        )
                        .await
                        {
                            Ok(Ok(r)) => {
                                let rev = r.header().map(|h| h.revision()).unwrap_or(-1);
                                rep.acked.push((key, value, rev));
                            }
                            Ok(Err(e)) => {
                                rep.errors += 1;
                                rep.last_error = Some(e.to_string());
                                client = None;
                                t = (t + 1) % urls.len();
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(_) => {
                                rep.errors += 1;
                                rep.last_error = Some("put timed out (12s)".into());
                                client = None;
                                t = (t + 1) % urls.len();
                            }
                        }
                    }
                    rep
                })
            })
            .collect()
    }

    /// Joins writer tasks (bounded: 60 s) and merges their reports.
    pub fn join_writers(&self, hs: Vec<tokio::task::JoinHandle<WriterReport>>) -> WriterReport {
        self.rt.block_on(async move {
            let mut all = WriterReport::default();
            for h in hs {
                let r = tokio::time::timeout(Duration::from_secs(60), h)
                    .await
                    .expect("writer did not finish within 60s")
                    .expect("writer panicked");
                all.acked.extend(r.acked);
                all.errors += r.errors;
                if r.last_error.is_some() {
                    all.last_error = r.last_error;
                }
            }
            all
        })
    }
}
