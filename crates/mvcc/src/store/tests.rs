//! Unit tests of the store: revisions, isolation of readers, compaction, restore.

use std::sync::Arc;

use oxcd_api::mvccpb::event::EventType;
use oxcd_storage::schema::{KEY_TABLE, META_TABLE};
use oxcd_storage::redb::ReadableTableMetadata;

use super::*;
use crate::test_util::{new_store, write};

fn get(store: &Store, key: &str, rev: i64) -> Result<Option<KeyValue>> {
    let opts = RangeOptions {
        rev,
        ..RangeOptions::default()
    };
    Ok(store
        .range(key.as_bytes(), b"", opts)?
        .kvs
        .into_iter()
        .next())
}

fn kv_triple(kv: &KeyValue) -> (i64, i64, i64) {
    (kv.create_revision, kv.mod_revision, kv.version)
}

fn key_table_len(backend: &Backend) -> u64 {
    let rtx = backend.read_tx().unwrap();
    rtx.open_table(KEY_TABLE).unwrap().len().unwrap()
}

#[test]
fn empty_store_is_at_revision_1() {
    let (_d, _b, store) = new_store();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.published_revision(), 1);
    assert_eq!(store.compact_revision(), -1);
    let rr = store.range(b"a", b"\0", RangeOptions::default()).unwrap();
    assert_eq!((rr.kvs.len(), rr.rev, rr.count), (0, 1, 0));
}

#[test]
fn revisions_versions_and_generations_follow_etcd() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap());
    write(&b, &store, |w| w.put(b"a", b"2", 7).unwrap());
    let (deleted, rev) = write(&b, &store, |w| w.delete_range(b"a", b"").unwrap());
    assert_eq!((deleted, rev), (1, 4));
    write(&b, &store, |w| w.put(b"a", b"3", 0).unwrap());
    assert_eq!(store.current_revision(), 5);

    let at = |rev| get(&store, "a", rev).unwrap();
    assert_eq!(at(1), None);
    assert_eq!(kv_triple(&at(2).unwrap()), (2, 2, 1));
    let v3 = at(3).unwrap();
    assert_eq!(kv_triple(&v3), (2, 3, 2));
    assert_eq!((v3.value.as_slice(), v3.lease), (&b"2"[..], 7));
    assert_eq!(at(4), None);
    let v5 = at(5).unwrap();
    assert_eq!(kv_triple(&v5), (5, 5, 1), "a new generation");
    assert_eq!(at(0), Some(v5));
}

#[test]
fn range_rules() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| {
        for k in ["a", "b", "c", "d"] {
            w.put(k.as_bytes(), b"v", 0).unwrap();
        }
    });
    let opts = |limit, rev, count_only| RangeOptions {
        limit,
        rev,
        count_only,
    };
    let rr = store.range(b"a", b"\0", opts(2, 0, false)).unwrap();
    assert_eq!(rr.kvs.len(), 2);
    assert_eq!((rr.count, rr.rev), (4, 2), "count ignores the limit");
    let rr = store.range(b"b", b"d", opts(0, 0, true)).unwrap();
    assert_eq!((rr.kvs.len(), rr.count), (0, 2));
    // Reading at revision 1 (before anything) is fine, rev reported is the current one.
    let rr = store.range(b"a", b"\0", opts(0, 1, false)).unwrap();
    assert_eq!((rr.kvs.len(), rr.count, rr.rev), (0, 0, 2));
    assert!(matches!(
        store.range(b"a", b"", opts(0, 3, false)),
        Err(Error::FutureRev)
    ));
    // Reversed and empty ranges never panic.
    assert_eq!(store.range(b"d", b"a", opts(0, 0, false)).unwrap().count, 0);
    assert_eq!(
        store.range(b"\0", b"\0", opts(0, 0, false)).unwrap().count,
        4
    );
}

