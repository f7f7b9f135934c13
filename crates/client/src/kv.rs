//! Key-value request building: range/put/delete options, prefix range ends and a small
//! transaction builder.
//!
//! Invariants:
//! - [`prefix_end`] returns the smallest key greater than every key with the given prefix,
//!   or `"\0"` (etcd's "to the end of the keyspace") when no such key exists.
//! - Option structs only build requests; they never talk to the network, so they can be
//!   unit-tested and reused by callers that drive the raw tonic clients.

use oxcd_api::etcdserverpb::{
    compare, range_request, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};

/// `(key, range_end)` for a request over `key` with an optional explicit end or prefix flag.
/// An empty prefix means "every key": etcd rejects an empty key, so like etcd's own client
/// this sends key `"\0"` with range end `"\0"`.
pub(crate) fn key_range(
    key: Vec<u8>,
    range_end: Option<&Vec<u8>>,
    prefix: bool,
) -> (Vec<u8>, Vec<u8>) {
    match (range_end, prefix) {
        (Some(end), _) => (key, end.clone()),
        (None, true) if key.is_empty() => (vec![0], vec![0]),
        (None, true) => {
            let end = prefix_end(&key);
            (key, end)
        }
        (None, false) => (key, Vec::new()),
    }
}

/// The range end that selects every key starting with `prefix` (etcd's `WithPrefix`).
///
/// Trailing `0xff` bytes are dropped and the last remaining byte is incremented:
/// `"a"` → `"b"`, `"a\xff"` → `"b"`. A prefix that is empty or all `0xff` has no upper
/// bound, so the result is `"\0"`, which etcd reads as "every key >= key".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Sort order of a range read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Server order (by key).
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// Options of a range read ([`crate::Client::range`]).
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Explicit range end (exclusive); overrides `prefix`.
    pub range_end: Option<Vec<u8>>,
    /// Read every key with the given key as prefix.
    pub prefix: bool,
    /// Maximum number of keys returned (0 = no limit).
    pub limit: i64,
    /// Read at this revision (0 = latest).
    pub revision: i64,
    /// Serializable (local, possibly stale) read instead of a linearizable one.
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Sort order (sorted by key).
    pub sort: SortOrder,
}

impl GetOptions {
    /// Options for a prefix read.
    pub fn prefix() -> Self {
        GetOptions {
            prefix: true,
            ..Default::default()
        }
    }

    /// Build the wire request for `key`.
    pub fn to_request(&self, key: impl Into<Vec<u8>>) -> RangeRequest {
        let (key, range_end) = key_range(key.into(), self.range_end.as_ref(), self.prefix);
        let sort_order = match self.sort {
            SortOrder::None => range_request::SortOrder::None,
            SortOrder::Ascend => range_request::SortOrder::Ascend,
            SortOrder::Descend => range_request::SortOrder::Descend,
        };
        RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.revision,
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            sort_order: sort_order as i32,
            sort_target: range_request::SortTarget::Key as i32,
            ..Default::default()
        }
    }
}

/// Options of a put ([`crate::Client::put`]).
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Attach the key to this lease (0 = none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (etcd `--ignore-value`).
    pub ignore_value: bool,
    /// Keep the current lease (etcd `--ignore-lease`).
    pub ignore_lease: bool,
}

impl PutOptions {
    /// Build the wire request.
    pub fn to_request(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: value.into(),
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options of a delete ([`crate::Client::delete`]).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Explicit range end (exclusive); overrides `prefix`.
    pub range_end: Option<Vec<u8>>,
    /// Delete every key with the given key as prefix.
    pub prefix: bool,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteOptions {
    /// Options for a prefix delete.
    pub fn prefix() -> Self {
        DeleteOptions {
            prefix: true,
            ..Default::default()
        }
    }

    /// Build the wire request for `key`.
    pub fn to_request(&self, key: impl Into<Vec<u8>>) -> DeleteRangeRequest {
        let (key, range_end) = key_range(key.into(), self.range_end.as_ref(), self.prefix);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        }
    }
}

/// How a [`Cmp`] compares the key's field with the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `<`
    Less,
}

/// Constructors for transaction comparisons (one key, no range).
pub struct Cmp;

impl Cmp {
    fn build(
        key: Vec<u8>,
        op: CmpOp,
        target: compare::CompareTarget,
        u: compare::TargetUnion,
    ) -> Compare {
        let result = match op {
            CmpOp::Equal => compare::CompareResult::Equal,
            CmpOp::NotEqual => compare::CompareResult::NotEqual,
            CmpOp::Greater => compare::CompareResult::Greater,
            CmpOp::Less => compare::CompareResult::Less,
        };
        Compare {
            result: result as i32,
            target: target as i32,
            key,
            target_union: Some(u),
            range_end: Vec::new(),
        }
    }

    /// Compare the key's version (0 = key absent).
    pub fn version(key: impl Into<Vec<u8>>, op: CmpOp, v: i64) -> Compare {
        Self::build(
            key.into(),
            op,
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(v),
        )
    }

