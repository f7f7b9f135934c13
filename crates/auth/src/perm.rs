//! The range-permission cache (etcd's `server/auth/range_perm_cache.go`): for each user,
//! the union of the key intervals its roles may read and may write, merged into sorted,
//! disjoint intervals so one binary search answers "is all of `[key, range_end)`
//! covered?".
//!
//! Key-range conventions (etcd's):
//! - a permission or request with an empty `range_end` is the single key `key`, i.e. the
//!   interval `[key, key + "\0")`;
//! - a `range_end` of `"\0"` is open-ended: `[key, +inf)`;
//! - otherwise `[key, range_end)`. A request whose `range_end <= key` is checked as the
//!   single key `key`, which is what etcd's interval tree answers for it.
//!
//! Invariant: each [`Intervals`] is sorted by start, and no two of its intervals overlap
//! or touch (touching ones are merged), so coverage of a contiguous range is decided by
//! the one interval starting at or before the range's start.

use std::collections::{BTreeMap, HashMap};

use oxcd_api::authpb::{permission::Type as PermType, Permission, Role, User};

/// The byte string just after `key` in key order.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(key.len() + 1);
    s.extend_from_slice(key);
    s.push(0);
    s
}

/// Whether `range_end` means "to the end of the key space".
pub(crate) fn is_open_ended(range_end: &[u8]) -> bool {
    range_end == [0]
}

/// etcd's `isValidPermissionRange`: a non-empty key and either a single key, a proper
/// range or an open end.
pub(crate) fn is_valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    range_end.is_empty() || key < range_end || is_open_ended(range_end)
}

/// A half-open interval `[begin, end)`; `end == None` is `+inf`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    /// The interval a permission grants (`None` for an empty one, which grants nothing).
    fn of_permission(p: &Permission) -> Option<Interval> {
        let end = if p.range_end.is_empty() {
            Some(successor(&p.key))
        } else if is_open_ended(&p.range_end) {
            None
        } else if p.range_end.as_slice() > p.key.as_slice() {
            Some(p.range_end.clone())
        } else {
            return None;
        };
        Some(Interval {
            begin: p.key.clone(),
            end,
        })
    }
}

/// `a >= b` where `None` is `+inf`.
fn end_ge(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

/// Sorted, merged intervals (see the module invariant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Intervals(Vec<Interval>);

impl Intervals {
    fn build(mut ivs: Vec<Interval>) -> Intervals {
        ivs.sort_by(|a, b| a.begin.cmp(&b.begin));
        let mut out: Vec<Interval> = Vec::with_capacity(ivs.len());
        for iv in ivs {
            if let Some(last) = out.last_mut() {
                // Overlapping or touching: extend the last one.
                let touches = match &last.end {
                    None => true,
                    Some(e) => iv.begin <= *e,
                };
                if touches {
                    if !end_ge(&last.end, &iv.end) {
                        last.end = iv.end;
                    }
                    continue;
                }
            }
            out.push(iv);
        }
        Intervals(out)
    }

    /// Whether every key of the request range `key`..`range_end` is covered.
    pub(crate) fn covers(&self, key: &[u8], range_end: &[u8]) -> bool {
        let end = if is_open_ended(range_end) {
            None
        } else if range_end.is_empty() || range_end <= key {
            Some(successor(key))
        } else {
            Some(range_end.to_vec())
        };
        // The last interval starting at or before `key`.
        let idx = self.0.partition_point(|iv| iv.begin.as_slice() <= key);
        if idx == 0 {
            return false;
        }
        end_ge(&self.0[idx - 1].end, &end)
    }
}

/// One user's merged read and write permissions (etcd's `unifiedRangePermissions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnifiedPerms {
    pub(crate) read: Intervals,
    pub(crate) write: Intervals,
}