#[test]
fn a_write_txn_sees_its_own_writes_and_the_previous_ones_in_the_batch() {
    let (_d, b, store) = new_store();
    let mut wtx = b.write_tx().unwrap();
    {
        let mut w = store.write(&mut wtx).unwrap();
        assert_eq!(w.range(b"a", b"", RangeOptions::default()).unwrap().rev, 1);
        w.put(b"a", b"1", 0).unwrap();
        let rr = w.range(b"a", b"", RangeOptions::default()).unwrap();
        assert_eq!((rr.rev, rr.kvs.len()), (2, 1));
        w.put(b"b", b"1", 0).unwrap();
        let events = w.end();
        assert_eq!(events.len(), 2);
        let subs: Vec<_> = store.index.read().tree.range(b"a", b"\0", 2);
        assert_eq!(
            subs.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
            vec![Revision::new(2, 0), Revision::new(2, 1)]
        );
    }
    {
        let mut w = store.write(&mut wtx).unwrap();
        let rr = w.range(b"a", b"\0", RangeOptions::default()).unwrap();
        assert_eq!(
            (rr.rev, rr.count),
            (2, 2),
            "sees the first txn of the batch"
        );
        let kv = &w.range(b"a", b"", RangeOptions::default()).unwrap().kvs[0];
        assert_eq!(kv_triple(kv), (2, 2, 1));
        w.put(b"a", b"2", 0).unwrap();
        let kv = &w.range(b"a", b"", RangeOptions::default()).unwrap().kvs[0];
        assert_eq!(kv_triple(kv), (2, 3, 2));
        w.end();
    }
    assert_eq!(store.current_revision(), 3);
    b.commit(wtx).unwrap();
    store.publish();
    assert_eq!(store.published_revision(), 3);
}

#[test]
fn readers_see_only_the_published_revision() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap());

    let mut wtx = b.write_tx().unwrap();
    let mut w = store.write(&mut wtx).unwrap();
    w.put(b"a", b"2", 0).unwrap();
    w.put(b"b", b"1", 0).unwrap();
    let events = w.end();
    assert_eq!(events.len(), 2);
    assert_eq!(store.current_revision(), 3);

    // Not committed, not published: invisible, even though the index holds it.
    let before = store.read().unwrap();
    let check_old = |v: &dyn ReadView| {
        assert_eq!(v.rev(), 2);
        let rr = v.range(b"a", b"\0", RangeOptions::default()).unwrap();
        assert_eq!(rr.rev, 2);
        assert_eq!(rr.count, 1);
        assert_eq!(rr.kvs[0].value, b"1");
        assert!(matches!(
            v.range(
                b"a",
                b"",
                RangeOptions {
                    rev: 3,
                    ..Default::default()
                }
            ),
            Err(Error::FutureRev)
        ));
    };
    check_old(&before);
    check_old(&store);

    // Committed but not yet published: still invisible.
    b.commit(wtx).unwrap();
    check_old(&store);

    store.publish();
    let rr = store.range(b"a", b"\0", RangeOptions::default()).unwrap();
    assert_eq!((rr.rev, rr.count), (3, 2));
    assert_eq!(rr.kvs[0].value, b"2");
    // A view opened earlier keeps its snapshot.
    check_old(&before);
}

#[test]
fn a_failed_write_in_a_txn_still_moves_the_revision_on() {
    let (_d, b, store) = new_store();
    let mut wtx = b.write_tx().unwrap();
    {
        let mut w = store.write(&mut wtx).unwrap();
        w.put(b"a", b"1", 0).unwrap();
        // Dropped without end(), e.g. by `?` on an error.
    }
    assert_eq!(store.current_revision(), 2);
    {
        let mut w = store.write(&mut wtx).unwrap();
        assert_eq!(w.put(b"a", b"2", 0).unwrap(), 3);
        w.end();
    }
    b.commit(wtx).unwrap();
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let (_d, b, store) = new_store();
    let (n, rev) = write(&b, &store, |w| w.delete_range(b"a", b"\0").unwrap());
    assert_eq!((n, rev), (0, 1));
    assert_eq!(store.current_revision(), 1);
    write(&b, &store, |w| {
        w.put(b"a", b"1", 0).unwrap();
        w.put(b"b", b"1", 0).unwrap();
        assert_eq!(
            w.delete_range(b"x", b"").unwrap(),
            (0, 2),
            "the txn changed"
        );
    });
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn end_returns_watch_events() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap());
    let mut wtx = b.write_tx().unwrap();
    let events = {
        let mut w = store.write(&mut wtx).unwrap();
        w.put(b"b", b"2", 5).unwrap();
        w.delete_range(b"a", b"").unwrap();
        w.end()
    };
    b.commit(wtx).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].r#type, EventType::Put as i32);
    let kv = events[0].kv.as_ref().unwrap();
    assert_eq!((kv_triple(kv), kv.lease), ((3, 3, 1), 5));
    assert_eq!(events[1].r#type, EventType::Delete as i32);
    assert_eq!(
        events[1].kv,
        Some(KeyValue {
            key: b"a".to_vec(),
            mod_revision: 3,
            ..Default::default()
        })
    );
}

