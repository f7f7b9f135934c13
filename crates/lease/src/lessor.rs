//! The lessor: etcd's `lessor` (`server/lease/lessor.go`), minus the goroutines: the
//! server's apply loop, gRPC services and leader loop call into it.
//!
//! Invariants:
//! - One mutex guards the whole table (leases, the key -> lease item map, both queues and
//!   the primary flag); no method calls out while holding it, except
//!   [`Lessor::revoke`], which releases it before deleting keys.
//! - `items[key] == id` exactly when `key` is in lease `id`'s key set.
//! - On a non-primary lessor every lease's expiry is "forever" and both queues are empty;
//!   on the primary every lease has an expiry and a live expiry-queue entry.
//! - A lease's TTL is never below `min_ttl` when granted here (records loaded from disk
//!   keep theirs, as etcd's do).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxcd_api::mvccpb::{event::EventType, Event};
use oxcd_storage::schema::LEASE_TABLE;
use oxcd_storage::redb::ReadableTable;
use oxcd_storage::{Backend, WriteTx};
use parking_lot::Mutex;
use prost::Message;

use crate::clock::Clock;
use crate::error::LeaseError;
use crate::queue::TimeQueue;
use crate::record::{lease_key, LeaseRecord};
use crate::{LeaseId, RangeDeleter, NO_LEASE};

/// etcd's `MaxLeaseTTL`: the largest TTL a lease may be granted with (seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's `leaseRevokeRate`: expired leases revoked per second, at most.
pub const LEASE_REVOKE_RATE: usize = 1000;
/// etcd's `expiredLeaseRetryInterval`: an expired lease is reported again after this long
/// if its revoke did not go through.
pub const EXPIRED_LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(3);
/// etcd's `defaultLeaseCheckpointInterval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd's `maxLeaseCheckpointBatchSize`.
pub const MAX_LEASE_CHECKPOINT_BATCH: usize = 1000;

/// What `Remaining()` is on a lease that never expires (Go's `math.MaxInt64` nanoseconds
/// as whole seconds), reported by time-to-live off the primary.
const FOREVER_SECS: i64 = i64::MAX / 1_000_000_000;

/// etcd's minimum lease TTL: `ceil(((3 * electionTicks) / 2) * heartbeat)` in seconds,
/// so a lease cannot expire during a leader election (2 s with etcd's defaults).
pub fn min_lease_ttl(election_ticks: usize, heartbeat: Duration) -> i64 {
    let ticks = u32::try_from(3 * election_ticks / 2).unwrap_or(u32::MAX);
    heartbeat.saturating_mul(ticks).as_secs_f64().ceil() as i64
}

/// The lessor's settings.
#[derive(Debug, Clone)]
pub struct LessorConfig {
    /// TTLs below this are raised to it at grant (seconds).
    pub min_ttl: i64,
    /// `Some(interval)` enables checkpointing of remaining TTLs (etcd's
    /// `--experimental-enable-lease-checkpoint`).
    pub checkpoint_interval: Option<Duration>,
    /// How long before an expired lease whose revoke did not land is reported again.
    pub expired_retry_interval: Duration,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            min_ttl: 2,
            checkpoint_interval: None,
            expired_retry_interval: EXPIRED_LEASE_RETRY_INTERVAL,
        }
    }
}

/// A lease's time-to-live as LeaseTimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// Remaining whole seconds (truncated toward zero, as Go's `int64(d.Seconds())`).
    pub ttl: i64,
    /// The TTL the lease was granted with.
    pub granted_ttl: i64,
    /// The attached keys, sorted (empty unless asked for).
    pub keys: Vec<Vec<u8>>,
}

/// A remaining TTL to be agreed on through Raft (etcd's `pb.LeaseCheckpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseCheckpoint {
    pub id: LeaseId,
    pub remaining_ttl: i64,
}

/// Why a renew did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// This lessor is not the primary; the leader must renew.
    NotPrimary,
    /// No such lease.
    NotFound,
    /// The lease expired and its revoke is pending: wait until it is gone.
    Expired,
    /// The lease carries a checkpointed remaining TTL: propose a checkpoint of 0 for it
    /// (which clears it) and renew again.
    ClearCheckpoint,
}

