//! The recorded history: every client operation with its invoke/return times (ns since the
//! run's start), the member it was sent to, the request and its outcome.
//!
//! Invariants:
//! - `inv < ret` for completed operations; an operation whose result is unknown (timeout,
//!   transport error on a write) has `ret == u64::MAX`: it may or may not have taken effect,
//!   at any time after `inv`.
//! - A failed read (any error) is recorded as [`Outcome::Fail`] and has no effect.
//! - Keys and values are UTF-8 strings; every value put by traffic is unique.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Return time of an operation whose outcome is unknown.
pub const NEVER: u64 = u64::MAX;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// `mod_revision(key) == rev` (rev 0: the key does not exist).
    ModRev { key: String, rev: i64 },
    /// `value(key) == value`.
    Value { key: String, value: String },
}

impl Cmp {
    pub fn key(&self) -> &str {
        match self {
            Cmp::ModRev { key, .. } | Cmp::Value { key, .. } => key,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxnOp {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Range over `[key, end)` (or just `key` when `end` is None); `revision` 0 = latest.
    Get {
        key: String,
        end: Option<String>,
        serializable: bool,
        revision: i64,
    },
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
        end: Option<String>,
    },
    Txn {
        cmps: Vec<Cmp>,
        then: Vec<TxnOp>,
        els: Vec<TxnOp>,
    },
    LeaseGrant {
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    Compact {
        revision: i64,
    },
    Defrag,
}

impl Request {
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Get { .. } | Request::Defrag)
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Get {
                serializable: true, ..
            } => "get-serializable",
            Request::Get { end: Some(_), .. } => "list",
            Request::Get { revision, .. } if *revision > 0 => "get-at-revision",
            Request::Get { .. } => "get",
            Request::Put { lease, .. } if *lease != 0 => "put-with-lease",
            Request::Put { .. } => "put",
            Request::Delete { .. } => "delete",
            Request::Txn { cmps, .. } if cmps.len() == 1 => "txn-cas",
            Request::Txn { .. } => "txn",
            Request::LeaseGrant { .. } => "lease-grant",
            Request::LeaseRevoke { .. } => "lease-revoke",
            Request::Compact { .. } => "compact",
            Request::Defrag => "defrag",
        }
    }
}

/// A key-value as returned by the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create: i64,
    pub modr: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    Get(Vec<Kv>),
    Put,
    Delete(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Get {
        rev: i64,
        kvs: Vec<Kv>,
        count: i64,
    },
    Put {
        rev: i64,
    },
    Delete {
        rev: i64,
        deleted: i64,
    },
    Txn {
        rev: i64,
        succeeded: bool,
        results: Vec<TxnResult>,
    },
    LeaseGrant {
        rev: i64,
        id: i64,
    },
    LeaseRevoke {
        rev: i64,
    },
    Compact {
        rev: i64,
    },
    Defrag,
}

impl Response {
    /// Header revision.
    pub fn rev(&self) -> i64 {
        match self {
            Response::Get { rev, .. }
            | Response::Put { rev }
            | Response::Delete { rev, .. }
            | Response::Txn { rev, .. }
            | Response::LeaseGrant { rev, .. }
            | Response::LeaseRevoke { rev }
            | Response::Compact { rev } => *rev,
            Response::Defrag => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Response),
    /// Definitely had no effect.
    Fail(String),
    /// May or may not have taken effect.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub id: usize,
    pub client: usize,
    /// Member slot the request was sent to.
    pub member: usize,
    /// That member's data generation when the request was sent.
    pub data_gen: u32,
    pub inv: u64,
    pub ret: u64,
    pub req: Request,
    pub out: Outcome,
}

impl Op {
    pub fn ok(&self) -> Option<&Response> {
        match &self.out {
            Outcome::Ok(r) => Some(r),
            _ => None,
        }
    }
}

fn ms(t: u64) -> String {
    if t == NEVER {
        "∞".into()
    } else {
        format!("{:.3}", t as f64 / 1e6)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} c{} m{} [{}ms..{}ms] {:?} -> {:?}",
            self.id,
            self.client,
            self.member,
            ms(self.inv),
            ms(self.ret),
            self.req,
            self.out
        )
    }
}

/// Shared recorder: the clock origin and the list of operations.
#[derive(Clone)]
pub struct Recorder {
    t0: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            t0: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }
    pub fn t0(&self) -> Instant {
        self.t0
    }
    /// Nanoseconds since the start (always > 0).
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64 + 1
    }
    pub fn record(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap();
        op.id = ops.len();
        ops.push(op);
    }
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