#[test]
fn tombstones_are_stored_as_etcd_does() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap());
    write(&b, &store, |w| w.delete_range(b"a", b"").unwrap());
    let rtx = b.read_tx().unwrap();
    let t = rtx.open_table(KEY_TABLE).unwrap();
    let put = t
        .get(Revision::new(2, 0).to_bytes().as_slice())
        .unwrap()
        .unwrap();
    let kv = KeyValue::decode(put.value()).unwrap();
    assert_eq!((kv.key.as_slice(), kv_triple(&kv)), (&b"a"[..], (2, 2, 1)));
    let tomb = t
        .get(Revision::new(3, 0).to_tombstone_bytes().as_slice())
        .unwrap()
        .unwrap();
    assert_eq!(
        KeyValue::decode(tomb.value()).unwrap(),
        KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        }
    );
}

#[test]
fn compaction() {
    let (_d, b, store) = new_store();
    write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap()); // 2
    write(&b, &store, |w| w.put(b"a", b"2", 0).unwrap()); // 3
    write(&b, &store, |w| w.delete_range(b"a", b"").unwrap()); // 4
    write(&b, &store, |w| w.put(b"a", b"3", 0).unwrap()); // 5
    write(&b, &store, |w| w.put(b"b", b"1", 0).unwrap()); // 6
    assert_eq!(key_table_len(&b), 5);

    let mut wtx = b.write_tx().unwrap();
    assert!(matches!(store.compact(&mut wtx, 7), Err(Error::FutureRev)));
    // Revisions 2 and 3 go; the tombstone at 4 is kept (the key's state at 4).
    assert_eq!(store.compact(&mut wtx, 4).unwrap(), 2);
    assert!(matches!(store.compact(&mut wtx, 4), Err(Error::Compacted)));
    assert!(matches!(store.compact(&mut wtx, 3), Err(Error::Compacted)));
    b.commit(wtx).unwrap();
    store.publish();
    assert_eq!(store.compact_revision(), 4);
    assert_eq!(key_table_len(&b), 3);

    assert!(matches!(get(&store, "a", 3), Err(Error::Compacted)));
    assert_eq!(get(&store, "a", 4).unwrap(), None);
    assert_eq!(kv_triple(&get(&store, "a", 5).unwrap().unwrap()), (5, 5, 1));
    let meta = |k: &str| {
        let rtx = b.read_tx().unwrap();
        let t = rtx.open_table(META_TABLE).unwrap();
        let v = t.get(k).unwrap().unwrap().value().to_vec();
        v
    };
    assert_eq!(meta(SCHEDULED_COMPACT_KEY), Revision::new(4, 0).to_bytes());
    assert_eq!(meta(FINISHED_COMPACT_KEY), Revision::new(4, 0).to_bytes());

    // Compacting past the tombstone removes it.
    let mut wtx = b.write_tx().unwrap();
    assert_eq!(store.compact(&mut wtx, 6).unwrap(), 1);
    b.commit(wtx).unwrap();
    assert_eq!(key_table_len(&b), 2);
    assert_eq!(store.index.read().tree.len(), 2);
}

