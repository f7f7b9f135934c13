//! A revision and its backend key encoding, byte for byte as etcd's
//! (`server/storage/mvcc/revision.go`).
//!
//! Invariants:
//! - A [`Revision`] orders by `main`, then `sub`. `main` is the store revision of a write
//!   txn; `sub` is the index of the change within that txn.
//! - The backend key of a revision is 17 bytes: `main` as 8 bytes big-endian, `b'_'`, `sub`
//!   as 8 bytes big-endian. A tombstone (a delete) appends `b't'` (18 bytes). Since the
//!   revisions written are never negative, byte order of keys is revision order, so a scan
//!   of the key table visits revisions in order.

use std::fmt;

/// Length of an encoded revision without the tombstone mark.
pub const REV_BYTES_LEN: usize = 8 + 1 + 8;
/// Length of an encoded revision with the tombstone mark.
pub const MARKED_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;

const SEPARATOR: u8 = b'_';
const TOMBSTONE_MARK: u8 = b't';

/// A point in the store's history: `main` is the txn's revision, `sub` the change within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    /// A revision.
    pub const fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    /// The 17-byte backend key of this revision.
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = SEPARATOR;
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    /// The 18-byte backend key of a tombstone at this revision.
    pub fn to_tombstone_bytes(self) -> [u8; MARKED_REV_BYTES_LEN] {
        let mut b = [0u8; MARKED_REV_BYTES_LEN];
        b[..REV_BYTES_LEN].copy_from_slice(&self.to_bytes());
        b[REV_BYTES_LEN] = TOMBSTONE_MARK;
        b
    }

    /// Decodes a backend key (with or without the tombstone mark). `None` if `b` is not a
    /// revision key.
    pub fn from_bytes(b: &[u8]) -> Option<Revision> {
        if b.len() != REV_BYTES_LEN && !is_tombstone(b) {
            return None;
        }
        if b[8] != SEPARATOR {
            return None;
        }
        let main = i64::from_be_bytes(b[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(b[9..REV_BYTES_LEN].try_into().ok()?);
        Some(Revision { main, sub })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

/// Whether a backend key is a tombstone revision (18 bytes ending in `b't'`).
pub fn is_tombstone(b: &[u8]) -> bool {
    b.len() == MARKED_REV_BYTES_LEN && b[REV_BYTES_LEN] == TOMBSTONE_MARK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_etcd() {
        let r = Revision::new(0x0102, 3);
        let b = r.to_bytes();
        assert_eq!(
            b,
            [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3],
            "8 bytes BE main, '_', 8 bytes BE sub"
        );
        assert_eq!(Revision::from_bytes(&b), Some(r));
        assert!(!is_tombstone(&b));

        let t = r.to_tombstone_bytes();
        assert_eq!(&t[..17], &b);
        assert_eq!(t[17], b't');
        assert!(is_tombstone(&t));
        assert_eq!(Revision::from_bytes(&t), Some(r));
    }

    #[test]
    fn malformed_keys_do_not_decode() {
        assert_eq!(Revision::from_bytes(b""), None);
        assert_eq!(Revision::from_bytes(b"short"), None);
        let mut b = Revision::new(1, 1).to_bytes();
        b[8] = b'x';
        assert_eq!(Revision::from_bytes(&b), None);
        let mut t = Revision::new(1, 1).to_tombstone_bytes().to_vec();
        t[17] = b'x';
        assert_eq!(Revision::from_bytes(&t), None);
        t.push(b't');
        assert_eq!(Revision::from_bytes(&t), None);
    }

    #[test]
    fn byte_order_is_revision_order() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(1, 256),
            Revision::new(2, 0),
            Revision::new(256, 0),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for w in revs.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].to_bytes() < w[1].to_bytes());
            assert!(w[0].to_tombstone_bytes().as_slice() < w[1].to_bytes().as_slice());
        }
    }
}
