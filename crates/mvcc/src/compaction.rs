//! Incremental compaction: the logical part at apply, the physical deletion in bounded
//! steps off the apply path (etcd's `scheduleCompaction`, `--compaction-batch-limit`).
//!
//! Invariants:
//! - [`Store::compact_logical`] runs in the apply's `WriteTx`: it writes
//!   scheduledCompactRev, compacts the index and sets the compaction revision, so reads
//!   below it fail with `Compacted` at once. Nothing else is deleted there.
//! - [`Store::compact_step`] scans at most `batch_limit` key-table rows `<= rev` in a
//!   backend transaction of its own, deletes those the compaction does not keep (noting
//!   each for a running defragmentation), and in the step that finds no more rows writes
//!   finishedCompactRev. Puts interleave between steps.
//! - Rows a job deletes are never read again: reads at or above the compaction revision
//!   use only kept revisions, and the hash skips unkept rows at or below it.
//! - A crash between steps leaves scheduledCompactRev > finishedCompactRev; the store
//!   redoes that compaction when it opens ([`Store::open`]), as etcd does.
//! - Jobs run in the order their compactions were applied. A later job's keep set keeps
//!   nothing at or below an earlier job's revision that the earlier one deletes, so an
//!   earlier job may also be dropped: the later one deletes what it left.

use std::collections::HashSet;
use std::ops::Bound;

use oxcd_storage::schema::KEY_TABLE;
use oxcd_storage::WriteTx;
use redb::ReadableTable;

use crate::error::Result;
use crate::revision::Revision;
use crate::store::{write_meta_rev, Store, FINISHED_COMPACT_KEY};

/// etcd's default `--experimental-compaction-batch-limit`.
pub const DEFAULT_COMPACTION_BATCH_LIMIT: usize = 1000;

/// The physical part of one compaction, still to run.
#[derive(Debug, Clone)]
pub struct CompactJob {
    rev: i64,
    keep: HashSet<Revision>,
    /// The next key-table key to look at.
    next: Vec<u8>,
    removed: usize,
    done: bool,
}

impl CompactJob {
    /// The compaction revision.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// Whether finishedCompactRev was written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Rows deleted so far.
    pub fn removed(&self) -> usize {
        self.removed
    }
}

impl Store {
    /// The apply-path part of compacting at `rev` (etcd's `Compact`): in `wtx`, with the
    /// same errors as [`Store::compact`]. Run the returned job's steps with
    /// [`Store::compact_step`] after `wtx` committed.
    pub fn compact_logical(&self, wtx: &mut WriteTx, rev: i64) -> Result<CompactJob> {
        let keep = self.compact_index(wtx, rev)?;
        tracing::info!(rev, kept = keep.len(), "scheduled compaction");
        Ok(CompactJob {
            rev,
            keep,
            next: Vec::new(),
            removed: 0,
            done: false,
        })
    }

    /// One bounded step of `job` in its own backend transaction (committed with
    /// [`oxcd_storage::Backend::commit`]). Returns whether the job is done.
    pub fn compact_step(&self, job: &mut CompactJob, batch_limit: usize) -> Result<bool> {
        if job.done {
            return Ok(true);
        }
        let batch_limit = batch_limit.max(1);
        let backend = self.backend();
        let mut wtx = backend.write_tx()?;
        let end = Revision::new(job.rev.saturating_add(1), 0).to_bytes();
        let mut scanned = 0;
        let mut removed = 0;
        {
            let mut table = wtx.tx.open_table(KEY_TABLE)?;
            let mut doomed = Vec::new();
            let mut last = None;
            let range = (
                Bound::Included(job.next.as_slice()),
                Bound::Excluded(end.as_slice()),
            );
            for row in table.range::<&[u8]>(range)? {
                let (k, _) = row?;
                let k = k.value();
                scanned += 1;
                if Revision::from_bytes(k).is_some_and(|r| !job.keep.contains(&r)) {
                    doomed.push(k.to_vec());
                }
                if scanned >= batch_limit {
                    last = Some(k.to_vec());
                    break;
                }
            }
            for k in &doomed {
                table.remove(k.as_slice())?;
                wtx.note_key_deleted(k);
            }
            removed += doomed.len();
            if let Some(mut last) = last {
                // The smallest key after `last`.
                last.push(0);
                job.next = last;
            }
        }
        // The same fail points as the synchronous `Store::compact`, on the path the server
        // runs: before each step's commit, and around marking the compaction finished.
        fail::fail_point!("compactBeforeCommit");
        let done = scanned < batch_limit;
        if done {
            fail::fail_point!("compactBeforeSetFinishedCompact");
            write_meta_rev(&mut wtx, FINISHED_COMPACT_KEY, job.rev)?;
        }
        backend.commit(wtx)?;
        if done {
            fail::fail_point!("compactAfterCommit");
        }
        job.removed += removed;
        job.done = done;
        if done {
            tracing::info!(rev = job.rev, removed = job.removed, "finished compaction");
        }
        Ok(done)
    }

    /// Runs `job` to the end, one step after another.
    pub fn compact_finish(&self, job: &mut CompactJob, batch_limit: usize) -> Result<()> {
        while !self.compact_step(job, batch_limit)? {}
        Ok(())
    }
}

#[cfg(test)]
#[path = "compaction_tests.rs"]
mod tests;
