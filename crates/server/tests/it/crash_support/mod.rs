//! The crash tests' workload and its model: concurrent writers run puts (overwrites, leased
//! puts), deletes, compare-and-swap txns and lease grants/revokes against one server; each
//! writer owns its keys (`crash/w<N>/k<M>`) and replays every acknowledged operation into
//! its model, so after a crash the server's state must equal the model exactly.
//!
//! Invariants:
//! - A writer is sequential, so at most its last operation (the one interrupted by the
//!   crash) has an unknown outcome; [`resolve_and_verify`] accepts the state without it or
//!   with it applied (nothing else), then adopts what the server shows for those keys.
//! - Responses are checked against the model while running too: a delete reports as
//!   deleted exactly the keys the model holds, and a txn succeeds exactly when the model
//!   says its compare holds.
//! - Every wait is bounded (per-operation timeout, per-round deadline and op limit).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp,
};

pub const KEYS_PER_WRITER: u64 = 12;
/// Long enough that no lease expires during a test (leases are renewed on restart anyway).
pub const LEASE_TTL: i64 = 600;
const OP_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_OPS_PER_ROUND: usize = 20_000;
const PREFIX: &str = "crash/";

/// Tiny xorshift PRNG (no extra dependency); the seed is printed by the caller.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A key as the server should hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    pub value: String,
    pub create: i64,
    pub modr: i64,
    pub version: i64,
    pub lease: i64,
}

/// One operation of a writer.
#[derive(Clone, Debug)]
pub enum Op {
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
    /// `if version(cmp) == version then put a, put b else get cmp`.
    Txn {
        cmp: String,
        version: i64,
        a: (String, String),
        b: (String, String),
    },
    Grant,
    Revoke {
        lease: i64,
    },
}

/// What an acknowledged operation returned.
enum Outcome {
    Rev(i64),
    Deleted(i64, i64),
    Txn(bool, i64),
    Granted(i64),
}

/// One writer's replay of its acknowledged operations.
#[derive(Clone, Debug)]
pub struct WriterModel {
    pub w: usize,
    pub keys: BTreeMap<String, KeyState>,
    /// Acknowledged leases: alive, or revoked (false).
    pub leases: BTreeMap<i64, bool>,
    /// The operation in flight when the server died, if any.
    pub pending: Option<Op>,
    /// Revisions created by acknowledged operations (must be distinct across writers).
    pub revs: Vec<i64>,
    pub acked: usize,
    pub kinds: BTreeMap<&'static str, usize>,
}

impl WriterModel {
    pub fn new(w: usize) -> WriterModel {
        WriterModel {
            w,
            keys: BTreeMap::new(),
            leases: BTreeMap::new(),
            pending: None,
            revs: Vec::new(),
            acked: 0,
            kinds: BTreeMap::new(),
        }
    }

    fn prefix(&self) -> String {
        format!("{PREFIX}w{}/", self.w)
    }

    fn put(&mut self, key: &str, value: &str, lease: i64, rev: i64) {
        let next = match self.keys.get(key) {
            Some(k) => KeyState {
                value: value.into(),
                create: k.create,
                modr: rev,
                version: k.version + 1,
                lease,
            },
            None => KeyState {
                value: value.into(),
                create: rev,
                modr: rev,
                version: 1,
                lease,
            },
        };
        self.keys.insert(key.into(), next);
    }

