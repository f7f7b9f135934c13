use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use crate::schema::{KEY_TABLE, LEASE_TABLE};
use crate::snapshot::encode_meta_revision as rev_key;
use crate::{Backend, BackendConfig, DefragStage, Error};

type Rows = BTreeMap<Vec<u8>, Vec<u8>>;

fn key_rows(b: &Backend) -> Rows {
    let rtx = b.read_tx().unwrap();
    let t = rtx.open_table(KEY_TABLE).unwrap();
    t.iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

fn put(b: &Backend, model: &mut Rows, rev: i64) {
    let v = vec![(rev % 251) as u8; 1000];
    let tx = b.write_tx().unwrap();
    tx.tx
        .open_table(KEY_TABLE)
        .unwrap()
        .insert(rev_key(rev).as_slice(), v.as_slice())
        .unwrap();
    b.commit(tx).unwrap();
    model.insert(rev_key(rev).to_vec(), v);
}

/// Deletes revisions `from..to` as a compaction does (noting each).
fn compact(b: &Backend, model: &mut Rows, from: i64, to: i64) {
    let tx = b.write_tx().unwrap();
    {
        let mut t = tx.tx.open_table(KEY_TABLE).unwrap();
        for rev in from..to {
            t.remove(rev_key(rev).as_slice()).unwrap();
        }
    }
    for rev in from..to {
        tx.note_key_deleted(&rev_key(rev));
        model.remove(rev_key(rev).as_slice());
    }
    b.commit(tx).unwrap();
}

fn filled(path: &Path, n: i64) -> (Backend, Rows) {
    let b = Backend::open(path, BackendConfig::default()).unwrap();
    let mut model = Rows::new();
    for rev in 1..=n {
        put(&b, &mut model, rev);
    }
    compact(&b, &mut model, 1, n * 3 / 4);
    let mut tx = b.write_tx().unwrap();
    tx.tx
        .open_table(LEASE_TABLE)
        .unwrap()
        .insert(b"lease".as_slice(), b"1".as_slice())
        .unwrap();
    tx.set_consistent_index(n as u64, 2).unwrap();
    b.commit(tx).unwrap();
    b.force_commit().unwrap();
    (b, model)
}

#[test]
fn defragment_shrinks_the_file_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (b, model) = filled(&path, 8000);
    let before = b.size();
    // Space accounting: the compaction in `filled` freed pages the file still holds.
    b.force_commit().unwrap();
    b.refresh_size_in_use().unwrap();
    assert!(
        b.size_in_use() < before * 3 / 4,
        "in use {} of {before}",
        b.size_in_use()
    );
    let report = b.defragment().unwrap();
    assert!(b.size_in_use() <= b.size());
    assert_eq!(report.size_before, before);
    assert!(
        report.size_after < before / 2,
        "{} -> {}",
        before,
        report.size_after
    );
    assert_eq!(key_rows(&b), model);
    assert_eq!(b.consistent_index().unwrap(), (8000, 2));
    assert_eq!(b.durable_index(), 8000);
    assert!(!super::defrag_tmp_path(&path).exists());
    // Writes go to the new file, and everything survives a reopen.
    let mut model = model;
    put(&b, &mut model, 9000);
    b.force_commit().unwrap();
    drop(b);
    let b = Backend::open(&path, BackendConfig::default()).unwrap();
    assert_eq!(key_rows(&b), model);
    let rtx = b.read_tx().unwrap();
    assert!(rtx
        .open_table(LEASE_TABLE)
        .unwrap()
        .get(b"lease".as_slice())
        .unwrap()
        .is_some());
}

#[test]
fn writes_and_compactions_keep_flowing_during_defragment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (b, model) = filled(&path, 20_000);
    let b = Arc::new(b);
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let defragging = Arc::new(AtomicBool::new(false));
    let writer = {
        let (b, stop, during, defragging) =
            (b.clone(), stop.clone(), during.clone(), defragging.clone());
        std::thread::spawn(move || {
            let mut model = model;
            let mut rev = 20_001;
            let mut max_latency = Duration::ZERO;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let t = Instant::now();
                put(&b, &mut model, rev);
                if rev % 50 == 0 {
                    // A compaction step removing old revisions, some copied already.
                    let from = 15_000 + (rev - 20_000) / 50 * 10;
                    compact(&b, &mut model, from, from + 10);
                }
                if defragging.load(Ordering::Acquire) {
                    during.fetch_add(1, Ordering::AcqRel);
                    max_latency = max_latency.max(t.elapsed());
                }
                rev += 1;
            }
            (model, max_latency)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    defragging.store(true, Ordering::Release);
    let report = b.defragment().unwrap();
    defragging.store(false, Ordering::Release);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Release);
    let (model, max_latency) = writer.join().unwrap();
    let during = during.load(Ordering::Acquire);
    assert!(
        during > 10,
        "only {during} writes ran during the defragmentation"
    );
    assert!(
        report.exclusive < Duration::from_secs(2),
        "exclusive phase took {:?}",
        report.exclusive
    );
    eprintln!("{report:?}; {during} writes during it, slowest {max_latency:?}");
    assert_eq!(key_rows(&b), model);
    b.force_commit().unwrap();
    drop(b);
    let b = Backend::open(&path, BackendConfig::default()).unwrap();
    assert_eq!(key_rows(&b), model);
}

/// Copies the database directory as a kill -9 would leave it (the page cache included).
fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_crash_at_any_stage_leaves_a_database_with_all_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("db");
    let (b, model) = filled(&path, 3000);
    let stages = [
        DefragStage::Copied,
        DefragStage::NewFileDurable,
        DefragStage::Renamed,
        DefragStage::Swapped,
    ];
    let mut seen = Vec::new();
    b.defragment_observed(|stage| {
        crash_copy(&data, &dir.path().join(format!("{stage:?}")));
        seen.push(stage);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, stages);
    for stage in stages {
        let copy = dir.path().join(format!("{stage:?}"));
        let tmp_left = super::defrag_tmp_path(&copy.join("db")).exists();
        assert_eq!(
            tmp_left,
            matches!(stage, DefragStage::Copied | DefragStage::NewFileDurable),
            "{stage:?}"
        );
        let r = Backend::open(&copy.join("db"), BackendConfig::default()).unwrap();
        assert_eq!(key_rows(&r), model, "{stage:?}");
        assert_eq!(r.consistent_index().unwrap(), (3000, 2), "{stage:?}");
        assert!(!super::defrag_tmp_path(&copy.join("db")).exists());
    }

    // A defragmentation stopped half way leaves the database as it was, and in use.
    let e = b
        .defragment_observed(|stage| match stage {
            DefragStage::NewFileDurable => Err(Error::Defrag("stop".into())),
            _ => Ok(()),
        })
        .unwrap_err();
    assert!(matches!(e, Error::Defrag(_)));
    assert!(!super::defrag_tmp_path(&path).exists());
    let mut model = model;
    put(&b, &mut model, 5000);
    assert_eq!(key_rows(&b), model);
}

#[test]
fn a_snapshot_install_during_defragment_makes_it_fail_harmlessly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (b, model) = filled(&path, 1000);
    let e = b
        .defragment_observed(|stage| {
            if stage == DefragStage::Copied {
                b.reload_consistent_index()?;
            }
            Ok(())
        })
        .unwrap_err();
    assert!(e.to_string().contains("replaced"), "{e}");
    assert_eq!(key_rows(&b), model);
    // A later one succeeds.
    b.defragment().unwrap();
    assert_eq!(key_rows(&b), model);
}
