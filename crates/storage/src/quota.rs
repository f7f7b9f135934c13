//! The backend space quota (etcd's `backendQuota`, `server/etcdserver/quota.go`).
//!
//! Invariants:
//! - A request whose cost is 0 (reads, deletes, compaction, lease revoke) always passes,
//!   so a member past its quota can still free space.
//! - The check reads two atomics ([`Backend::size_in_use`]); it is cheap on every write.
//! - Unlike etcd, which compares the file size (`be.Size()`) and so needs a defrag before
//!   writes pass again, the check compares the bytes in use: once a compaction frees
//!   enough pages, writes pass without a defrag.
//! - The data directory's filesystem must keep [`disk_reserve_bytes`] free: below it the
//!   server refuses growing writes with NOSPACE before they reach the WAL or the backend
//!   ([`disk_free_bytes`] is one `statvfs`), so a full disk is an alarm, not a crash.

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

/// Free space the data directory's filesystem keeps beyond what one request can write:
/// below `DISK_RESERVE_BYTES + 2 x --max-request-bytes` free, growing writes are refused
/// (NOSPACE). It covers the WAL frame and the backend pages of a request in flight, and
/// the backend file growing by a step.
pub const DISK_RESERVE_BYTES: u64 = 8 << 20;

/// The free space the data directory must keep for a server with `max_request_bytes`.
pub fn disk_reserve_bytes(max_request_bytes: usize) -> u64 {
    DISK_RESERVE_BYTES.saturating_add(2 * max_request_bytes as u64)
}

/// Bytes available to unprivileged writers on the filesystem holding `path` (statvfs's
/// `f_bavail x f_frsize`, what `df` shows as available).
pub fn disk_free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs writes into the zeroed struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

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
    /// (etcd's `!Available`): refused when `size_in_use + cost > quota`. An admitted cost
    /// is counted in [`Backend::size_in_use`] until the next exact computation, so writes
    /// into pages a compaction freed cannot pass the quota unseen.
    pub fn would_exceed(&self, quota_bytes: u64, cost: u64) -> bool {
        if cost == 0 {
            return false;
        }
        if self.size_in_use().saturating_add(cost) > quota_bytes {
            return true;
        }
        self.note_admitted(cost);
        false
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

    /// Writes into pages a deletion freed do not grow the file; the quota still counts
    /// them (it used to see only file growth, so the quota did not hold for the seconds
    /// until the next exact computation: the NOSPACE recovery test caught it).
    #[test]
    fn writes_into_freed_pages_count_against_the_quota() {
        use crate::schema::KEY_TABLE;
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db"), BackendConfig::default()).unwrap();
        let big = vec![7u8; 100_000];
        let write = |del: bool| {
            let tx = b.write_tx().unwrap();
            {
                let mut t = tx.tx.open_table(KEY_TABLE).unwrap();
                for i in 0u32..10 {
                    if del {
                        t.remove(i.to_be_bytes().as_slice()).unwrap();
                    } else {
                        t.insert(i.to_be_bytes().as_slice(), big.as_slice())
                            .unwrap();
                    }
                }
            }
            b.commit_durable(tx).unwrap();
            b.refresh_size_in_use().unwrap();
        };
        write(false);
        write(true);
        let used = b.size_in_use();
        assert!(b.size() > used + 500_000, "the file kept the freed pages");
        let quota = used + 250_000;
        let cost = put_cost(4, 100_000);
        assert!(!b.would_exceed(quota, cost));
        assert!(!b.would_exceed(quota, cost));
        assert!(
            b.would_exceed(quota, cost),
            "a third 100 kB put passes a quota with room for two"
        );
    }

    #[test]
    fn free_disk_space_is_read_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(disk_free_bytes(dir.path()).unwrap() > 0);
        assert!(disk_free_bytes(&dir.path().join("missing")).is_err());
        assert_eq!(disk_reserve_bytes(1 << 20), DISK_RESERVE_BYTES + (2 << 20));
    }
}
