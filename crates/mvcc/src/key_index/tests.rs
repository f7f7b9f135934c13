//! Unit tests of the key index, ported from etcd's key_index_test.go.

use super::*;

fn r(main: i64) -> Revision {
    Revision::new(main, 0)
}

fn gen(created: Revision, ver: i64, revs: &[Revision]) -> Generation {
    Generation {
        ver,
        created,
        revs: revs.into(),
    }
}

fn ki(modified: Revision, generations: Vec<Generation>) -> KeyIndex {
    KeyIndex {
        key: b"foo".to_vec(),
        modified,
        generations: generations.into(),
    }
}

fn set(revs: &[Revision]) -> HashSet<Revision> {
    revs.iter().copied().collect()
}

/// ```text
/// {empty}
/// {14.0[1], 15.1[2], 16.0(t)[3]}
/// {8.0[1], 10.0[2], 12.0(t)[3]}
/// {2.0[1], 4.0[2], 6.0(t)[3]}
/// ```
fn new_test_key_index() -> KeyIndex {
    let mut ki = KeyIndex::new(b"foo".to_vec());
    ki.put(2, 0);
    ki.put(4, 0);
    ki.tombstone(6, 0).unwrap();
    ki.put(8, 0);
    ki.put(10, 0);
    ki.tombstone(12, 0).unwrap();
    ki.put(14, 0);
    ki.put(15, 1);
    ki.tombstone(16, 0).unwrap();
    ki
}

#[test]
fn restore_tombstone() {
    let mut ki = KeyIndex::restored_tombstone(b"foo".to_vec(), 16, 0);
    for at in 16..=20 {
        assert_eq!(ki.get(at), None);
    }
    // A compaction keeps that tombstone.
    let mut avail = HashSet::new();
    ki.do_compact(16, &mut avail);
    assert_eq!(avail, set(&[r(16)]));

    ki.put(17, 0);
    ki.put(18, 0);
    assert_eq!(ki.since(16), vec![r(16), r(17), r(18)]);

    // A later compaction removes the restored tombstone.
    ki.compact(17, &mut HashSet::new());
    assert_eq!(ki.generations.len(), 1);
    assert_eq!(ki.generations[0].revs.to_vec(), vec![r(17), r(18)]);
}

#[test]
fn get() {
    let mut ki = new_test_key_index();
    ki.compact(4, &mut HashSet::new());
    let c14 = r(14);
    let c8 = r(8);
    let c2 = r(2);
    type Want = Option<(Revision, Revision, i64)>;
    let tests: &[(i64, Want)] = &[
        (17, None),
        (16, None),
        // generation 3
        (15, Some((Revision::new(15, 1), c14, 2))),
        (14, Some((r(14), c14, 1))),
        (13, None),
        (12, None),
        // generation 2
        (11, Some((r(10), c8, 2))),
        (10, Some((r(10), c8, 2))),
        (9, Some((r(8), c8, 1))),
        (8, Some((r(8), c8, 1))),
        (7, None),
        (6, None),
        // generation 1
        (5, Some((r(4), c2, 2))),
        (4, Some((r(4), c2, 2))),
        (3, None),
        (2, None),
        (1, None),
        (0, None),
    ];
    for (at, want) in tests {
        assert_eq!(ki.get(*at), *want, "get({at})");
    }
}

#[test]
fn since() {
    let mut ki = new_test_key_index();
    ki.compact(4, &mut HashSet::new());
    let all = [
        r(4),
        r(6),
        r(8),
        r(10),
        r(12),
        r(14),
        Revision::new(15, 1),
        r(16),
    ];
    let tests: &[(i64, &[Revision])] = &[
        (17, &[]),
        (16, &all[7..]),
        (15, &all[6..]),
        (14, &all[5..]),
        (13, &all[5..]),
        (12, &all[4..]),
        (11, &all[4..]),
        (10, &all[3..]),
        (9, &all[3..]),
        (8, &all[2..]),
        (7, &all[2..]),
        (6, &all[1..]),
        (5, &all[1..]),
        (4, &all),
        (3, &all),
        (2, &all),
        (1, &all),
        (0, &all),
    ];
    for (rev, want) in tests {
        assert_eq!(ki.since(*rev), want.to_vec(), "since({rev})");
    }
}

