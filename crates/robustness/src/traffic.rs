//! Traffic profiles. Each client is a tokio task bound to one member, issuing random
//! requests until the deadline (and at most `max_ops`), each recorded by [`RecClient`].
//!
//! Profiles:
//! - [`Profile::Etcd`]: get, serializable get, prefix list, get at an old revision, put,
//!   delete, multi-op txn, compare-and-set, put with lease, lease revoke (+ grant), and
//!   (client 0 only) compaction and defragmentation.
//! - [`Profile::Kubernetes`]: list, then create / update / delete by CAS on `mod_revision`
//!   (re-reading the key after a failed CAS); watchers list + watch.
//! - [`Profile::ConfigService`]: two writers over a handful of keys, readers doing
//!   serializable gets; many watchers.
//!
//! Invariants: values are unique (`c<client>-<seq>`); leases have a TTL far beyond any run
//! (so they only go away by revoke); all keys live under [`PREFIX`].

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::RecClient;
use crate::history::{Cmp, Outcome, Request, Response, TxnOp};

/// Every key written by traffic starts with this.
pub const PREFIX: &str = "/rb/";
/// End of the range covering every traffic key.
pub const PREFIX_END: &str = "/rb0";
/// Lease TTL (seconds): leases only disappear by revoke.
pub const LEASE_TTL: i64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Etcd,
    Kubernetes,
    ConfigService,
}

impl Profile {
    pub fn key_prefix(self) -> &'static str {
        match self {
            Profile::Etcd => "/rb/k/",
            Profile::Kubernetes => "/rb/pods/",
            Profile::ConfigService => "/rb/cfg/",
        }
    }
    pub fn keys(self) -> usize {
        match self {
            Profile::Etcd => 8,
            Profile::Kubernetes => 10,
            Profile::ConfigService => 4,
        }
    }
}

/// Prefix end (`prefix` with its last byte incremented).
pub fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    if let Some(l) = b.last_mut() {
        *l += 1;
    }
    String::from_utf8(b).expect("ascii prefix")
}

pub struct TrafficCfg {
    pub profile: Profile,
    pub seed: u64,
    pub deadline: Instant,
    pub max_ops: usize,
    /// Pause between two requests of one client.
    pub pause: Duration,
}

