use super::*;
use crate::schema::{META_CLUSTER_ID, META_CONSISTENT_INDEX, META_LOCAL_MEMBER_ID};
use redb::ReadableTableMetadata;

/// A revision key as mvcc writes it.
fn rev_key(main: i64) -> [u8; 17] {
    encode_meta_revision(main)
}

fn filled(dir: &Path) -> Backend {
    let b = Backend::open(&dir.join("db"), BackendConfig::default()).unwrap();
    let mut tx = b.write_tx().unwrap();
    {
        let mut t = tx.tx.open_table(KEY_TABLE).unwrap();
        for rev in 2..=50 {
            t.insert(rev_key(rev).as_slice(), vec![rev as u8; 100].as_slice())
                .unwrap();
        }
        tx.tx
            .open_table(LEASE_TABLE)
            .unwrap()
            .insert(7u64.to_be_bytes().as_slice(), b"lease".as_slice())
            .unwrap();
        tx.tx
            .open_table(MEMBERS_TABLE)
            .unwrap()
            .insert(1u64.to_be_bytes().as_slice(), b"member".as_slice())
            .unwrap();
        let mut meta = tx.tx.open_table(META_TABLE).unwrap();
        meta.insert(META_CLUSTER_ID, 9u64.to_be_bytes().as_slice())
            .unwrap();
        meta.insert(META_LOCAL_MEMBER_ID, 1u64.to_be_bytes().as_slice())
            .unwrap();
        meta.insert(META_FINISHED_COMPACT_REV, rev_key(10).as_slice())
            .unwrap();
    }
    tx.set_consistent_index(42, 3).unwrap();
    b.commit(tx).unwrap();
    b
}

#[test]
fn snapshot_status_matches_what_was_written_and_ends_with_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let b = filled(dir.path());
    let mut buf = Vec::new();
    let st = b.snapshot(&mut buf).unwrap();
    assert_eq!(st.total_size, buf.len() as u64);
    assert_eq!(st.revision, 50);
    // 49 keys, 1 lease, 1 member, meta: ci, term, cluster id, local id, finished.
    assert_eq!(st.total_keys, 49 + 1 + 1 + 5);
    let (body, sha) = buf.split_at(buf.len() - SHA256_LEN);
    let want: [u8; 32] = Sha256::digest(body).into();
    assert_eq!(sha, want);
    assert_eq!(st.sha256, want);

    let file = dir.path().join("snap.db");
    std::fs::write(&file, &buf).unwrap();
    assert_eq!(snapshot_status(&file).unwrap(), st);
}

#[test]
fn snapshot_is_a_point_in_time_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let b = std::sync::Arc::new(filled(dir.path()));
    // A writer that a reader taking the snapshot must neither block nor see.
    struct Slow<'a>(&'a Backend, usize, Vec<u8>);
    impl Write for Slow<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.1 == 0 {
                let tx = self.0.write_tx().unwrap();
                tx.tx
                    .open_table(KEY_TABLE)
                    .unwrap()
                    .insert(rev_key(51).as_slice(), b"later".as_slice())
                    .unwrap();
                self.0.commit(tx).unwrap();
            }
            self.1 += 1;
            self.2.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Slow(&b, 0, Vec::new());
    let st = write_snapshot(&b, &mut w).unwrap();
    assert!(w.1 > 0);
    assert_eq!(
        st.revision, 50,
        "the write during the snapshot is not in it"
    );
    let mut again = Vec::new();
    assert_eq!(b.snapshot(&mut again).unwrap().revision, 51);
}

#[test]
fn truncated_or_corrupt_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = filled(dir.path());
    let mut buf = Vec::new();
    b.snapshot(&mut buf).unwrap();
    let file = dir.path().join("snap.db");

    for cut in [
        0,
        5,
        20,
        buf.len() / 2,
        buf.len() - SHA256_LEN,
        buf.len() - 1,
    ] {
        std::fs::write(&file, &buf[..cut]).unwrap();
        let e = snapshot_status(&file).unwrap_err();
        assert!(matches!(e, Error::Snapshot(_)), "cut at {cut}: {e}");
    }
    for pos in [3, 12, buf.len() / 2, buf.len() - 3] {
        let mut bad = buf.clone();
        bad[pos] ^= 0x40;
        std::fs::write(&file, &bad).unwrap();
        let e = snapshot_status(&file).unwrap_err();
        assert!(matches!(e, Error::Snapshot(_)), "flip at {pos}: {e}");
    }
    std::fs::write(
        &file,
        b"definitely not a snapshot, but long enough to be read...",
    )
    .unwrap();
    let e = snapshot_status(&file).unwrap_err().to_string();
    assert!(e.contains("not an oxcd snapshot"), "{e}");

    // Nothing is restored from a bad file.
    std::fs::write(&file, &buf[..buf.len() - 1]).unwrap();
    let target = dir.path().join("restored").join("db");
    let e = restore_backend(&file, &target, &RestoreOptions::default(), |_| Ok(()));
    assert!(matches!(e, Err(Error::Snapshot(_))));
    assert!(!target.exists());
}