#[derive(Debug)]
struct Lease {
    ttl: i64,
    /// Checkpointed remaining TTL (seconds); 0 when none.
    remaining_ttl: i64,
    /// `None`: never expires (not primary).
    expiry: Option<Instant>,
    /// The instant of this lease's live expiry-queue entry.
    expiry_slot: Option<Instant>,
    /// The instant of this lease's live checkpoint-queue entry.
    checkpoint_slot: Option<Instant>,
    keys: HashSet<Vec<u8>>,
}

impl Lease {
    fn new(ttl: i64, remaining_ttl: i64) -> Lease {
        Lease {
            ttl,
            remaining_ttl,
            expiry: None,
            expiry_slot: None,
            checkpoint_slot: None,
            keys: HashSet::new(),
        }
    }

    /// etcd's `getRemainingTTL`: the checkpointed remaining TTL if any, else the TTL.
    fn remaining_or_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<LeaseId, Lease>,
    items: HashMap<Vec<u8>, LeaseId>,
    primary: bool,
    expiry_q: TimeQueue,
    checkpoint_q: TimeQueue,
}

/// The lease table (see the module doc).
pub struct Lessor {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    cfg: LessorConfig,
}

impl std::fmt::Debug for Lessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Lessor")
            .field("leases", &inner.leases.len())
            .field("items", &inner.items.len())
            .field("primary", &inner.primary)
            .finish()
    }
}

