//! The backend space quota (etcd's `backendQuota`, `server/etcdserver/quota.go`).
//!
//! Invariants:
//! - A request whose cost is 0 (reads, deletes, compaction, lease revoke) always passes,
//!   so a member past its quota can still free space.
//! - The check reads two atomics ([`Backend::size_in_use`]); it is cheap on every write.
//! - Unlike etcd, which compares the file size (`be.Size()`) and so needs a defrag before
//!   writes pass again, the check compares the bytes in use: once a compaction frees
//!   enough pages, writes pass without a defrag.

use crate::backend::Backend;

/// etcd's default quota: 2 GiB (`DefaultQuotaBytes`).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// etcd's suggested maximum (`MaxQuotaBytes`, 8 GiB): larger quotas are accepted with a
/// warning.
pub const MAX_QUOTA_BYTES: u64 = 8 << 30;
/// etcd's estimated storage overhead of one key-value (`kvOverhead`).
pub const KV_OVERHEAD: u64 = 256;
/// etcd's estimated storage overhead of one lease (`leaseOverhead`).
pub const LEASE_OVERHEAD: u64 = 64;

/// The quota in force for `--quota-backend-bytes` (etcd: 0 means the default; a negative
/// value disables it, which we take as no limit).
pub fn effective_quota(configured: i64) -> u64 {
    match configured {
        0 => DEFAULT_QUOTA_BYTES,
        n if n < 0 => u64::MAX,
        n => n as u64,
    }
}

/// The cost of a put of `key_len` + `value_len` bytes (etcd's `costPut`).
pub fn put_cost(key_len: usize, value_len: usize) -> u64 {
    KV_OVERHEAD + key_len as u64 + value_len as u64
}

impl Backend {
    /// Whether a request costing `cost` bytes would take the backend past `quota_bytes`
    /// (etcd's `!Available`): refused when `size_in_use + cost > quota`.
    pub fn would_exceed(&self, quota_bytes: u64, cost: u64) -> bool {
        cost > 0 && self.size_in_use().saturating_add(cost) > quota_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendConfig;

    #[test]
    fn free_requests_always_pass_and_costly_ones_are_refused_past_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
        let used = b.size_in_use();
        assert!(used > 0);
        assert!(!b.would_exceed(used, 0), "cost 0 passes even at the quota");
        assert!(!b.would_exceed(used + 300, put_cost(10, 10)));
        assert!(b.would_exceed(used + 275, put_cost(10, 10)));
        assert!(b.would_exceed(0, 1));
        assert!(!b.would_exceed(effective_quota(-1), u64::MAX / 2));
        assert_eq!(effective_quota(0), DEFAULT_QUOTA_BYTES);
        assert_eq!(effective_quota(1024), 1024);
    }
}