#[test]
fn since_keeps_the_last_sub_revision_of_a_main_revision() {
    let mut ki = KeyIndex::new(b"foo".to_vec());
    ki.put(3, 0);
    ki.tombstone(4, 0).unwrap();
    ki.put(4, 1);
    assert_eq!(ki.since(3), vec![r(3), Revision::new(4, 1)]);
}

#[test]
fn put() {
    let mut k = KeyIndex::new(b"foo".to_vec());
    k.put(5, 0);
    assert_eq!(k, ki(r(5), vec![gen(r(5), 1, &[r(5)])]));
    k.put(7, 0);
    assert_eq!(k, ki(r(7), vec![gen(r(5), 2, &[r(5), r(7)])]));
}

#[test]
#[should_panic(expected = "smaller revision")]
fn put_with_a_smaller_revision_panics() {
    let mut k = KeyIndex::new(b"foo".to_vec());
    k.put(5, 0);
    k.put(5, 0);
}

#[test]
fn restore() {
    let k = KeyIndex::restored(b"foo".to_vec(), r(5), r(7), 2);
    assert_eq!(k, ki(r(7), vec![gen(r(5), 2, &[r(7)])]));
}

#[test]
fn tombstone() {
    let mut k = KeyIndex::new(b"foo".to_vec());
    k.put(5, 0);
    k.tombstone(7, 0).unwrap();
    assert_eq!(
        k,
        ki(
            r(7),
            vec![gen(r(5), 2, &[r(5), r(7)]), Generation::default()]
        )
    );

    k.put(8, 0);
    k.put(9, 0);
    k.tombstone(15, 0).unwrap();
    assert_eq!(
        k,
        ki(
            r(15),
            vec![
                gen(r(5), 2, &[r(5), r(7)]),
                gen(r(8), 3, &[r(8), r(9), r(15)]),
                Generation::default(),
            ]
        )
    );

    let before = k.clone();
    assert!(
        matches!(k.tombstone(16, 0), Err(Error::RevisionNotFound)),
        "a deleted key cannot be deleted again"
    );
    assert_eq!(k, before);
    assert!(KeyIndex::new(b"x".to_vec()).tombstone(1, 0).is_err());
}

/// The expected index and available set after compacting the test key index at each
/// revision in turn (etcd's TestKeyIndexCompactAndKeep).
fn compact_cases() -> Vec<(i64, KeyIndex, HashSet<Revision>)> {
    let g1 = |revs: &[Revision]| gen(r(2), 3, revs);
    let g2 = |revs: &[Revision]| gen(r(8), 3, revs);
    let g3 = |revs: &[Revision]| gen(r(14), 3, revs);
    let s1 = Revision::new(15, 1);
    let full2 = g2(&[r(8), r(10), r(12)]);
    let full3 = g3(&[r(14), s1, r(16)]);
    let e = Generation::default;
    let m = r(16);
    vec![
        (
            1,
            ki(
                m,
                vec![g1(&[r(2), r(4), r(6)]), full2.clone(), full3.clone(), e()],
            ),
            set(&[]),
        ),
        (
            2,
            ki(
                m,
                vec![g1(&[r(2), r(4), r(6)]), full2.clone(), full3.clone(), e()],
            ),
            set(&[r(2)]),
        ),
        (
            3,
            ki(
                m,
                vec![g1(&[r(2), r(4), r(6)]), full2.clone(), full3.clone(), e()],
            ),
            set(&[r(2)]),
        ),
        (
            4,
            ki(
                m,
                vec![g1(&[r(4), r(6)]), full2.clone(), full3.clone(), e()],
            ),
            set(&[r(4)]),
        ),
        (
            5,
            ki(
                m,
                vec![g1(&[r(4), r(6)]), full2.clone(), full3.clone(), e()],
            ),
            set(&[r(4)]),
        ),
        (
            6,
            ki(m, vec![g1(&[r(6)]), full2.clone(), full3.clone(), e()]),
            set(&[r(6)]),
        ),
        (7, ki(m, vec![full2.clone(), full3.clone(), e()]), set(&[])),
        (
            8,
            ki(m, vec![full2.clone(), full3.clone(), e()]),
            set(&[r(8)]),
        ),
        (
            9,
            ki(m, vec![full2.clone(), full3.clone(), e()]),
            set(&[r(8)]),
        ),
        (
            10,
            ki(m, vec![g2(&[r(10), r(12)]), full3.clone(), e()]),
            set(&[r(10)]),
        ),
        (
            11,
            ki(m, vec![g2(&[r(10), r(12)]), full3.clone(), e()]),
            set(&[r(10)]),
        ),
        (
            12,
            ki(m, vec![g2(&[r(12)]), full3.clone(), e()]),
            set(&[r(12)]),
        ),
        (13, ki(m, vec![full3.clone(), e()]), set(&[])),
        (14, ki(m, vec![full3.clone(), e()]), set(&[r(14)])),
        (15, ki(m, vec![g3(&[s1, r(16)]), e()]), set(&[s1])),
        (16, ki(m, vec![g3(&[r(16)]), e()]), set(&[r(16)])),
        (17, ki(m, vec![e()]), set(&[])),
    ]
}

