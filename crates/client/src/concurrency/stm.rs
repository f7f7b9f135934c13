//! Software transactional memory over etcd (clientv3's `concurrency.NewSTM`).
//!
//! A transaction function reads and writes through an [`Stm`]; at its end the writes are
//! committed in one etcd transaction guarded by what was read. On conflict the function runs
//! again with fresh state.
//!
//! Invariants:
//! - [`Isolation::RepeatableReads`]: every key reads the same within one attempt (reads are
//!   cached); the commit succeeds only if no key read has been modified since it was read.
//! - [`Isolation::Serializable`]: additionally every read of an attempt is taken at the
//!   revision of its first read, and the commit also fails if a key written (but not read)
//!   was modified after that revision — the attempt behaves as if it ran at one point.
//! - A write is visible to later reads of the same attempt; nothing is written before commit.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};

use crate::pb::{response_op::Response, TxnResponse};
use crate::{
    Client, Cmp, CmpOp, DeleteOptions, Error, GetOptions, KeyValue, Op, PutOptions, Result, Txn,
};

/// The isolation level of an STM transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// One snapshot for all reads, guarded reads and writes.
    #[default]
    Serializable,
    /// Cached reads at the latest revision, guarded reads.
    RepeatableReads,
}

/// Settings of [`run_stm`].
#[derive(Debug, Clone)]
pub struct StmOptions {
    /// The isolation level.
    pub isolation: Isolation,
    /// Attempts before giving up with [`Error::StmConflict`].
    pub max_attempts: usize,
}

impl Default for StmOptions {
    fn default() -> Self {
        StmOptions {
            isolation: Isolation::Serializable,
            max_attempts: 64,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Key → (value, mod revision) as read (`None`: absent, mod revision 0).
    reads: BTreeMap<Vec<u8>, Option<KeyValue>>,
    /// Key → new value (`None`: delete).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Revision of the first read (serializable snapshot), 0 before it.
    snapshot: i64,
}

/// The handle a transaction function reads and writes through (cheap to clone).
#[derive(Debug, Clone)]
pub struct Stm {
    client: Client,
    isolation: Isolation,
    state: Arc<StdMutex<State>>,
}

impl Stm {
    /// The value of `key` as this attempt sees it.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let key = key.into();
        let snapshot = {
            let st = self.state.lock().expect("stm lock");
            if let Some(w) = st.writes.get(&key) {
                return Ok(w.clone());
            }
            if let Some(r) = st.reads.get(&key) {
                return Ok(r.as_ref().map(|kv| kv.value.clone()));
            }
            st.snapshot
        };
        let opts = GetOptions {
            revision: if self.isolation == Isolation::Serializable {
                snapshot
            } else {
                0
            },
            ..Default::default()
        };
        let resp = self.client.range(key.clone(), &opts).await?;
        let rev = resp.header.map(|h| h.revision).unwrap_or(0);
        let kv = resp.kvs.into_iter().next();
        let mut st = self.state.lock().expect("stm lock");
        if st.snapshot == 0 {
            st.snapshot = rev;
        }
        let v = kv.as_ref().map(|kv| kv.value.clone());
        st.reads.entry(key).or_insert(kv);
        Ok(v)
    }

    /// Set `key` to `value` at commit.
    pub fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let mut st = self.state.lock().expect("stm lock");
        st.writes.insert(key.into(), Some(value.into()));
    }

    /// Delete `key` at commit.
    pub fn delete(&self, key: impl Into<Vec<u8>>) {
        let mut st = self.state.lock().expect("stm lock");
        st.writes.insert(key.into(), None);
    }

    fn commit_txn(&self) -> Txn {
        let st = self.state.lock().expect("stm lock");
        let mut cmps: Vec<_> = st
            .reads
            .iter()
            .map(|(k, kv)| {
                Cmp::mod_revision(
                    k.clone(),
                    CmpOp::Equal,
                    kv.as_ref().map_or(0, |kv| kv.mod_revision),
                )
            })
            .collect();
        if self.isolation == Isolation::Serializable && st.snapshot > 0 {
            cmps.extend(
                st.writes
                    .keys()
                    .filter(|k| !st.reads.contains_key(*k))
                    .map(|k| Cmp::mod_revision(k.clone(), CmpOp::Less, st.snapshot + 1)),
            );
        }
        let ops: Vec<_> = st
            .writes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Op::put(k.clone(), v.clone(), &PutOptions::default()),
                None => Op::delete(k.clone(), &DeleteOptions::default()),
            })
            .collect();
        Txn::new().when(cmps).and_then(ops)
    }
}

/// Run `f` as an STM transaction until it commits; returns the commit's response.
///
/// `f` must only touch etcd through the given [`Stm`]; it may run several times.
pub async fn run_stm<F, Fut>(client: &Client, opts: &StmOptions, mut f: F) -> Result<TxnResponse>
where
    F: FnMut(Stm) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    for _ in 0..opts.max_attempts.max(1) {
        let stm = Stm {
            client: client.clone(),
            isolation: opts.isolation,
            state: Arc::default(),
        };
        f(stm.clone()).await?;
        let resp = client.txn(stm.commit_txn()).await?;
        if resp.succeeded {
            return Ok(resp);
        }
    }
    Err(Error::StmConflict(opts.max_attempts.max(1)))
}

/// The first key-value of the first range response of a txn, if any.
pub(crate) fn first_range_kv(resp: &TxnResponse) -> Option<KeyValue> {
    resp.responses.iter().find_map(|r| match &r.response {
        Some(Response::ResponseRange(rr)) => rr.kvs.first().cloned(),
        _ => None,
    })
}
