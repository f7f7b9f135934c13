use oxcd_storage::schema::KEY_TABLE;
use redb::ReadableTable;

use super::*;
use crate::test_util::{new_store, write};

fn fill(b: &oxcd_storage::Backend, store: &Store) {
    for round in 0..5 {
        for k in 0..4 {
            let v = format!("v{round}");
            write(b, store, |w| {
                w.put(format!("k{k}").as_bytes(), v.as_bytes(), 0).unwrap()
            });
        }
    }
    write(b, store, |w| w.delete_range(b"k0", b"").unwrap());
}

/// crc32c over "key" and every row up to `rev`, computed independently.
fn plain_hash(b: &oxcd_storage::Backend, rev: i64) -> u32 {
    let rtx = b.read_tx().unwrap();
    let t = rtx.open_table(KEY_TABLE).unwrap();
    let mut crc = crc32c::crc32c(b"key");
    for row in t.iter().unwrap() {
        let (k, v) = row.unwrap();
        if Revision::from_bytes(k.value()).unwrap().main <= rev {
            crc = crc32c::crc32c_append(crc, k.value());
            crc = crc32c::crc32c_append(crc, v.value());
        }
    }
    crc
}

#[test]
fn hash_covers_the_revisions_up_to_the_hash_revision() {
    let (_d, b, store) = new_store();
    fill(&b, &store);
    let (h, current) = store.hash_by_rev(0).unwrap();
    assert_eq!(current, 22);
    assert_eq!(h.revision, 22);
    assert_eq!(h.compact_revision, -1);
    assert_eq!(h.hash, plain_hash(&b, 22));
    let (h10, _) = store.hash_by_rev(10).unwrap();
    assert_eq!(h10.hash, plain_hash(&b, 10));
    assert_ne!(h10.hash, h.hash);
    // Later writes do not change the hash at an earlier revision.
    write(&b, &store, |w| w.put(b"new", b"x", 0).unwrap());
    assert_eq!(store.hash_by_rev(22).unwrap().0, h);
    assert!(matches!(store.hash_by_rev(24), Err(Error::FutureRev)));
}

#[test]
fn hash_is_the_same_before_and_after_the_physical_compaction() {
    let (_d1, b1, s1) = new_store();
    let (_d2, b2, s2) = new_store();
    let (_d3, b3, s3) = new_store();
    for (b, s) in [(&b1, &s1), (&b2, &s2), (&b3, &s3)] {
        fill(b, s);
    }
    // s1: synchronous compaction; s2: logical only; s3: half the steps.
    let mut w = b1.write_tx().unwrap();
    s1.compact(&mut w, 15).unwrap();
    b1.commit(w).unwrap();
    let mut w = b2.write_tx().unwrap();
    let _job = s2.compact_logical(&mut w, 15).unwrap();
    b2.commit(w).unwrap();
    let mut w = b3.write_tx().unwrap();
    let mut job = s3.compact_logical(&mut w, 15).unwrap();
    b3.commit(w).unwrap();
    s3.compact_step(&mut job, 4).unwrap();
    for rev in [15, 18, 22] {
        let h1 = s1.hash_by_rev(rev).unwrap().0;
        assert_eq!(h1, s2.hash_by_rev(rev).unwrap().0, "rev {rev}");
        assert_eq!(h1, s3.hash_by_rev(rev).unwrap().0, "rev {rev}");
        assert_eq!(h1.compact_revision, 15);
    }
    assert!(matches!(s1.hash_by_rev(14), Err(Error::Compacted)));
    assert!(matches!(s2.hash_by_rev(14), Err(Error::Compacted)));
}
