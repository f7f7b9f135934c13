//! The cache's content and the pure logic that applies lists and watch events to it.
//!
//! Invariants:
//! - `revision` only grows; an event at or below it is ignored (a replay after reconnect).
//! - A put whose value does not decode leaves the last good entry in place and records the
//!   key in `invalid`; a later good put or a delete clears that record.
//! - Every change is returned with the revision it happened at (for a key removed between
//!   two lists, the revision of the second list), in revision order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Event, EventType, KeyValue};

/// Turns a raw value into a typed one (`Err`: the value is rejected, with the reason).
pub type Decoder<T> = Arc<dyn Fn(&[u8]) -> std::result::Result<T, String> + Send + Sync>;

/// One key of the cache.
#[derive(Debug)]
pub struct Entry<T> {
    /// The decoded value.
    pub value: Arc<T>,
    /// The revision of the put that wrote it.
    pub mod_revision: i64,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The key's version at that put.
    pub version: i64,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            mod_revision: self.mod_revision,
            create_revision: self.create_revision,
            version: self.version,
        }
    }
}

/// Where a change was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The first list.
    Initial,
    /// A watch event (exact: one change per put or delete).
    Watch,
    /// A re-list after the watch fell behind a compaction (intermediate changes are lost:
    /// only the difference between the two lists is reported).
    Relist,
}

/// What happened to a key.
#[derive(Debug)]
pub enum ChangeKind<T> {
    /// New value.
    Put(Arc<T>),
    /// Key deleted.
    Delete,
    /// A value was written that does not decode; the cache keeps the last good one.
    Invalid(String),
}

/// A change delivered to callbacks.
#[derive(Debug)]
pub struct Change<T> {
    /// The key (lossy UTF-8).
    pub key: String,
    /// The revision it happened at.
    pub revision: i64,
    /// What happened.
    pub kind: ChangeKind<T>,
    /// How it was learned.
    pub source: Source,
}

pub(crate) struct State<T> {
    pub(crate) entries: HashMap<String, Entry<T>>,
    pub(crate) invalid: HashMap<String, (i64, String)>,
    pub(crate) revision: i64,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            entries: HashMap::new(),
            invalid: HashMap::new(),
            revision: 0,
        }
    }
}

fn key_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.key).into_owned()
}

impl<T> State<T> {
    fn put(&mut self, kv: &KeyValue, decode: &Decoder<T>, source: Source) -> Change<T> {
        let key = key_of(kv);
        let kind = match decode(&kv.value) {
            Ok(v) => {
                let value = Arc::new(v);
                self.invalid.remove(&key);
                self.entries.insert(
                    key.clone(),
                    Entry {
                        value: value.clone(),
                        mod_revision: kv.mod_revision,
                        create_revision: kv.create_revision,
                        version: kv.version,
                    },
                );
                ChangeKind::Put(value)
            }
            Err(e) => {
                self.invalid
                    .insert(key.clone(), (kv.mod_revision, e.clone()));
                ChangeKind::Invalid(e)
            }
        };
        Change {
            key,
            revision: kv.mod_revision,
            kind,
            source,
        }
    }

    /// Replace the content by a list taken at `revision`; returns the differences.
    pub(crate) fn relist(
        &mut self,
        kvs: &[KeyValue],
        revision: i64,
        decode: &Decoder<T>,
        source: Source,
    ) -> Vec<Change<T>> {
        let mut changes = Vec::new();
        let listed: HashMap<String, &KeyValue> = kvs.iter().map(|kv| (key_of(kv), kv)).collect();
        let gone: Vec<String> = self
            .entries
            .keys()
            .chain(self.invalid.keys())
            .filter(|k| !listed.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            let had = self.entries.remove(&key).is_some();
            if self.invalid.remove(&key).is_some() || had {
                changes.push(Change {
                    key,
                    revision,
                    kind: ChangeKind::Delete,
                    source,
                });
            }
        }
        for kv in kvs {
            let key = key_of(kv);
            let known = self.entries.get(&key).map(|e| e.mod_revision);
            let known_bad = self.invalid.get(&key).map(|(r, _)| *r);
            if known == Some(kv.mod_revision) || known_bad == Some(kv.mod_revision) {
                continue;
            }
            changes.push(self.put(kv, decode, source));
        }
        changes.sort_by_key(|c| c.revision);
        self.revision = self.revision.max(revision);
        changes
    }

    /// Apply watch events (in order); events at or below the current revision are skipped.
    pub(crate) fn apply(&mut self, events: &[Event], decode: &Decoder<T>) -> Vec<Change<T>> {
        let mut changes = Vec::new();
        let mut last = self.revision;
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            if kv.mod_revision <= self.revision {
                continue;
            }
            last = last.max(kv.mod_revision);
            if ev.r#type == EventType::Delete as i32 {
                let key = key_of(kv);
                let had = self.entries.remove(&key).is_some();
                if self.invalid.remove(&key).is_some() || had {
                    changes.push(Change {
                        key,
                        revision: kv.mod_revision,
                        kind: ChangeKind::Delete,
                        source: Source::Watch,
                    });
                }
            } else {
                changes.push(self.put(kv, decode, Source::Watch));
            }
        }
        self.revision = last;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
            mod_revision: rev,
            create_revision: rev,
            version: 1,
            lease: 0,
        }
    }

    fn ev(t: EventType, kv: KeyValue) -> Event {
        Event {
            r#type: t as i32,
            kv: Some(kv),
            prev_kv: None,
        }
    }

    fn num() -> Decoder<i64> {
        Arc::new(|b: &[u8]| serde_json::from_slice(b).map_err(|e| e.to_string()))
    }

    #[test]
    fn bad_values_keep_the_last_good_one() {
        let mut s = State::default();
        let d = num();
        s.relist(&[kv("a", "1", 2)], 2, &d, Source::Initial);
        let ch = s.apply(&[ev(EventType::Put, kv("a", "oops", 3))], &d);
        assert!(matches!(ch[0].kind, ChangeKind::Invalid(_)));
        assert_eq!(*s.entries["a"].value, 1);
        assert!(s.invalid.contains_key("a"));
        s.apply(&[ev(EventType::Put, kv("a", "5", 4))], &d);
        assert_eq!(*s.entries["a"].value, 5);
        assert!(s.invalid.is_empty());
        assert_eq!(s.revision, 4);
    }

    #[test]
    fn replayed_events_are_ignored_and_relist_reports_differences() {
        let mut s = State::default();
        let d = num();
        s.relist(&[kv("a", "1", 2), kv("b", "2", 3)], 3, &d, Source::Initial);
        assert!(s
            .apply(&[ev(EventType::Put, kv("a", "9", 3))], &d)
            .is_empty());
        let ch = s.relist(&[kv("b", "2", 3), kv("c", "3", 7)], 9, &d, Source::Relist);
        let got: Vec<_> = ch
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.revision,
                    matches!(c.kind, ChangeKind::Delete),
                )
            })
            .collect();
        assert_eq!(got, [("c", 7, false), ("a", 9, true)]);
        assert_eq!(s.revision, 9);
    }
}