#[test]
fn reopen_restores_index_revisions_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
        let store = Store::open(Arc::clone(&b)).unwrap();
        write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap()); // 2
        write(&b, &store, |w| w.put(b"a", b"2", 0).unwrap()); // 3
        write(&b, &store, |w| w.delete_range(b"a", b"").unwrap()); // 4
        write(&b, &store, |w| w.put(b"z", b"1", 0).unwrap()); // 5
        let mut wtx = b.write_tx().unwrap();
        store.compact(&mut wtx, 5).unwrap();
        b.commit_durable(wtx).unwrap();
    }
    let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
    let store = Store::open(Arc::clone(&b)).unwrap();
    assert_eq!(store.current_revision(), 5);
    assert_eq!(store.published_revision(), 5);
    assert_eq!(store.compact_revision(), 5);
    assert_eq!(get(&store, "a", 0).unwrap(), None);
    assert!(matches!(get(&store, "a", 4), Err(Error::Compacted)));
    write(&b, &store, |w| w.put(b"a", b"3", 0).unwrap());
    assert_eq!(kv_triple(&get(&store, "a", 0).unwrap().unwrap()), (6, 6, 1));
}

#[test]
fn open_keeps_the_compaction_revision_when_it_is_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
        let store = Store::open(Arc::clone(&b)).unwrap();
        write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap()); // 2
        write(&b, &store, |w| w.delete_range(b"a", b"").unwrap()); // 3
        let mut wtx = b.write_tx().unwrap();
        store.compact(&mut wtx, 3).unwrap();
        store.compact(&mut wtx, 3).unwrap_err();
        b.commit_durable(wtx).unwrap();
        let wtx = b.write_tx().unwrap();
        // Drop the tombstone record too (as a later compaction would).
        wtx.tx
            .open_table(KEY_TABLE)
            .unwrap()
            .remove(Revision::new(3, 0).to_tombstone_bytes().as_slice())
            .unwrap();
        b.commit_durable(wtx).unwrap();
    }
    let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
    let store = Store::open(b).unwrap();
    assert_eq!(key_table_len(store.backend()), 0);
    assert_eq!(
        store.current_revision(),
        3,
        "not 1: revisions never go back"
    );
}

#[test]
fn open_redoes_an_unfinished_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
        let store = Store::open(Arc::clone(&b)).unwrap();
        write(&b, &store, |w| w.put(b"a", b"1", 0).unwrap()); // 2
        write(&b, &store, |w| w.put(b"a", b"2", 0).unwrap()); // 3
        write(&b, &store, |w| w.put(b"a", b"3", 0).unwrap()); // 4
        let mut wtx = b.write_tx().unwrap();
        write_meta_rev(&mut wtx, SCHEDULED_COMPACT_KEY, 3).unwrap();
        b.commit_durable(wtx).unwrap();
    }
    let b = Arc::new(Backend::open(&path, oxcd_storage::BackendConfig::default()).unwrap());
    let store = Store::open(Arc::clone(&b)).unwrap();
    assert_eq!(store.compact_revision(), 3);
    assert_eq!(key_table_len(&b), 2);
    assert!(matches!(get(&store, "a", 2), Err(Error::Compacted)));
    assert_eq!(kv_triple(&get(&store, "a", 3).unwrap().unwrap()), (2, 3, 2));
}

#[test]
fn concurrent_readers_during_writes() {
    let (_d, b, store) = new_store();
    let store = Arc::new(store);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut reads = 0;
                while reads < 50 || !stop.load(Ordering::Relaxed) {
                    let v = store.read().unwrap();
                    let rr = v.range(b"k", b"\0", RangeOptions::default()).unwrap();
                    // Each write txn puts k and k2 with the same value: a snapshot
                    // always sees both at the same revision.
                    let published = rr.rev;
                    assert_eq!(rr.count, if published > 1 { 2 } else { 0 });
                    if published > 1 {
                        assert_eq!(rr.kvs[0].value, rr.kvs[1].value);
                        assert_eq!(rr.kvs[0].mod_revision, published);
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..200 {
        let mut wtx = b.write_tx().unwrap();
        {
            let mut w = store.write(&mut wtx).unwrap();
            let v = format!("{i}");
            w.put(b"k", v.as_bytes(), 0).unwrap();
            w.put(b"k2", v.as_bytes(), 0).unwrap();
            w.end();
        }
        b.commit(wtx).unwrap();
        store.publish();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(store.published_revision(), 201);
}