/// Runs one client; returns the number of requests sent.
pub async fn run_client(mut c: RecClient, cfg: TrafficCfg) -> usize {
    let mut rng =
        StdRng::seed_from_u64(cfg.seed ^ (c.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut st = ClientState {
        seq: 0,
        lease: 0,
        last_rev: 0,
        writer: true,
    };
    if cfg.profile == Profile::ConfigService {
        st.writer = c.id < 2;
    }
    let mut n = 0;
    while n < cfg.max_ops && Instant::now() < cfg.deadline {
        let out = match cfg.profile {
            Profile::Etcd => etcd_step(&mut c, &mut rng, &mut st).await,
            Profile::Kubernetes => k8s_step(&mut c, &mut rng, &mut st).await,
            Profile::ConfigService => config_step(&mut c, &mut rng, &mut st).await,
        };
        n += 1;
        let mut pause = cfg.pause;
        if let Some(o) = out {
            if let Outcome::Ok(r) = &o {
                st.last_rev = st.last_rev.max(r.rev());
            } else {
                // Errors mostly mean the member is down: back off a little.
                pause += Duration::from_millis(50);
            }
        }
        tokio::time::sleep(pause).await;
    }
    n
}

struct ClientState {
    seq: u64,
    lease: i64,
    last_rev: i64,
    writer: bool,
}

impl ClientState {
    fn value(&mut self, client: usize) -> String {
        self.seq += 1;
        format!("c{client}-{}", self.seq)
    }
}

fn key(profile: Profile, rng: &mut StdRng) -> String {
    format!(
        "{}{}",
        profile.key_prefix(),
        rng.gen_range(0..profile.keys())
    )
}

async fn etcd_step(c: &mut RecClient, rng: &mut StdRng, st: &mut ClientState) -> Option<Outcome> {
    let p = Profile::Etcd;
    let k = key(p, rng);
    let roll = rng.gen_range(0..100);
    let req = match roll {
        0..=14 => Request::Get {
            key: k,
            end: None,
            serializable: false,
            revision: 0,
        },
        15..=24 => Request::Get {
            key: k,
            end: None,
            serializable: true,
            revision: 0,
        },
        25..=32 => Request::Get {
            key: p.key_prefix().into(),
            end: Some(prefix_end(p.key_prefix())),
            serializable: rng.gen_bool(0.3),
            revision: 0,
        },
        33..=35 if st.last_rev > 10 => Request::Get {
            key: p.key_prefix().into(),
            end: Some(prefix_end(p.key_prefix())),
            serializable: false,
            revision: st.last_rev - rng.gen_range(1..10),
        },
        36..=55 => Request::Put {
            key: k,
            value: st.value(c.id),
            lease: 0,
        },
        56..=60 => Request::Delete { key: k, end: None },
        61..=70 => {
            let k2 = key(p, rng);
            let mut then = vec![
                TxnOp::Put {
                    key: k.clone(),
                    value: st.value(c.id),
                    lease: 0,
                },
                TxnOp::Get { key: k2.clone() },
            ];
            if k2 != k {
                then.push(if rng.gen_bool(0.3) {
                    TxnOp::Delete { key: k2 }
                } else {
                    TxnOp::Put {
                        key: k2,
                        value: st.value(c.id),
                        lease: 0,
                    }
                });
            }
            Request::Txn {
                cmps: vec![],
                then,
                els: vec![],
            }
        }
        71..=87 => {
            // Compare-and-set on mod_revision after a read.
            let get = Request::Get {
                key: k.clone(),
                end: None,
                serializable: false,
                revision: 0,
            };
            let Outcome::Ok(Response::Get { kvs, .. }) = c.run(get).await else {
                return None;
            };
            let rev = kvs.first().map(|kv| kv.modr).unwrap_or(0);
            let v = st.value(c.id);
            Request::Txn {
                cmps: vec![Cmp::ModRev {
                    key: k.clone(),
                    rev,
                }],
                then: vec![TxnOp::Put {
                    key: k.clone(),
                    value: v,
                    lease: 0,
                }],
                els: vec![TxnOp::Get { key: k }],
            }
        }
        88..=93 => {
            if st.lease == 0 {
                let o = c.run(Request::LeaseGrant { ttl: LEASE_TTL }).await;
                if let Outcome::Ok(Response::LeaseGrant { id, .. }) = o {
                    st.lease = id;
                }
                return Some(o);
            }
            Request::Put {
                key: k,
                value: st.value(c.id),
                lease: st.lease,
            }
        }
        94..=96 if st.lease != 0 => {
            let id = std::mem::take(&mut st.lease);
            Request::LeaseRevoke { id }
        }
        97 if c.id == 0 && st.last_rev > 50 => Request::Compact {
            revision: st.last_rev - 40,
        },
        98 if c.id == 0 => Request::Defrag,
        _ => Request::Get {
            key: k,
            end: None,
            serializable: false,
            revision: 0,
        },
    };
    Some(c.run(req).await)
}

async fn k8s_step(c: &mut RecClient, rng: &mut StdRng, st: &mut ClientState) -> Option<Outcome> {
    let p = Profile::Kubernetes;
    if rng.gen_bool(0.1) {
        let list = Request::Get {
            key: p.key_prefix().into(),
            end: Some(prefix_end(p.key_prefix())),
            serializable: false,
            revision: 0,
        };
        return Some(c.run(list).await);
    }
    let k = key(p, rng);
    let get = Request::Get {
        key: k.clone(),
        end: None,
        serializable: false,
        revision: 0,
    };
    let Outcome::Ok(Response::Get { kvs, .. }) = c.run(get).await else {
        return None;
    };
    let rev = kvs.first().map(|kv| kv.modr).unwrap_or(0);
    let del = rev != 0 && rng.gen_bool(0.15);
    let then = if del {
        vec![TxnOp::Delete { key: k.clone() }]
    } else {
        vec![TxnOp::Put {
            key: k.clone(),
            value: st.value(c.id),
            lease: 0,
        }]
    };
    let req = Request::Txn {
        cmps: vec![Cmp::ModRev {
            key: k.clone(),
            rev,
        }],
        then,
        els: vec![TxnOp::Get { key: k }],
    };
    Some(c.run(req).await)
}

async fn config_step(c: &mut RecClient, rng: &mut StdRng, st: &mut ClientState) -> Option<Outcome> {
    let p = Profile::ConfigService;
    let k = key(p, rng);
    let req = if st.writer {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
        Request::Put {
            key: k,
            value: st.value(c.id),
            lease: 0,
        }
    } else {
        Request::Get {
            key: k,
            end: None,
            serializable: rng.gen_bool(0.7),
            revision: 0,
        }
    };
    Some(c.run(req).await)
}