    fn leased_keys(&self, lease: i64) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|(_, k)| k.lease == lease)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Keys whose state `op` may change.
    fn touched(&self, op: &Op) -> BTreeSet<String> {
        match op {
            Op::Put { key, .. } | Op::Delete { key } => [key.clone()].into(),
            Op::Txn { a, b, .. } => [a.0.clone(), b.0.clone()].into(),
            Op::Grant => BTreeSet::new(),
            Op::Revoke { lease } => self.leased_keys(*lease),
        }
    }

    /// Replays an acknowledged `op`, checking its response against the model.
    fn apply(&mut self, op: &Op, out: Outcome) {
        self.acked += 1;
        let kind = match (op, out) {
            (Op::Put { key, value, lease }, Outcome::Rev(rev)) => {
                let existed = self.keys.contains_key(key);
                self.put(key, value, *lease, rev);
                self.revs.push(rev);
                match (*lease != 0, existed) {
                    (true, _) => "leased put",
                    (false, true) => "overwrite",
                    (false, false) => "put",
                }
            }
            (Op::Delete { key }, Outcome::Deleted(n, rev)) => {
                let had = self.keys.remove(key).is_some();
                assert_eq!(n, had as i64, "delete {key}: deleted count vs model");
                if had {
                    self.revs.push(rev);
                }
                "delete"
            }
            (Op::Txn { cmp, version, a, b }, Outcome::Txn(ok, rev)) => {
                let cur = self.keys.get(cmp).map_or(0, |k| k.version);
                assert_eq!(ok, cur == *version, "txn on {cmp} (model version {cur})");
                if ok {
                    self.put(&a.0, &a.1, 0, rev);
                    self.put(&b.0, &b.1, 0, rev);
                    self.revs.push(rev);
                    "txn (success)"
                } else {
                    "txn (failure)"
                }
            }
            (Op::Grant, Outcome::Granted(id)) => {
                self.leases.insert(id, true);
                "grant"
            }
            (Op::Revoke { lease }, Outcome::Rev(rev)) => {
                let gone = self.leased_keys(*lease);
                for k in &gone {
                    self.keys.remove(k);
                }
                if !gone.is_empty() {
                    self.revs.push(rev);
                }
                self.leases.insert(*lease, false);
                "revoke"
            }
            (op, _) => panic!("outcome does not match {op:?}"),
        };
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// The model's keys with `op` applied at an unknown revision (revisions left as they
    /// were; callers compare without them).
    fn with_applied(&self, op: &Op) -> BTreeMap<String, KeyState> {
        let mut m = self.clone();
        match op {
            Op::Put { key, value, lease } => m.put(key, value, *lease, -1),
            Op::Delete { key } => {
                m.keys.remove(key);
            }
            Op::Txn { cmp, version, a, b } => {
                if m.keys.get(cmp).map_or(0, |k| k.version) == *version {
                    m.put(&a.0, &a.1, 0, -1);
                    m.put(&b.0, &b.1, 0, -1);
                }
            }
            Op::Grant => {}
            Op::Revoke { lease } => {
                for k in m.leased_keys(*lease) {
                    m.keys.remove(&k);
                }
            }
        }
        m.keys
    }
}

