//! Read views: etcd's `ReadView` and its concurrent read txn.
//!
//! Invariants:
//! - A [`ReadTxn`] is one consistent snapshot: the published revision it was opened at
//!   and a backend read transaction opened after that revision was published. Every range
//!   in it reads at that revision or older, so a write txn running meanwhile (even one
//!   that already updated the shared index) is invisible to it.
//! - Range rules (etcd's `rangeKeys`): `rev <= 0` reads at the view's revision; a `rev`
//!   above it is `FutureRev`; a `rev` below the compaction revision is `Compacted` (reading
//!   exactly at it is allowed). `count` is the number of keys in the range at that
//!   revision, whatever the limit; the result's `rev` is the view's revision.

use oxcd_api::mvccpb::KeyValue;
use redb::ReadOnlyTable;

use crate::error::Result;
use crate::store::Store;

/// Options of a range read (etcd's `RangeOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many kvs (`<= 0`: no limit).
    pub limit: i64,
    /// The revision to read at (`<= 0`: the view's revision).
    pub rev: i64,
    /// Return only the count, no kvs.
    pub count_only: bool,
}

/// The result of a range read (etcd's `RangeResult`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeResult {
    /// The kvs, in key order.
    pub kvs: Vec<KeyValue>,
    /// The view's revision (not the revision read at).
    pub rev: i64,
    /// The number of keys in the range at the revision read at.
    pub count: i64,
}

/// What a txn or a range reads from: a snapshot, or a write txn (etcd's `ReadView`).
///
/// `end` follows etcd's request fields: empty for the single key `key`, `"\0"` for every
/// key `>= key`, otherwise the exclusive end of `[key, end)`.
pub trait ReadView {
    /// The view's revision: what a range with `rev <= 0` reads at.
    fn rev(&self) -> i64;
    /// The compaction revision: the oldest revision that can still be read.
    fn first_rev(&self) -> i64;
    /// The kvs in the range (see [`RangeOptions`]).
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult>;
}

/// A consistent read-only view of the store at the published revision.
pub struct ReadTxn<'a> {
    store: &'a Store,
    rev: i64,
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for ReadTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn").field("rev", &self.rev).finish()
    }
}

impl<'a> ReadTxn<'a> {
    pub(crate) fn new(
        store: &'a Store,
        rev: i64,
        table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    ) -> ReadTxn<'a> {
        ReadTxn { store, rev, table }
    }
}

impl ReadView for ReadTxn<'_> {
    fn rev(&self) -> i64 {
        self.rev
    }

    fn first_rev(&self) -> i64 {
        self.store.compact_revision()
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        self.store.range_keys(&self.table, key, end, self.rev, opts)
    }
}

/// The store as a view: each call reads its own snapshot at the published revision. Use
/// [`Store::read`] when several reads must see the same revision.
impl ReadView for Store {
    fn rev(&self) -> i64 {
        self.published_revision()
    }

    fn first_rev(&self) -> i64 {
        self.compact_revision()
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult> {
        Store::range(self, key, end, opts)
    }
}
