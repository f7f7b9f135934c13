//! etcd's KV hash (`server/storage/mvcc/hash.go`, `kvstore.go` `HashByRev`), compared
//! across members by `endpoint hashkv` and the corruption checks.
//!
//! Invariants:
//! - crc32 (Castagnoli) over the table name `key`, then, in key order, the key and value
//!   bytes of every key-table row at or below the hash revision, skipping rows at or below
//!   the compaction revision that the index does not keep at the hash revision (rows a
//!   compaction has yet to delete physically). Equal on every member at the same
//!   revision, whether or not its physical compaction has finished.
//! - The index snapshot (`keep`) and the backend read transaction are taken at the same
//!   published revision, so rows written after it are excluded by the revision bound.

use std::collections::HashSet;

use oxcd_storage::schema::KEY_TABLE;

use crate::error::{Error, Result};
use crate::revision::Revision;
use crate::store::Store;

/// The result of [`Store::hash_by_rev`] (etcd 3.6's `KeyValueHash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueHash {
    /// The crc32 Castagnoli hash.
    pub hash: u32,
    /// The compaction revision when it was computed (HashKVResponse.compact_revision).
    pub compact_revision: i64,
    /// The revision it covers (HashKVResponse.hash_revision, 3.6).
    pub revision: i64,
}

/// etcd's `kvHasher`.
struct KvHasher<'a> {
    crc: u32,
    compact_rev: i64,
    rev: i64,
    keep: &'a HashSet<Revision>,
}

impl KvHasher<'_> {
    fn write(&mut self, k: &[u8], v: &[u8]) {
        let Some(kr) = Revision::from_bytes(k) else {
            return;
        };
        if kr.main > self.rev {
            return;
        }
        if kr.main <= self.compact_rev && !self.keep.is_empty() && !self.keep.contains(&kr) {
            return;
        }
        self.crc = crc32c::crc32c_append(self.crc, k);
        self.crc = crc32c::crc32c_append(self.crc, v);
    }
}

impl Store {
    /// etcd's `HashByRev`: the hash of the store at `rev` (0: the published revision).
    /// Returns the hash and the published revision (the response header's). `Compacted`
    /// if `rev` is below the compaction revision, `FutureRev` if above the published one.
    pub fn hash_by_rev(&self, rev: i64) -> Result<(KeyValueHash, i64)> {
        let current = self.published_revision();
        // The read transaction is opened under the index lock: a compaction applied
        // after it deletes rows only in later transactions.
        let (compact_rev, keep, rtx) = {
            let idx = self.index.read();
            let compact_rev = idx.compact_rev;
            if rev > 0 && rev < compact_rev {
                return Err(Error::Compacted);
            }
            if rev > current {
                return Err(Error::FutureRev);
            }
            let at = if rev == 0 { current } else { rev };
            (compact_rev, idx.tree.keep(at), self.backend().read_tx()?)
        };
        let rev = if rev == 0 { current } else { rev };
        let table = rtx.open_table(KEY_TABLE)?;
        let mut h = KvHasher {
            crc: crc32c::crc32c(b"key"),
            compact_rev,
            rev,
            keep: &keep,
        };
        let end = Revision::new(rev.saturating_add(1), 0).to_bytes();
        for row in table.range::<&[u8]>(..end.as_slice())? {
            let (k, v) = row?;
            h.write(k.value(), v.value());
        }
        Ok((
            KeyValueHash {
                hash: h.crc,
                compact_revision: compact_rev,
                revision: rev,
            },
            current,
        ))
    }
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