fn is_tombstone_rev(ki: &KeyIndex, rev: i64) -> bool {
    let n = ki.generations.len();
    ki.generations[..n - 1]
        .iter()
        .any(|g| g.revs.last().is_some_and(|t| t.main == rev))
}

/// `keep` never changes the index, and finds what `compact` keeps except a tombstone
/// at the compaction revision.
fn check_keep(k: &KeyIndex, at: i64, want: &HashSet<Revision>) {
    let before = k.clone();
    let mut kept = HashSet::new();
    k.keep(at, &mut kept);
    assert_eq!(*k, before, "keep({at}) changed the index");
    if is_tombstone_rev(k, at) {
        assert!(kept.is_empty(), "keep({at}) kept a tombstone: {kept:?}");
    } else {
        assert_eq!(kept, *want, "keep({at})");
    }
}

#[test]
fn compact_and_keep_continuously() {
    let mut k = new_test_key_index();
    for (at, want_ki, want_avail) in compact_cases() {
        check_keep(&k, at, &want_avail);
        let mut avail = HashSet::new();
        k.compact(at, &mut avail);
        assert_eq!(k, want_ki, "compact({at})");
        assert_eq!(avail, want_avail, "compact({at}) available");
    }
}

#[test]
fn compact_and_keep_jumping() {
    let mut k = new_test_key_index();
    for (at, want_ki, want_avail) in compact_cases() {
        if is_tombstone_rev(&k, at) {
            continue;
        }
        check_keep(&k, at, &want_avail);
        let mut avail = HashSet::new();
        k.compact(at, &mut avail);
        assert_eq!(k, want_ki, "compact({at})");
        assert_eq!(avail, want_avail, "compact({at}) available");
    }
}

#[test]
fn compact_and_keep_once() {
    for (at, want_ki, want_avail) in compact_cases() {
        let mut k = new_test_key_index();
        check_keep(&k, at, &want_avail);
        let mut avail = HashSet::new();
        k.compact(at, &mut avail);
        assert_eq!(k, want_ki, "compact({at})");
        assert_eq!(avail, want_avail, "compact({at}) available");
    }
}