async fn execute(c: &mut Client, op: &Op) -> Result<Outcome, String> {
    let rev = |h: Option<&etcd_client::ResponseHeader>| h.map_or(0, |h| h.revision());
    let fut = async {
        Ok::<_, etcd_client::Error>(match op {
            Op::Put { key, value, lease } => {
                let opts = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
                Outcome::Rev(rev(c
                    .put(key.as_str(), value.as_str(), opts)
                    .await?
                    .header()))
            }
            Op::Delete { key } => {
                let r = c.delete(key.as_str(), None).await?;
                Outcome::Deleted(r.deleted(), rev(r.header()))
            }
            Op::Txn { cmp, version, a, b } => {
                let txn = Txn::new()
                    .when(vec![Compare::version(
                        cmp.as_str(),
                        CompareOp::Equal,
                        *version,
                    )])
                    .and_then(vec![
                        TxnOp::put(a.0.as_str(), a.1.as_str(), None),
                        TxnOp::put(b.0.as_str(), b.1.as_str(), None),
                    ])
                    .or_else(vec![TxnOp::get(cmp.as_str(), None)]);
                let r = c.txn(txn).await?;
                Outcome::Txn(r.succeeded(), rev(r.header()))
            }
            Op::Grant => Outcome::Granted(c.lease_grant(LEASE_TTL, None).await?.id()),
            Op::Revoke { lease } => Outcome::Rev(rev(c.lease_revoke(*lease).await?.header())),
        })
    };
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn choose(m: &WriterModel, rng: &mut Rng, round: usize, i: usize, lease: i64) -> Op {
    let key = |rng: &mut Rng| format!("{}k{:02}", m.prefix(), rng.range(0, KEYS_PER_WRITER));
    let value = format!("v-{round}-{}-{i}-{}", m.w, "x".repeat(i % 48));
    match rng.range(0, 100) {
        0..=39 => Op::Put {
            key: key(rng),
            value,
            lease: 0,
        },
        40..=54 => Op::Put {
            key: key(rng),
            value,
            lease,
        },
        55..=69 => Op::Delete { key: key(rng) },
        70..=94 => {
            let cmp = key(rng);
            let cur = m.keys.get(&cmp).map_or(0, |k| k.version);
            let version = if rng.range(0, 4) == 0 { cur + 1 } else { cur };
            let mut other = key(rng);
            while other == cmp {
                other = key(rng);
            }
            Op::Txn {
                a: (cmp.clone(), format!("{value}-a")),
                b: (other, format!("{value}-b")),
                cmp,
                version,
            }
        }
        _ => Op::Revoke { lease },
    }
}

/// Runs one writer until the server fails it, `deadline`, or the op limit; returns its
/// model with the interrupted operation (if any) as `pending`.
pub async fn run_writer(
    mut m: WriterModel,
    mut c: Client,
    round: usize,
    deadline: Instant,
    mut rng: Rng,
) -> WriterModel {
    assert!(m.pending.is_none(), "resolve the pending op first");
    // A fresh lease each round; older ones stay alive (and are checked) across crashes.
    let mut lease = match execute(&mut c, &Op::Grant).await {
        Ok(Outcome::Granted(id)) => {
            m.apply(&Op::Grant, Outcome::Granted(id));
            id
        }
        _ => {
            m.pending = Some(Op::Grant);
            return m;
        }
    };
    for i in 0..MAX_OPS_PER_ROUND {
        if Instant::now() > deadline {
            break;
        }
        let op = choose(&m, &mut rng, round, i, lease);
        match execute(&mut c, &op).await {
            Ok(out) => m.apply(&op, out),
            Err(_) => {
                m.pending = Some(op);
                return m;
            }
        }
        if matches!(op, Op::Revoke { .. }) {
            match execute(&mut c, &Op::Grant).await {
                Ok(Outcome::Granted(id)) => {
                    m.apply(&Op::Grant, Outcome::Granted(id));
                    lease = id;
                }
                _ => {
                    m.pending = Some(Op::Grant);
                    return m;
                }
            }
        }
    }
    m
}

/// Everything under the crash tests' prefix, as the server holds it.
async fn observed(c: &mut Client) -> BTreeMap<String, KeyState> {
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        c.get(PREFIX, Some(GetOptions::new().with_prefix())),
    )
    .await
    .expect("range timed out")
    .expect("range after restart");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                KeyState {
                    value: kv.value_str().unwrap().to_string(),
                    create: kv.create_revision(),
                    modr: kv.mod_revision(),
                    version: kv.version(),
                    lease: kv.lease(),
                },
            )
        })
        .collect()
}

/// Whether the lease is alive on the server, with the keys attached to it.
async fn lease_on_server(c: &mut Client, id: i64) -> Option<BTreeSet<String>> {
    let r = tokio::time::timeout(
        OP_TIMEOUT,
        c.lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys())),
    )
    .await
    .expect("lease TimeToLive timed out")
    .expect("lease TimeToLive");
    (r.ttl() > 0).then(|| {
        r.keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    })
}

fn same_ignoring_revisions(a: Option<&KeyState>, b: Option<&KeyState>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.value == b.value
                && a.version == b.version
                && a.lease == b.lease
                && (a.create == -1 || b.create == -1 || a.create == b.create)
        }
        _ => false,
    }
}