/// `at + secs`, or `None` (never) if that is beyond what an `Instant` can hold.
fn after(at: Instant, extra: Duration, secs: i64) -> Option<Instant> {
    at.checked_add(extra)?
        .checked_add(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// etcd's `refresh(extend)`: expiry = now + extend + remaining-or-TTL, with a live queue
/// entry for it.
fn refresh(l: &mut Lease, id: LeaseId, q: &mut TimeQueue, now: Instant, extend: Duration) {
    l.expiry = after(now, extend, l.remaining_or_ttl());
    l.expiry_slot = l.expiry;
    if let Some(e) = l.expiry {
        q.push(e, id);
    }
}

/// Signed whole seconds from `now` to `at`, truncated toward zero.
fn secs_until(at: Instant, now: Instant) -> i64 {
    if at >= now {
        i64::try_from((at - now).as_secs()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((now - at).as_secs()).unwrap_or(i64::MAX)
    }
}

impl Lessor {
    /// An empty, non-primary lessor.
    pub fn new(cfg: LessorConfig, clock: Arc<dyn Clock>) -> Lessor {
        Lessor {
            inner: Mutex::new(Inner::default()),
            clock,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LessorConfig {
        &self.cfg
    }

    /// Whether remaining TTLs are checkpointed.
    pub fn checkpointing(&self) -> bool {
        self.cfg.checkpoint_interval.is_some()
    }

    /// Replaces the whole table with the lease records of `backend` (etcd's `Recover` /
    /// `initAndRecover`; at start, and after a snapshot replaced the backend): each lease
    /// gets its stored TTL and remaining TTL, no keys, and never expires until
    /// [`Lessor::promote`] (on a primary it expires its remaining-or-TTL from now). Keys are
    /// attached afterwards by the caller ([`Lessor::attach`]) from the key-value store.
    pub fn recover(&self, backend: &Backend) -> Result<usize, LeaseError> {
        let rtx = backend.read_tx()?;
        let table = rtx.open_table(LEASE_TABLE)?;
        let mut leases = HashMap::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            let r = LeaseRecord::decode(v.value())
                .map_err(|e| LeaseError::Corrupt(format!("lease record: {e}")))?;
            leases.insert(r.id, Lease::new(r.ttl, r.remaining_ttl));
        }
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.leases = leases;
        inner.items.clear();
        inner.expiry_q.clear();
        inner.checkpoint_q.clear();
        if inner.primary {
            for (id, l) in inner.leases.iter_mut() {
                refresh(l, *id, &mut inner.expiry_q, now, Duration::ZERO);
                self.schedule_checkpoint(l, *id, &mut inner.checkpoint_q, now);
            }
        }
        Ok(inner.leases.len())
    }

    fn persist(tx: &mut WriteTx, id: LeaseId, l: &Lease) -> Result<(), LeaseError> {
        let rec = LeaseRecord {
            id,
            ttl: l.ttl,
            remaining_ttl: l.remaining_ttl,
        };
        tx.tx
            .open_table(LEASE_TABLE)?
            .insert(lease_key(id).as_slice(), rec.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Grants lease `id` (apply path; etcd's `Grant`). A TTL below the minimum is raised
    /// to it; returns the granted TTL. On the primary the lease starts expiring now.
    pub fn grant(&self, tx: &mut WriteTx, id: LeaseId, ttl: i64) -> Result<i64, LeaseError> {
        if id == NO_LEASE {
            return Err(LeaseError::NotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge);
        }
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let mut l = Lease::new(ttl.max(self.cfg.min_ttl), 0);
        Self::persist(tx, id, &l)?;
        if inner.primary {
            refresh(&mut l, id, &mut inner.expiry_q, now, Duration::ZERO);
            self.schedule_checkpoint(&mut l, id, &mut inner.checkpoint_q, now);
        }
        let granted = l.ttl;
        inner.leases.insert(id, l);
        Ok(granted)
    }

    /// Revokes lease `id` (apply path; etcd's `Revoke`): deletes its keys through
    /// `deleter` (sorted, so every member deletes in the same order, in one revision),
    /// then deletes the lease record in the same backend transaction and forgets the lease
    /// and its items. Returns the deleted keys.
    pub fn revoke<D: RangeDeleter>(
        &self,
        id: LeaseId,
        deleter: &mut D,
    ) -> Result<Vec<Vec<u8>>, LeaseError> {
        let mut keys: Vec<Vec<u8>> = {
            let inner = self.inner.lock();
            let l = inner.leases.get(&id).ok_or(LeaseError::NotFound)?;
            l.keys.iter().cloned().collect()
        };
        keys.sort();
        deleter.delete_keys(&keys).map_err(|e| LeaseError::Delete {
            id,
            msg: e.to_string(),
        })?;
        deleter
            .backend_tx()
            .tx
            .open_table(LEASE_TABLE)?
            .remove(lease_key(id).as_slice())?;
        let mut inner = self.inner.lock();
        if let Some(l) = inner.leases.remove(&id) {
            for k in &l.keys {
                if inner.items.get(k) == Some(&id) {
                    inner.items.remove(k);
                }
            }
        }
        Ok(keys)
    }

    /// Records a checkpointed remaining TTL (apply path; etcd's `Checkpoint`). 0 clears
    /// it. An unknown lease is ignored.
    pub fn checkpoint(
        &self,
        tx: &mut WriteTx,
        id: LeaseId,
        remaining_ttl: i64,
    ) -> Result<(), LeaseError> {
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if let Some(l) = inner.leases.get_mut(&id) {
            l.remaining_ttl = remaining_ttl;
            Self::persist(tx, id, l)?;
            if inner.primary {
                self.schedule_checkpoint(l, id, &mut inner.checkpoint_q, now);
            }
        }
        Ok(())
    }

    /// etcd's `scheduleCheckpointIfNeeded`.
    fn schedule_checkpoint(&self, l: &mut Lease, id: LeaseId, q: &mut TimeQueue, now: Instant) {
        let Some(iv) = self.cfg.checkpoint_interval else {
            return;
        };
        if l.remaining_or_ttl() > i64::try_from(iv.as_secs()).unwrap_or(i64::MAX) {
            let at = now + iv;
            l.checkpoint_slot = Some(at);
            q.push(at, id);
        }
    }

    /// Whether lease `id` exists (etcd's `Lookup(id) != nil`).
    pub fn exists(&self, id: LeaseId) -> bool {
        self.inner.lock().leases.contains_key(&id)
    }

    /// The number of leases.
    pub fn len(&self) -> usize {
        self.inner.lock().leases.len()
    }

    /// Whether there is no lease.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lease `key` is attached to, if any.
    pub fn lease_of(&self, key: &[u8]) -> Option<LeaseId> {
        self.inner.lock().items.get(key).copied()
    }

    /// Attaches `key` to lease `id`, detaching it from any other lease.
    pub fn attach(&self, id: LeaseId, key: &[u8]) -> Result<(), LeaseError> {
        let mut inner = self.inner.lock();
        Self::attach_locked(&mut inner, id, key)
    }

    fn attach_locked(inner: &mut Inner, id: LeaseId, key: &[u8]) -> Result<(), LeaseError> {
        if inner.items.get(key) == Some(&id) {
            return Ok(());
        }
        Self::detach_locked(inner, key);
        if id == NO_LEASE {
            return Ok(());
        }
        let l = inner.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        l.keys.insert(key.to_vec());
        inner.items.insert(key.to_vec(), id);
        Ok(())
    }

    fn detach_locked(inner: &mut Inner, key: &[u8]) {
        if let Some(old) = inner.items.remove(key) {
            if let Some(l) = inner.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
    }

    /// Follows a write txn's events (apply path; what etcd's `storeTxnWrite.put/delete`
    /// do with `Attach`/`Detach`): a put attaches its key to the kv's lease (detaching it
    /// from the previous one), a delete detaches its key.
    pub fn apply_events(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            if ev.r#type == EventType::Delete as i32 {
                Self::detach_locked(&mut inner, &kv.key);
            } else if let Err(e) = Self::attach_locked(&mut inner, kv.lease, &kv.key) {
                // The apply path checked the lease before the put; this is a bug.
                tracing::error!(lease = kv.lease, error = %e, "failed to attach a key to its lease");
            }
        }
    }

    /// Renews lease `id` on the primary (etcd's `Renew`): expiry = now + TTL. Returns the
    /// TTL.
    pub fn renew(&self, id: LeaseId) -> Result<i64, RenewError> {
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if !inner.primary {
            return Err(RenewError::NotPrimary);
        }
        let l = inner.leases.get_mut(&id).ok_or(RenewError::NotFound)?;
        if l.expiry.is_some_and(|e| e <= now) {
            return Err(RenewError::Expired);
        }
        if self.checkpointing() && l.remaining_ttl > 0 {
            return Err(RenewError::ClearCheckpoint);
        }
        l.expiry = after(now, Duration::ZERO, l.ttl);
        l.expiry_slot = l.expiry;
        if let Some(e) = l.expiry {
            inner.expiry_q.push(e, id);
        }
        let ttl = l.ttl;
        if inner.expiry_q.needs_rebuild(inner.leases.len()) {
            let live = inner
                .leases
                .iter()
                .filter_map(|(id, l)| l.expiry_slot.map(|t| (t, *id)));
            inner.expiry_q.rebuild(live);
        }
        Ok(ttl)
    }

    /// Lease `id`'s time-to-live (etcd's `LeaseTimeToLive` on the leader); `None` if there
    /// is no such lease.
    pub fn time_to_live(&self, id: LeaseId, with_keys: bool) -> Option<TimeToLive> {
        let now = self.clock.now();
        let inner = self.inner.lock();
        let l = inner.leases.get(&id)?;
        let mut keys: Vec<Vec<u8>> = if with_keys {
            l.keys.iter().cloned().collect()
        } else {
            Vec::new()
        };
        keys.sort();
        Some(TimeToLive {
            ttl: l.expiry.map_or(FOREVER_SECS, |e| secs_until(e, now)),
            granted_ttl: l.ttl,
            keys,
        })
    }

    /// Every lease id, soonest expiry first (etcd's `Leases`), ties by id.
    pub fn leases(&self) -> Vec<LeaseId> {
        let inner = self.inner.lock();
        let mut v: Vec<(Option<Instant>, LeaseId)> =
            inner.leases.iter().map(|(id, l)| (l.expiry, *id)).collect();
        v.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether this lessor is the primary (the leader's).
    pub fn is_primary(&self) -> bool {
        self.inner.lock().primary
    }

    /// Becomes the primary (etcd's `Promote`): every lease expires `extend` + its
    /// remaining-or-TTL from now; when there are many leases, those that would expire in
    /// the same second beyond 3/4 of the revoke rate are pushed later so a mass expiry is
    /// spread out.
    pub fn promote(&self, extend: Duration) {
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.primary = true;
        inner.expiry_q.clear();
        inner.checkpoint_q.clear();
        for (id, l) in inner.leases.iter_mut() {
            refresh(l, *id, &mut inner.expiry_q, now, extend);
            l.checkpoint_slot = None;
            self.schedule_checkpoint(l, *id, &mut inner.checkpoint_q, now);
        }
        if inner.leases.len() < LEASE_REVOKE_RATE {
            return;
        }
        let mut order: Vec<(Instant, LeaseId)> = inner
            .leases
            .iter()
            .filter_map(|(id, l)| l.expiry.map(|e| (e, *id)))
            .collect();
        order.sort();
        let Some(&(first, _)) = order.first() else {
            return;
        };
        let target = (3 * LEASE_REVOKE_RATE / 4) as f64;
        let mut base = (first - now).as_secs_f64();
        let mut next = base + 1.0;
        let mut expires = 0usize;
        for (e, id) in order {
            let remaining = (e - now).as_secs_f64();
            if remaining > next {
                base = remaining;
                next = base + 1.0;
                expires = 1;
                continue;
            }
            expires += 1;
            if expires as f64 <= target {
                continue;
            }
            let delay = (expires as f64 / target - (remaining - base)).max(0.0);
            next = base + delay;
            if let Some(l) = inner.leases.get_mut(&id) {
                let extra = extend + Duration::from_secs_f64(delay);
                refresh(l, id, &mut inner.expiry_q, now, extra);
                self.schedule_checkpoint(l, id, &mut inner.checkpoint_q, now);
            }
        }
        let live: Vec<(Instant, LeaseId)> = inner
            .leases
            .iter()
            .filter_map(|(id, l)| l.expiry_slot.map(|t| (t, *id)))
            .collect();
        inner.expiry_q.rebuild(live.into_iter());
    }

    /// Stops being the primary (etcd's `Demote`): every lease expires never.
    pub fn demote(&self) {
        let mut inner = self.inner.lock();
        inner.primary = false;
        inner.expiry_q.clear();
        inner.checkpoint_q.clear();
        for l in inner.leases.values_mut() {
            l.expiry = None;
            l.expiry_slot = None;
            l.checkpoint_slot = None;
        }
    }

    /// Up to `limit` expired leases for the caller to revoke (etcd's
    /// `findExpiredLeases`); each one reported is reported again after the retry interval
    /// if it still exists then. Empty unless primary.
    pub fn find_expired(&self, limit: usize) -> Vec<LeaseId> {
        let now = self.clock.now();
        let retry = self.cfg.expired_retry_interval;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut out = Vec::new();
        if !inner.primary {
            return out;
        }
        while out.len() < limit {
            let Some((t, id)) = inner.expiry_q.pop_due(now) else {
                break;
            };
            let Some(l) = inner.leases.get_mut(&id) else {
                continue;
            };
            if l.expiry_slot != Some(t) {
                continue; // stale: renewed, or already re-queued
            }
            match l.expiry {
                Some(e) if e <= now => {
                    out.push(id);
                    let next = now + retry;
                    l.expiry_slot = Some(next);
                    inner.expiry_q.push(next, id);
                }
                Some(e) => {
                    l.expiry_slot = Some(e);
                    inner.expiry_q.push(e, id);
                }
                None => l.expiry_slot = None,
            }
        }
        out
    }

    /// Up to `limit` due checkpoints (etcd's `findDueScheduledCheckpoints`): leases whose
    /// checkpoint time came, that have not expired, with remaining TTL (rounded up) below
    /// their TTL. Empty unless primary with checkpointing on.
    pub fn find_due_checkpoints(&self, limit: usize) -> Vec<LeaseCheckpoint> {
        let now = self.clock.now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut out = Vec::new();
        if !inner.primary || !self.checkpointing() {
            return out;
        }
        while out.len() < limit {
            let Some((t, id)) = inner.checkpoint_q.pop_due(now) else {
                break;
            };
            let Some(l) = inner.leases.get_mut(&id) else {
                continue;
            };
            if l.checkpoint_slot != Some(t) {
                continue;
            }
            l.checkpoint_slot = None;
            let Some(e) = l.expiry else { continue };
            if now >= e {
                continue;
            }
            let remaining = (e - now).as_secs_f64().ceil() as i64;
            if remaining >= l.ttl {
                continue;
            }
            out.push(LeaseCheckpoint {
                id,
                remaining_ttl: remaining,
            });
        }
        out
    }

    /// Entries in the expiry queue (live and stale); for tests and metrics.
    pub fn expiry_queue_len(&self) -> usize {
        self.inner.lock().expiry_q.len()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