#[test]
fn compact_and_keep_on_a_revision_that_recreates_the_key() {
    struct Case {
        name: &'static str,
        build: fn() -> KeyIndex,
        at: i64,
        want: KeyIndex,
        want_compact: HashSet<Revision>,
        want_keep: HashSet<Revision>,
    }
    let cases = [
        Case {
            name: "deleted and re-created in the compacted revision",
            build: || {
                let mut k = KeyIndex::new(b"foo".to_vec());
                k.put(3, 89);
                k.tombstone(4, 0).unwrap();
                k.put(4, 145);
                k
            },
            at: 4,
            want: ki(
                Revision::new(4, 145),
                vec![gen(Revision::new(4, 145), 1, &[Revision::new(4, 145)])],
            ),
            want_compact: set(&[Revision::new(4, 145)]),
            want_keep: set(&[Revision::new(4, 145)]),
        },
        Case {
            name: "deleted, re-created and deleted again in the compacted revision",
            build: || {
                let mut k = KeyIndex::new(b"foo".to_vec());
                k.put(1, 0);
                k.tombstone(2, 0).unwrap();
                k.put(2, 1);
                k.tombstone(2, 2).unwrap();
                k
            },
            at: 2,
            want: ki(
                Revision::new(2, 2),
                vec![
                    gen(Revision::new(2, 1), 2, &[Revision::new(2, 2)]),
                    Generation::default(),
                ],
            ),
            want_compact: set(&[Revision::new(2, 2)]),
            want_keep: set(&[]),
        },
        Case {
            name: "tombstone at the compacted revision is kept",
            build: || {
                let mut k = KeyIndex::new(b"foo".to_vec());
                k.put(2, 0);
                k.put(3, 0);
                k.tombstone(4, 0).unwrap();
                k
            },
            at: 4,
            want: ki(r(4), vec![gen(r(2), 3, &[r(4)]), Generation::default()]),
            want_compact: set(&[r(4)]),
            want_keep: set(&[]),
        },
        Case {
            name: "re-created in a later revision keeps the tombstone",
            build: || {
                let mut k = KeyIndex::new(b"foo".to_vec());
                k.put(1, 0);
                k.tombstone(2, 0).unwrap();
                k.put(3, 0);
                k
            },
            at: 2,
            want: ki(r(3), vec![gen(r(1), 2, &[r(2)]), gen(r(3), 1, &[r(3)])]),
            want_compact: set(&[r(2)]),
            want_keep: set(&[]),
        },
    ];
    for c in cases {
        let k = (c.build)();
        let mut kept = HashSet::new();
        k.keep(c.at, &mut kept);
        assert_eq!(k, (c.build)(), "{}: keep changed the index", c.name);
        assert_eq!(kept, c.want_keep, "{}: keep", c.name);

        let mut k = (c.build)();
        let mut avail = HashSet::new();
        k.compact(c.at, &mut avail);
        assert_eq!(avail, c.want_compact, "{}: compact available", c.name);
        assert_eq!(k, c.want, "{}: compacted index", c.name);
    }
}

#[test]
fn get_on_a_key_recreated_within_one_revision() {
    let mut k = KeyIndex::new(b"foo".to_vec());
    k.put(3, 0);
    k.tombstone(4, 0).unwrap();
    k.put(4, 1);
    assert_eq!(
        k.get(4),
        Some((Revision::new(4, 1), Revision::new(4, 1), 1))
    );
    assert_eq!(k.get(3), Some((r(3), r(3), 1)));
    k.tombstone(4, 2).unwrap();
    assert_eq!(k.get(4), None);
    assert_eq!(k.get(5), None);
}

#[test]
fn compact_on_a_further_revision() {
    let mut k = KeyIndex::new(b"foo".to_vec());
    k.put(1, 0);
    k.put(2, 0);
    let mut avail = HashSet::new();
    k.compact(3, &mut avail);
    assert_eq!(k, ki(r(2), vec![gen(r(1), 2, &[r(2)])]));
    assert_eq!(avail, set(&[r(2)]));
}

#[test]
fn is_empty() {
    assert!(KeyIndex::new(b"foo".to_vec()).is_empty());
    assert!(ki(r(0), vec![Generation::default()]).is_empty());
    assert!(!ki(r(2), vec![gen(r(1), 2, &[r(2)])]).is_empty());
}

#[test]
fn find_generation() {
    let k = new_test_key_index();
    let g0 = Some(&k.generations[0]);
    let g1 = Some(&k.generations[1]);
    let tests = [
        (0, None),
        (1, None),
        (2, g0),
        (3, g0),
        (4, g0),
        (5, g0),
        (6, None),
        (7, None),
        (8, g1),
        (9, g1),
        (10, g1),
        (11, g1),
        (12, None),
        (13, None),
    ];
    for (rev, want) in tests {
        assert_eq!(k.find_generation(rev), want, "find_generation({rev})");
    }
}

#[test]
fn find_revision_index() {
    let g = gen(r(2), 3, &[r(2), r(4), r(6)]);
    assert_eq!(g.find_revision_index(7), Some(2));
    assert_eq!(g.find_revision_index(6), Some(2));
    assert_eq!(g.find_revision_index(5), Some(1));
    assert_eq!(g.find_revision_index(4), Some(1));
    assert_eq!(g.find_revision_index(3), Some(0));
    assert_eq!(g.find_revision_index(2), Some(0));
    assert_eq!(g.find_revision_index(1), None);
    assert_eq!(Generation::default().find_revision_index(1), None);
}