    /// Compare the key's create revision.
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CmpOp, rev: i64) -> Compare {
        Self::build(
            key.into(),
            op,
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(rev),
        )
    }

    /// Compare the key's last modification revision.
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CmpOp, rev: i64) -> Compare {
        Self::build(
            key.into(),
            op,
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(rev),
        )
    }

    /// Compare the key's value.
    pub fn value(key: impl Into<Vec<u8>>, op: CmpOp, value: impl Into<Vec<u8>>) -> Compare {
        Self::build(
            key.into(),
            op,
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(value.into()),
        )
    }

    /// Compare the key's lease.
    pub fn lease(key: impl Into<Vec<u8>>, op: CmpOp, lease: i64) -> Compare {
        Self::build(
            key.into(),
            op,
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(lease),
        )
    }
}

/// Constructors for transaction operations.
pub struct Op;

impl Op {
    /// A range read.
    pub fn get(key: impl Into<Vec<u8>>, opts: &GetOptions) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestRange(opts.to_request(key))),
        }
    }

    /// A put.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, opts: &PutOptions) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(opts.to_request(key, value))),
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Vec<u8>>, opts: &DeleteOptions) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                opts.to_request(key),
            )),
        }
    }

    /// A nested transaction.
    pub fn txn(txn: Txn) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(txn.into_request())),
        }
    }
}

/// A transaction builder: `if all(compares) then success else failure`.
///
/// ```
/// use oxcd_client::{Cmp, CmpOp, Op, PutOptions, Txn};
/// let txn = Txn::new()
///     .when([Cmp::version("k", CmpOp::Equal, 0)])
///     .and_then([Op::put("k", "v", &PutOptions::default())])
///     .or_else([]);
/// assert_eq!(txn.into_request().compare.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Txn {
    req: TxnRequest,
}

impl Txn {
    /// An empty transaction (no compares: the success branch runs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add comparisons (all must hold for the success branch).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.req.compare.extend(compares);
        self
    }

    /// Add operations run when every comparison holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = RequestOp>) -> Self {
        self.req.success.extend(ops);
        self
    }

    /// Add operations run when a comparison fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = RequestOp>) -> Self {
        self.req.failure.extend(ops);
        self
    }

    /// The wire request.
    pub fn into_request(self) -> TxnRequest {
        self.req
    }
}

/// Whether a transaction only reads (so sending it twice is harmless).
pub(crate) fn txn_is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(inner)) => txn_is_read_only(inner),
            Some(_) => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"/registry/"), b"/registry0");
    }

    #[test]
    fn prefix_end_drops_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\x01\xfe\xff"), b"\x01\xff");
    }

    #[test]
    fn prefix_end_without_upper_bound_is_nul() {
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b"\xff\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn empty_prefix_means_whole_keyspace() {
        let r = GetOptions::prefix().to_request("");
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
        let d = DeleteOptions::prefix().to_request("");
        assert_eq!(
            (d.key.as_slice(), d.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
    }

    #[test]
    fn get_options_build_requests() {
        let r = GetOptions::default().to_request("k");
        assert_eq!(r.key, b"k");
        assert!(r.range_end.is_empty());
        let r = GetOptions::prefix().to_request("foo");
        assert_eq!(r.range_end, b"fop");
        let opts = GetOptions {
            range_end: Some(b"z".to_vec()),
            prefix: true,
            serializable: true,
            limit: 5,
            sort: SortOrder::Descend,
            ..Default::default()
        };
        let r = opts.to_request("a");
        assert_eq!(r.range_end, b"z", "explicit range end wins over prefix");
        assert!(r.serializable);
        assert_eq!(r.limit, 5);
        assert_eq!(r.sort_order, range_request::SortOrder::Descend as i32);
    }

    #[test]
    fn delete_and_put_options_build_requests() {
        let d = DeleteOptions::prefix().to_request("p/");
        assert_eq!(d.range_end, b"p0");
        let p = PutOptions {
            lease: 7,
            prev_kv: true,
            ..Default::default()
        }
        .to_request("k", "v");
        assert_eq!(
            (p.lease, p.prev_kv, p.value.as_slice()),
            (7, true, &b"v"[..])
        );
    }

    #[test]
    fn txn_builder_collects_branches() {
        let t = Txn::new()
            .when([
                Cmp::mod_revision("a", CmpOp::Equal, 3),
                Cmp::value("b", CmpOp::NotEqual, "x"),
            ])
            .and_then([Op::put("a", "1", &PutOptions::default())])
            .or_else([
                Op::get("a", &GetOptions::default()),
                Op::delete("b", &DeleteOptions::default()),
            ])
            .into_request();
        assert_eq!(
            (t.compare.len(), t.success.len(), t.failure.len()),
            (2, 1, 2)
        );
        assert_eq!(t.compare[0].target, compare::CompareTarget::Mod as i32);
        assert_eq!(
            t.compare[0].target_union,
            Some(compare::TargetUnion::ModRevision(3))
        );
        assert_eq!(t.compare[1].result, compare::CompareResult::NotEqual as i32);
        assert!(!txn_is_read_only(&t));
        let ro = Txn::new()
            .and_then([Op::txn(
                Txn::new().and_then([Op::get("a", &GetOptions::default())]),
            )])
            .into_request();
        assert!(txn_is_read_only(&ro));
    }
}