#[test]
fn restore_bumps_and_compacts_and_leaves_membership_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let b = filled(dir.path());
    let file = dir.path().join("snap.db");
    b.snapshot(File::create(&file).unwrap()).unwrap();
    drop(b);

    let target = dir.path().join("new").join("db");
    let info = restore_backend(&file, &target, &RestoreOptions::default(), |tx| {
        tx.set_consistent_index(3, 1)?;
        tx.tx
            .open_table(MEMBERS_TABLE)?
            .insert(5u64.to_be_bytes().as_slice(), b"new".as_slice())?;
        Ok(())
    })
    .unwrap();
    assert_eq!(info.status.revision, 50);
    assert_eq!(info.revision, 1_000_000_050);
    assert_eq!(info.compact_revision, 1_000_000_050);

    let r = Backend::open(&target, BackendConfig::default()).unwrap();
    assert_eq!(r.consistent_index().unwrap(), (3, 1));
    let rtx = r.read_tx().unwrap();
    let keys = rtx.open_table(KEY_TABLE).unwrap();
    assert_eq!(keys.len().unwrap(), 49);
    assert_eq!(
        keys.get(rev_key(20).as_slice()).unwrap().unwrap().value(),
        vec![20u8; 100]
    );
    assert_eq!(rtx.open_table(LEASE_TABLE).unwrap().len().unwrap(), 1);
    let members = rtx.open_table(MEMBERS_TABLE).unwrap();
    assert_eq!(members.len().unwrap(), 1);
    assert!(members
        .get(5u64.to_be_bytes().as_slice())
        .unwrap()
        .is_some());
    let meta = rtx.open_table(META_TABLE).unwrap();
    assert!(meta.get(META_CLUSTER_ID).unwrap().is_none());
    assert!(meta.get(META_LOCAL_MEMBER_ID).unwrap().is_none());
    assert_eq!(
        decode_meta_revision(
            meta.get(META_FINISHED_COMPACT_REV)
                .unwrap()
                .unwrap()
                .value()
        ),
        Some(1_000_000_050)
    );
    assert_eq!(
        decode_meta_revision(
            meta.get(META_SCHEDULED_COMPACT_REV)
                .unwrap()
                .unwrap()
                .value()
        ),
        Some(1_000_000_050)
    );
    assert!(meta.get(META_CONSISTENT_INDEX).unwrap().is_some());

    // The target exists now: a second restore refuses to overwrite it.
    assert!(restore_backend(&file, &target, &RestoreOptions::default(), |_| Ok(())).is_err());
    // etcd's rule: bumping needs mark-compacted.
    let opts = RestoreOptions {
        bump_revision: 5,
        mark_compacted: false,
    };
    let other = dir.path().join("other").join("db");
    assert!(restore_backend(&file, &other, &opts, |_| Ok(())).is_err());
    // Without a bump the compaction revision of the snapshot is kept.
    let opts = RestoreOptions {
        bump_revision: 0,
        mark_compacted: false,
    };
    let info = restore_backend(&file, &other, &opts, |_| Ok(())).unwrap();
    assert_eq!((info.revision, info.compact_revision), (50, 10));
}

#[test]
fn chunk_writer_streams_the_snapshot_in_bounded_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let b = filled(dir.path());
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let st = b
        .snapshot(ChunkWriter::new(1000, |c| {
            chunks.push(c);
            Ok(())
        }))
        .unwrap();
    assert!(chunks.len() > 3);
    assert!(chunks.iter().all(|c| c.len() <= 1000 && !c.is_empty()));
    let all: Vec<u8> = chunks.concat();
    assert_eq!(all.len() as u64, st.total_size);
    let file = dir.path().join("s");
    std::fs::write(&file, &all).unwrap();
    assert_eq!(snapshot_status(&file).unwrap(), st);
    // A receiver that went away stops the snapshot with an error.
    let e = b.snapshot(ChunkWriter::new(100, |_| {
        Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"))
    }));
    assert!(e.is_err());
}