/// After a restart: settles each writer's interrupted operation (it either took effect or
/// did not, entirely), then requires the server's keys and leases to equal the models.
/// Returns a summary line.
pub async fn resolve_and_verify(c: &mut Client, models: &mut [WriterModel]) -> String {
    let seen = observed(c).await;
    let mut problems = Vec::new();
    let mut applied_pending = 0;
    for m in models.iter_mut() {
        let Some(op) = m.pending.take() else { continue };
        let touched = m.touched(&op);
        let without: Vec<Option<&KeyState>> = touched.iter().map(|k| m.keys.get(k)).collect();
        let with_keys = m.with_applied(&op);
        let with: Vec<Option<&KeyState>> = touched.iter().map(|k| with_keys.get(k)).collect();
        let now: Vec<Option<&KeyState>> = touched.iter().map(|k| seen.get(k)).collect();
        let as_before = now == without;
        let as_applied = now
            .iter()
            .zip(&with)
            .all(|(n, w)| same_ignoring_revisions(*n, *w));
        // A revoke (or grant) shows in the lease too.
        let took_effect = match &op {
            Op::Revoke { lease } => {
                let alive = lease_on_server(c, *lease).await.is_some();
                if (!alive && !as_applied) || (alive && !as_before) {
                    problems.push(format!(
                        "w{}: revoke of {lease:x} half applied (lease alive {alive})",
                        m.w
                    ));
                }
                if !alive {
                    m.leases.insert(*lease, false);
                }
                !alive
            }
            _ if as_before => false,
            _ if as_applied => true,
            _ => {
                problems.push(format!(
                    "w{}: interrupted {op:?} left {now:?}, expected {without:?} (not applied) \
                     or {with:?} (applied)",
                    m.w
                ));
                false
            }
        };
        if took_effect {
            applied_pending += 1;
            if let Some(r) = now.iter().flatten().map(|k| k.modr).max() {
                m.revs.push(r);
            }
        }
        for k in &touched {
            match seen.get(k) {
                Some(s) => m.keys.insert(k.clone(), s.clone()),
                None => m.keys.remove(k),
            };
        }
    }
    // Every writer's keys, exactly.
    for m in models.iter() {
        let prefix = m.prefix();
        let mine: BTreeMap<&String, &KeyState> = seen
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        for (k, want) in &m.keys {
            match mine.get(k) {
                None => problems.push(format!("{k}: acknowledged {want:?} is missing")),
                Some(got) if *got != want => {
                    problems.push(format!("{k}: server has {got:?}, acknowledged {want:?}"))
                }
                Some(_) => {}
            }
        }
        for (k, got) in &mine {
            if !m.keys.contains_key(*k) {
                problems.push(format!(
                    "{k}: server has {got:?}, acknowledged ops deleted it"
                ));
            }
        }
    }
    // Leases: alive ones carry exactly their keys; revoked ones are gone.
    for m in models.iter() {
        for (&id, &alive) in &m.leases {
            let on_server = lease_on_server(c, id).await;
            match (alive, on_server) {
                (true, None) => problems.push(format!("w{}: lease {id:x} was lost", m.w)),
                (true, Some(keys)) => {
                    let want = m.leased_keys(id);
                    if keys != want {
                        problems.push(format!(
                            "w{}: lease {id:x} has keys {keys:?}, expected {want:?}",
                            m.w
                        ));
                    }
                }
                (false, Some(_)) => {
                    problems.push(format!("w{}: revoked lease {id:x} is alive", m.w))
                }
                (false, None) => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences between the server and the acknowledged operations:\n{}",
        problems.len(),
        problems[..problems.len().min(40)].join("\n")
    );
    // Distinct revisions, and the store is at least at the newest.
    let mut revs: Vec<i64> = models.iter().flat_map(|m| m.revs.iter().copied()).collect();
    revs.sort_unstable();
    let n = revs.len();
    revs.dedup();
    assert_eq!(
        revs.len(),
        n,
        "two acknowledged operations share a revision"
    );
    let head = c.get("rev-probe", None).await.expect("get");
    let head = head.header().expect("header").revision();
    let newest = revs.last().copied().unwrap_or(0);
    assert!(head >= newest, "revision went back: {head} < {newest}");
    let acked: usize = models.iter().map(|m| m.acked).sum();
    format!(
        "{acked} acknowledged ops ({} keys, {} leases, {applied_pending} interrupted ops took effect) match the server",
        seen.len(),
        models.iter().map(|m| m.leases.len()).sum::<usize>()
    )
}

/// Counts of acknowledged operations by kind over all writers.
pub fn kind_counts(models: &[WriterModel]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for m in models {
        for (k, n) in &m.kinds {
            *out.entry(*k).or_default() += n;
        }
    }
    out
}
