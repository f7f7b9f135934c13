//! Bodies of the `request_decode` and `backend_recovery` fuzz targets
//! (`fuzz/fuzz_targets/`), shared with the corpus-replay tests so `cargo test` runs the
//! committed corpus.
//!
//! Invariants:
//! - Input: one byte choosing the message type, then the protobuf bytes a client sends.
//!   The message is decoded as tonic does (prost), checked as the gRPC front checks it
//!   ([`crate::validate`]) and, if valid, applied as the apply loop applies it: writes in
//!   one write txn that is ended, committed and published whatever the outcome, reads on
//!   a read view of the published revision.
//! - `backend_recovery`: the bytes are the backend file (`member/snap/db`); it is opened
//!   as a restarting member opens it (backend, then the store's index rebuild) and read.
//! - The only acceptable outcomes are `Ok` or an error; a panic is the finding.

use std::path::Path;
use std::sync::Arc;

use oxcd_api::etcdserverpb as pb;
use oxcd_storage::{Backend, BackendConfig};
use prost::Message;

use crate::error::Result;
use crate::kv_apply;
use crate::store::Store;
use crate::validate;

/// A store on a backend in a scratch directory, reused across inputs.
pub struct RequestFuzzer {
    backend: Arc<Backend>,
    store: Store,
}

impl RequestFuzzer {
    /// A fresh store in `dir` (which must exist and hold no `db`).
    pub fn open(dir: &Path) -> Result<RequestFuzzer> {
        let backend = Arc::new(Backend::open(&dir.join("db"), BackendConfig::default())?);
        let store = Store::open(Arc::clone(&backend))?;
        Ok(RequestFuzzer { backend, store })
    }

    /// Decodes, validates and applies one input (see the module doc). `Ok(false)`: the
    /// bytes did not decode.
    pub fn run(&self, data: &[u8]) -> Result<bool> {
        let Some((&kind, body)) = data.split_first() else {
            return Ok(false);
        };
        macro_rules! decode {
            ($t:ty) => {
                match <$t>::decode(body) {
                    Ok(m) => m,
                    Err(_) => return Ok(false),
                }
            };
        }
        match kind % 12 {
            0 => {
                let r = decode!(pb::RangeRequest);
                validate::check_range_request(&r)?;
                kv_apply::range(&self.store.read()?, &r)?;
            }
            1 => {
                let r = decode!(pb::PutRequest);
                validate::check_put_request(&r)?;
                self.write(|t| kv_apply::put(t, &r).map(|_| ()))?;
            }
            2 => {
                let r = decode!(pb::DeleteRangeRequest);
                validate::check_delete_request(&r)?;
                self.write(|t| kv_apply::delete_range(t, &r).map(|_| ()))?;
            }
            3 => {
                let r = decode!(pb::TxnRequest);
                validate::check_txn(&r, validate::DEFAULT_MAX_TXN_OPS)?;
                if kv_apply::is_txn_readonly(&r) {
                    kv_apply::txn_read(&self.store, &r)?;
                } else {
                    self.write(|t| kv_apply::txn(t, &r).map(|_| ()))?;
                }
            }
            4 => {
                let r = decode!(pb::CompactionRequest);
                let mut wtx = self.backend.write_tx()?;
                let res = kv_apply::compaction(&self.store, &mut wtx, &r);
                self.backend.commit(wtx)?;
                res?;
            }
            // Decoded only here: their checks and apply live in the lease and auth crates.
            5 => drop(decode!(pb::LeaseGrantRequest)),
            6 => drop(decode!(pb::LeaseRevokeRequest)),
            7 => drop(decode!(pb::AuthUserAddRequest)),
            8 => drop(decode!(pb::AuthRoleGrantPermissionRequest)),
            9 => drop(decode!(pb::AuthenticateRequest)),
            10 => drop(decode!(pb::WatchRequest)),
            _ => drop(decode!(oxcd_api::oxcdpb::InternalRequest)),
        }
        Ok(true)
    }

    fn write(&self, f: impl FnOnce(&mut crate::write::WriteTxn<'_>) -> Result<()>) -> Result<()> {
        let mut wtx = self.backend.write_tx()?;
        let res = {
            let mut txn = self.store.write(&mut wtx)?;
            let res = f(&mut txn);
            txn.end();
            res
        };
        self.backend.commit(wtx)?;
        self.store.publish();
        res
    }
}

/// Writes `data` as the backend file in `dir`, opens it as a restarting member does and
/// reads every key; empties `dir` again.
pub fn backend_recovery(dir: &Path, data: &[u8]) -> Result<usize> {
    let path = dir.join("db");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, data).map_err(oxcd_storage::Error::from)?;
    let r = (|| {
        let backend = Arc::new(Backend::open(&path, BackendConfig::default())?);
        let store = Store::open(Arc::clone(&backend))?;
        let all = store.range(b"\0", b"\0", crate::read::RangeOptions::default())?;
        oxcd_storage::alarm::list(&backend)?;
        Ok(all.kvs.len())
    })();
    let _ = std::fs::remove_file(&path);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_recovery_corpus_replays_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = 0;
        for (name, data) in oxcd_storage::fuzz_support::corpus("backend_recovery") {
            let r = backend_recovery(dir.path(), &data);
            opened += usize::from(r.is_ok());
            eprintln!("{name}: {r:?}");
        }
        assert!(opened > 0, "no backend in the corpus opens");
    }

    /// Found by the fuzzer: redb panicked opening this mutated backend file ("internal
    /// error: entered unreachable code"); `Backend::open` now refuses it as corrupt.
    #[test]
    fn a_backend_file_redb_panics_on_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let input = include_bytes!("../../../fuzz/corpus/backend_recovery/found_1");
        let err = backend_recovery(dir.path(), input).unwrap_err();
        assert!(err.to_string().contains("backend file is corrupt"), "{err}");
    }

    /// Writes the seed of `backend_recovery` (run by hand: `--ignored`).
    #[test]
    #[ignore]
    fn write_backend_recovery_seed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let f = RequestFuzzer::open(dir.path()).unwrap();
            for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
                let put = pb::PutRequest {
                    key: k.into(),
                    value: v.into(),
                    ..Default::default()
                };
                let mut input = vec![1];
                input.extend(put.encode_to_vec());
                assert!(f.run(&input).unwrap());
            }
            f.backend.force_commit().unwrap();
        }
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/backend_recovery");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(dir.path().join("db"), out.join("small_store")).unwrap();
    }

    #[test]
    fn request_decode_corpus_replays_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let f = RequestFuzzer::open(dir.path()).unwrap();
        let mut decoded = 0;
        for (name, data) in oxcd_storage::fuzz_support::corpus("request_decode") {
            let r = f.run(&data);
            decoded += usize::from(matches!(r, Ok(true)));
            eprintln!("{name}: {r:?}");
        }
        assert!(decoded > 0, "nothing in the corpus decodes");
    }
}
