//! Raft snapshots of the backend: the leader dumps every table of its backend from one read
//! transaction (a consistent point, carrying its consistent index); a member that fell
//! behind the leader's compacted log replaces its backend contents with those rows.
//!
//! Invariants:
//! - The dump is one consistent view; its consistent index is >= the raft snapshot index it
//!   travels with, so after installing, entries up to that consistent index are skipped by
//!   the apply loop and nothing is applied twice.
//! - Installing replaces every table in one durable backend transaction, keeping only this
//!   member's own identity (its local member id).

use oxcd_api::oxcdpb::BackendRow;
use oxcd_storage::schema::{KEY_TABLE, LEASE_TABLE, MEMBERS_TABLE, META_TABLE};
use oxcd_storage::redb::{ReadableTable, TableDefinition};
use oxcd_storage::Backend;

use crate::bootstrap::META_LOCAL_MEMBER_ID;
use crate::error::Result;

/// Bytes of rows per chunk sent.
const CHUNK_BYTES: usize = 1 << 20;

/// A backend table keyed and valued by bytes.
type BytesTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

const BYTE_TABLES: [(&str, BytesTable); 3] = [
    ("key", KEY_TABLE),
    ("lease", LEASE_TABLE),
    ("members", MEMBERS_TABLE),
];

fn se(e: impl Into<oxcd_storage::Error>) -> crate::error::Error {
    crate::error::Error::Storage(e.into())
}

type OpenTable<'t> = oxcd_storage::redb::Table<'t, &'static [u8], &'static [u8]>;

/// Every row of the backend, in chunks of about [`CHUNK_BYTES`].
pub fn dump_backend(backend: &Backend) -> Result<Vec<Vec<BackendRow>>> {
    let rtx = backend.read_tx()?;
    let mut chunks = vec![Vec::new()];
    let mut size = 0usize;
    let mut push = |row: BackendRow| {
        size += row.key.len() + row.value.len() + 16;
        chunks.last_mut().expect("at least one chunk").push(row);
        if size >= CHUNK_BYTES {
            chunks.push(Vec::new());
            size = 0;
        }
    };
    for (name, def) in BYTE_TABLES {
        let t = rtx.open_table(def).map_err(se)?;
        for row in t.iter().map_err(se)? {
            let (k, v) = row.map_err(se)?;
            push(BackendRow {
                table: name.to_string(),
                key: k.value().to_vec(),
                value: v.value().to_vec(),
            });
        }
    }
    let meta = rtx.open_table(META_TABLE).map_err(se)?;
    for row in meta.iter().map_err(se)? {
        let (k, v) = row.map_err(se)?;
        push(BackendRow {
            table: "meta".to_string(),
            key: k.value().as_bytes().to_vec(),
            value: v.value().to_vec(),
        });
    }
    Ok(chunks)
}

/// Replaces the backend's contents with `rows` (a leader's dump), durably.
pub fn install(backend: &Backend, rows: &[BackendRow]) -> Result<()> {
    let wtx = backend.write_tx()?;
    {
        for (_, def) in BYTE_TABLES {
            let mut t = wtx.tx.open_table(def).map_err(se)?;
            t.retain(|_, _| false).map_err(se)?;
        }
        let mut meta = wtx.tx.open_table(META_TABLE).map_err(se)?;
        meta.retain(|k, _| k == META_LOCAL_MEMBER_ID).map_err(se)?;
        // Rows arrive grouped by table; keep the current table open across its rows.
        let mut current: Option<(&str, OpenTable)> = None;
        for r in rows {
            if r.table == "meta" {
                let Ok(k) = std::str::from_utf8(&r.key) else {
                    continue;
                };
                if k != META_LOCAL_MEMBER_ID {
                    meta.insert(k, r.value.as_slice()).map_err(se)?;
                }
                continue;
            }
            if current.as_ref().map(|(n, _)| *n) != Some(r.table.as_str()) {
                current = None;
                let Some((name, def)) = BYTE_TABLES.iter().find(|(n, _)| *n == r.table) else {
                    continue;
                };
                current = Some((name, wtx.tx.open_table(*def).map_err(se)?));
            }
            if let Some((_, t)) = current.as_mut() {
                t.insert(r.key.as_slice(), r.value.as_slice()).map_err(se)?;
            }
        }
    }
    backend.commit_durable(wtx)?;
    backend.reload_consistent_index()?;
    Ok(())
}

/// A received snapshot's rows, waiting for Raft to accept the snapshot message that came
/// with them (the peer service fills it before stepping the message; the Raft thread takes
/// it when the snapshot appears in a `Ready`).
#[derive(Default)]
pub struct SnapshotInbox(parking_lot::Mutex<Option<(u64, Vec<BackendRow>)>>);

impl SnapshotInbox {
    /// Stores the rows of the snapshot at `index`, replacing an older one.
    pub fn put(&self, index: u64, rows: Vec<BackendRow>) {
        *self.0.lock() = Some((index, rows));
    }

    /// Takes the rows of the snapshot at `index`, if those are the ones held.
    pub fn take(&self, index: u64) -> Option<Vec<BackendRow>> {
        let mut slot = self.0.lock();
        match slot.take() {
            Some((i, rows)) if i == index => Some(rows),
            other => {
                *slot = other;
                None
            }
        }
    }
}
