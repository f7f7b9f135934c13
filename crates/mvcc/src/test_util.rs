//! Helpers for the unit tests: a store on a fresh backend in a temp dir.

use std::sync::Arc;

use oxcd_storage::{Backend, BackendConfig};

use crate::store::Store;
use crate::write::WriteTxn;

/// A store on a fresh backend; keep the temp dir alive while using it.
pub(crate) fn new_store() -> (tempfile::TempDir, Arc<Backend>, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend =
        Arc::new(Backend::open(&dir.path().join("db"), BackendConfig::default()).expect("open"));
    let store = Store::open(Arc::clone(&backend)).expect("open store");
    (dir, backend, store)
}

/// Runs `f` in one write txn of its own backend transaction, commits and publishes.
pub(crate) fn write<T>(
    backend: &Backend,
    store: &Store,
    f: impl FnOnce(&mut WriteTxn<'_>) -> T,
) -> T {
    let mut wtx = backend.write_tx().expect("write_tx");
    let out = {
        let mut w = store.write(&mut wtx).expect("write");
        let out = f(&mut w);
        w.end();
        out
    };
    backend.commit(wtx).expect("commit");
    store.publish();
    out
}
