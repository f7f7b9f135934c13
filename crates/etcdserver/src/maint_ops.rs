//! Maintenance operations on the backend (etcd's `maintenance.go`): Snapshot, Defragment,
//! Hash and HashKV.
//!
//! Invariants:
//! - A snapshot is written from one backend read transaction on a blocking thread and
//!   streamed through a bounded channel of `SNAPSHOT_CHUNK_BYTES` chunks: memory stays
//!   bounded by the channel, never the database; its last bytes are the sha256 of all
//!   before, as etcd's. A receiver that goes away stops the writer.
//! - Defragmentation runs online on a blocking thread, never on the apply thread.
//! - HashKV is computed at a revision of the store, so members at the same revision agree.

use std::sync::Arc;

use oxcd_api::etcdserverpb::{HashKvResponse, HashResponse, SnapshotResponse};
use oxcd_api::EtcdError;
use oxcd_storage::snapshot::{ChunkWriter, SNAPSHOT_CHUNK_BYTES};
use tokio::sync::mpsc;

use crate::server::EtcdServer;

/// Chunks in flight between the snapshot writer and the client stream.
const SNAPSHOT_CHANNEL_CHUNKS: usize = 8;

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

impl EtcdServer {
    /// etcd's `Maintenance.Snapshot`: a receiver of the snapshot's messages, in order.
    pub fn snapshot(self: &Arc<Self>) -> mpsc::Receiver<Result<SnapshotResponse, EtcdError>> {
        let (tx, rx) = mpsc::channel(SNAPSHOT_CHANNEL_CHUNKS);
        let server = self.clone();
        tokio::task::spawn_blocking(move || {
            let header = server.header(server.store.published_revision());
            let send_tx = tx.clone();
            let w = ChunkWriter::new(SNAPSHOT_CHUNK_BYTES, |blob: Vec<u8>| {
                let msg = SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: 0,
                    blob,
                    version: crate::maintenance::STORAGE_VERSION.to_string(),
                };
                send_tx.blocking_send(Ok(msg)).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "snapshot receiver gone")
                })
            });
            match server.backend.snapshot(w) {
                Ok(st) => tracing::info!(
                    size = st.total_size,
                    revision = st.revision,
                    "sent database snapshot"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "database snapshot failed");
                    let _ = tx.blocking_send(Err(internal(e)));
                }
            }
        });
        rx
    }

    /// etcd's `Maintenance.Defragment`, online, on a blocking thread.
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let backend = self.backend.clone();
        let r = tokio::task::spawn_blocking(move || backend.defragment())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        tracing::info!(
            size_before = r.size_before,
            size_after = r.size_after,
            rounds = r.rounds,
            exclusive_ms = r.exclusive.as_millis() as u64,
            "defragmented the backend"
        );
        crate::metrics::DB_TOTAL_SIZE.set(self.backend.size() as f64);
        crate::metrics::DB_IN_USE_SIZE.set(self.backend.size_in_use() as f64);
        Ok(())
    }

    /// etcd's `Maintenance.Hash`: the hash of the whole backend.
    pub async fn hash(&self) -> Result<HashResponse, EtcdError> {
        let backend = self.backend.clone();
        let rev = self.store.published_revision();
        let hash = tokio::task::spawn_blocking(move || backend.hash())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(HashResponse {
            header: Some(self.header(rev)),
            hash,
        })
    }

    /// etcd's `Maintenance.HashKV` at `revision` (0: the newest).
    pub async fn hash_kv(self: &Arc<Self>, revision: i64) -> Result<HashKvResponse, EtcdError> {
        let server = self.clone();
        let (h, rev) = tokio::task::spawn_blocking(move || server.store.hash_by_rev(revision))
            .await
            .map_err(internal)?
            .map_err(EtcdError::from)?;
        Ok(HashKvResponse {
            header: Some(self.header(rev)),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.revision,
        })
    }
}
