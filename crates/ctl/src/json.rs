//! JSON in the shape etcdctl 3.4 prints it: Go's `encoding/json` of etcd's generated structs
//! (snake_case or Go field names as etcd tags them, `omitempty` zero values left out, bytes as
//! base64, 64-bit integers as plain numbers).
//!
//! Invariant: fields are written in the order given (Go prints struct fields in declaration
//! order), so every printer lists them in etcd's order.

use base64::Engine;
use oxcd_client::pb::{self, response_op::Response, ResponseHeader};
use oxcd_client::{Event, KeyValue};

/// An ordered JSON object under construction.
#[derive(Default)]
pub struct Obj(Vec<(String, String)>);

/// A JSON string literal.
pub fn s(v: &str) -> String {
    serde_json::to_string(v).expect("string serializes")
}

/// Bytes as Go marshals `[]byte`.
pub fn b64(v: &[u8]) -> String {
    s(&base64::engine::general_purpose::STANDARD.encode(v))
}

/// A JSON array of already-encoded values.
pub fn arr(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }
    /// Any already-encoded value.
    pub fn raw(mut self, k: &str, v: String) -> Self {
        self.0.push((k.into(), v));
        self
    }
    /// A number, left out when zero (`omitempty`).
    pub fn num<N: PartialEq + Default + ToString>(self, k: &str, v: N) -> Self {
        if v == N::default() {
            self
        } else {
            self.raw(k, v.to_string())
        }
    }
    /// A number, always written.
    pub fn num_always<N: ToString>(self, k: &str, v: N) -> Self {
        self.raw(k, v.to_string())
    }
    pub fn bool_(self, k: &str, v: bool) -> Self {
        if v {
            self.raw(k, "true".into())
        } else {
            self
        }
    }
    pub fn str_(self, k: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(k, s(v))
        }
    }
    pub fn bytes(self, k: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(k, b64(v))
        }
    }
    pub fn opt(self, k: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.raw(k, v),
            None => self,
        }
    }
    pub fn end(self) -> String {
        let fields: Vec<String> = self
            .0
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", s(&k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// The fields of a response header.
pub fn header_fields(h: Option<&ResponseHeader>) -> Obj {
    let h = h.cloned().unwrap_or_default();
    Obj::new()
        .num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term)
}

pub fn header(h: Option<&ResponseHeader>) -> Option<String> {
    h.map(|h| header_fields(Some(h)).end())
}

pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
        .end()
}

fn kvs(v: &[KeyValue]) -> Option<String> {
    (!v.is_empty()).then(|| arr(v.iter().map(kv)))
}

pub fn range(r: &pb::RangeResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .opt("kvs", kvs(&r.kvs))
        .bool_("more", r.more)
        .num("count", r.count)
        .end()
}

pub fn put(r: &pb::PutResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .opt("prev_kv", r.prev_kv.as_ref().map(kv))
        .end()
}

pub fn del(r: &pb::DeleteRangeResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .num("deleted", r.deleted)
        .opt("prev_kvs", kvs(&r.prev_kvs))
        .end()
}

pub fn txn(r: &pb::TxnResponse) -> String {
    let resps = r.responses.iter().map(|op| {
        let inner = match &op.response {
            Some(Response::ResponseRange(x)) => Obj::new().raw("ResponseRange", range(x)).end(),
            Some(Response::ResponsePut(x)) => Obj::new().raw("ResponsePut", put(x)).end(),
            Some(Response::ResponseDeleteRange(x)) => {
                Obj::new().raw("ResponseDeleteRange", del(x)).end()
            }
            Some(Response::ResponseTxn(x)) => Obj::new().raw("ResponseTxn", txn(x)).end(),
            None => "null".into(),
        };
        Obj::new().raw("Response", inner).end()
    });
    let resps: Vec<String> = resps.collect();
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .bool_("succeeded", r.succeeded)
        .opt("responses", (!resps.is_empty()).then(|| arr(resps)))
        .end()
}

pub fn event(e: &Event) -> String {
    Obj::new()
        .num("type", e.r#type)
        .opt("kv", e.kv.as_ref().map(kv))
        .opt("prev_kv", e.prev_kv.as_ref().map(kv))
        .end()
}

pub fn member(m: &pb::Member) -> String {
    let urls = |v: &[String]| (!v.is_empty()).then(|| arr(v.iter().map(|u| s(u))));
    Obj::new()
        .num("ID", m.id)
        .str_("name", &m.name)
        .opt("peerURLs", urls(&m.peer_ur_ls))
        .opt("clientURLs", urls(&m.client_ur_ls))
        .bool_("isLearner", m.is_learner)
        .end()
}

pub fn members(v: &[pb::Member]) -> Option<String> {
    (!v.is_empty()).then(|| arr(v.iter().map(member)))
}

pub fn status(r: &pb::StatusResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .str_("version", &r.version)
        .num("dbSize", r.db_size)
        .num("leader", r.leader)
        .num("raftIndex", r.raft_index)
        .num("raftTerm", r.raft_term)
        .num("raftAppliedIndex", r.raft_applied_index)
        .opt(
            "errors",
            (!r.errors.is_empty()).then(|| arr(r.errors.iter().map(|e| s(e)))),
        )
        .num("dbSizeInUse", r.db_size_in_use)
        .bool_("isLearner", r.is_learner)
        .end()
}