impl UnifiedPerms {
    /// etcd's `getMergedPerms`: the union over the user's roles (unknown roles skipped).
    fn merged(user: &User, roles: &BTreeMap<String, Role>) -> UnifiedPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for name in &user.roles {
            let Some(role) = roles.get(name) else {
                continue;
            };
            for p in &role.key_permission {
                let Some(iv) = Interval::of_permission(p) else {
                    continue;
                };
                match PermType::try_from(p.perm_type) {
                    Ok(PermType::Read) => read.push(iv),
                    Ok(PermType::Write) => write.push(iv),
                    Ok(PermType::Readwrite) => {
                        read.push(iv.clone());
                        write.push(iv);
                    }
                    // An unknown type grants nothing, as in etcd.
                    Err(_) => {}
                }
            }
        }
        UnifiedPerms {
            read: Intervals::build(read),
            write: Intervals::build(write),
        }
    }
}

/// The whole cache, rebuilt from the users and roles after every auth change (etcd's
/// `refreshRangePermCache`).
pub(crate) fn build_cache(
    users: &BTreeMap<String, User>,
    roles: &BTreeMap<String, Role>,
) -> HashMap<String, UnifiedPerms> {
    users
        .iter()
        .map(|(name, u)| (name.clone(), UnifiedPerms::merged(u, roles)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &[u8], end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.to_vec(),
            range_end: end.to_vec(),
        }
    }

    fn ivs(perms: &[Permission]) -> Intervals {
        Intervals::build(perms.iter().filter_map(Interval::of_permission).collect())
    }

    #[test]
    fn single_key_permission_covers_only_that_key() {
        let i = ivs(&[perm(PermType::Read, b"foo", b"")]);
        assert!(i.covers(b"foo", b""));
        assert!(!i.covers(b"fo", b""));
        assert!(!i.covers(b"foo\0", b""));
        // [foo, foo\0) is exactly the key.
        assert!(i.covers(b"foo", b"foo\0"));
        assert!(!i.covers(b"foo", b"foo\0\0"));
        assert!(!i.covers(b"foo", b"\0"));
    }

    #[test]
    fn touching_and_overlapping_ranges_merge() {
        let i = ivs(&[
            perm(PermType::Read, b"a", b"c"),
            perm(PermType::Read, b"c", b"e"),
            perm(PermType::Read, b"d", b"f"),
            perm(PermType::Read, b"x", b""),
        ]);
        assert_eq!(i.0.len(), 2);
        assert!(i.covers(b"a", b"f"));
        assert!(!i.covers(b"a", b"f\0"));
        assert!(i.covers(b"b", b"e"));
        assert!(!i.covers(b"a", b"x"));
        assert!(i.covers(b"x", b""));
    }

    #[test]
    fn open_ended_permission_and_request() {
        let i = ivs(&[perm(PermType::Read, b"k", b"\0")]);
        assert!(i.covers(b"k", b"\0"));
        assert!(i.covers(b"z", b"\0"));
        assert!(i.covers(b"zzz", b""));
        assert!(!i.covers(b"j", b"\0"));
        let all = ivs(&[perm(PermType::Read, b"\0", b"\0")]);
        assert!(all.covers(b"\0", b"\0"));
        assert!(all.covers(b"a", b""));
    }

    #[test]
    fn inverted_request_is_checked_as_its_key() {
        let i = ivs(&[perm(PermType::Read, b"m", b"")]);
        assert!(i.covers(b"m", b"a"));
        assert!(i.covers(b"m", b"m"));
        assert!(!i.covers(b"n", b"a"));
    }

    #[test]
    fn permission_ranges_are_validated_as_etcd() {
        assert!(is_valid_permission_range(b"a", b""));
        assert!(is_valid_permission_range(b"a", b"b"));
        assert!(is_valid_permission_range(b"a", b"\0"));
        assert!(is_valid_permission_range(b"\0", b"\0"));
        assert!(!is_valid_permission_range(b"", b"\0"));
        assert!(!is_valid_permission_range(b"b", b"a"));
        assert!(!is_valid_permission_range(b"b", b"b"));
    }
}
