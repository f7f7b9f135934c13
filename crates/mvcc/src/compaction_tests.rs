use std::sync::Arc;

use oxcd_storage::schema::{KEY_TABLE, META_TABLE};
use oxcd_storage::{Backend, BackendConfig};
use redb::{ReadableTable, ReadableTableMetadata};

use super::*;
use crate::error::Error;
use crate::read::RangeOptions;
use crate::store::SCHEDULED_COMPACT_KEY;
use crate::test_util::{new_store, write};

/// 10 keys, each written 10 times, then one deleted: revisions 2..=102.
fn fill(b: &Backend, store: &Store) {
    for round in 0..10 {
        for k in 0..10 {
            let v = format!("v{round}");
            write(b, store, |w| {
                w.put(format!("k{k}").as_bytes(), v.as_bytes(), 0).unwrap()
            });
        }
    }
    write(b, store, |w| w.delete_range(b"k0", b"").unwrap());
}

fn rows(b: &Backend) -> Vec<Vec<u8>> {
    let rtx = b.read_tx().unwrap();
    let t = rtx.open_table(KEY_TABLE).unwrap();
    t.iter()
        .unwrap()
        .map(|r| r.unwrap().0.value().to_vec())
        .collect()
}

fn meta_has(b: &Backend, key: &str) -> Option<Vec<u8>> {
    let rtx = b.read_tx().unwrap();
    let t = rtx.open_table(META_TABLE).unwrap();
    t.get(key).unwrap().map(|v| v.value().to_vec())
}

/// The rows a synchronous compaction at `rev` leaves.
fn sync_compacted_rows(rev: i64) -> Vec<Vec<u8>> {
    let (_d, b, store) = new_store();
    fill(&b, &store);
    let mut wtx = b.write_tx().unwrap();
    store.compact(&mut wtx, rev).unwrap();
    b.commit(wtx).unwrap();
    rows(&b)
}

#[test]
fn logical_compaction_is_immediate_and_steps_delete_in_bounded_batches() {
    let (_d, b, store) = new_store();
    fill(&b, &store);
    let before = rows(&b).len();
    let mut wtx = b.write_tx().unwrap();
    let mut job = store.compact_logical(&mut wtx, 80).unwrap();
    b.commit(wtx).unwrap();
    store.publish();
    // Logically compacted at once, physically not yet.
    let opts = RangeOptions {
        rev: 79,
        ..RangeOptions::default()
    };
    assert!(matches!(
        store.range(b"k1", b"", opts),
        Err(Error::Compacted)
    ));
    assert_eq!(store.compact_revision(), 80);
    assert_eq!(rows(&b).len(), before);
    assert!(meta_has(&b, SCHEDULED_COMPACT_KEY).is_some());
    assert!(meta_has(&b, FINISHED_COMPACT_KEY).is_none());

    let mut steps = 0;
    let mut last_len = before;
    while !store.compact_step(&mut job, 7).unwrap() {
        steps += 1;
        let len = rows(&b).len();
        // At most 7 rows looked at, so at most 7 deleted, per step.
        assert!(last_len - len <= 7);
        // Puts interleave with the steps.
        write(&b, &store, |w| w.put(b"other", b"x", 0).unwrap());
        last_len = rows(&b).len();
        assert!(steps < 100, "bounded");
    }
    assert!(steps >= 10, "{steps} steps");
    assert!(job.is_done());
    assert!(meta_has(&b, FINISHED_COMPACT_KEY).is_some());
    // The same rows a synchronous compaction leaves, plus the puts made meanwhile.
    let mut want = sync_compacted_rows(80);
    let extra: Vec<_> = rows(&b)
        .into_iter()
        .filter(|k| Revision::from_bytes(k).unwrap().main > 102)
        .collect();
    assert_eq!(extra.len(), steps);
    want.extend(extra);
    assert_eq!(rows(&b), want);
    assert_eq!(job.removed(), before - (want.len() - steps));
    // Every key still reads at the compaction revision and after.
    for k in 1..10 {
        let rr = store
            .range(
                format!("k{k}").as_bytes(),
                b"",
                RangeOptions {
                    rev: 80,
                    ..RangeOptions::default()
                },
            )
            .unwrap();
        assert_eq!(rr.kvs.len(), 1, "k{k}");
    }
    // A second step of a finished job does nothing.
    assert!(store.compact_step(&mut job, 7).unwrap());
}

#[test]
fn a_crash_between_steps_is_resumed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let b = Arc::new(Backend::open(&path, BackendConfig::default()).unwrap());
        let store = Store::open(Arc::clone(&b)).unwrap();
        fill(&b, &store);
        let mut wtx = b.write_tx().unwrap();
        let mut job = store.compact_logical(&mut wtx, 80).unwrap();
        b.commit(wtx).unwrap();
        store.publish();
        assert!(!store.compact_step(&mut job, 10).unwrap());
        assert!(!store.compact_step(&mut job, 10).unwrap());
        b.force_commit().unwrap();
        // Dropped here without finishing: as a crash after the second step's commit.
    }
    let b = Arc::new(Backend::open(&path, BackendConfig::default()).unwrap());
    assert!(meta_has(&b, FINISHED_COMPACT_KEY).is_none());
    let store = Store::open(Arc::clone(&b)).unwrap();
    assert_eq!(store.compact_revision(), 80);
    assert_eq!(store.current_revision(), 102);
    assert!(meta_has(&b, FINISHED_COMPACT_KEY).is_some());
    assert_eq!(rows(&b), sync_compacted_rows(80));
}

#[test]
fn a_later_compaction_subsumes_an_unfinished_one() {
    let (_d, b, store) = new_store();
    fill(&b, &store);
    let mut wtx = b.write_tx().unwrap();
    let mut first = store.compact_logical(&mut wtx, 50).unwrap();
    b.commit(wtx).unwrap();
    assert!(!store.compact_step(&mut first, 5).unwrap());
    let mut wtx = b.write_tx().unwrap();
    let mut second = store.compact_logical(&mut wtx, 90).unwrap();
    b.commit(wtx).unwrap();
    // The earlier job may finish after the later one started, or never.
    store.compact_finish(&mut first, 5).unwrap();
    store.compact_finish(&mut second, 1000).unwrap();
    assert_eq!(rows(&b), sync_compacted_rows(90));
    let len = b
        .read_tx()
        .unwrap()
        .open_table(KEY_TABLE)
        .unwrap()
        .len()
        .unwrap();
    assert_eq!(len as usize, rows(&b).len());
}
