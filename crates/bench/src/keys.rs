//! Key and value generation for the workloads.
//!
//! Invariants:
//! - Key `i` is `prefix` followed by `i` in zero-padded decimal, so keys of one generator all
//!   have the same length, sort in index order and are distinct for distinct indexes.
//! - The padded width is `key_size - prefix.len()` but never less than the digits of the
//!   largest index, so a too-small `--key-size` lengthens keys rather than colliding them.
//! - Indexes are always `< key_space_size`.

use rand::Rng;

/// Builds the keys of a key space.
#[derive(Debug, Clone)]
pub struct KeyGen {
    prefix: Vec<u8>,
    width: usize,
    space: u64,
    sequential: bool,
}

impl KeyGen {
    /// Keys `prefix + index` of total length `key_size` over `space` indexes.
    pub fn new(prefix: &[u8], key_size: usize, space: u64, sequential: bool) -> Self {
        let space = space.max(1);
        let digits = (space - 1).to_string().len();
        KeyGen {
            prefix: prefix.to_vec(),
            width: key_size.saturating_sub(prefix.len()).max(digits),
            space,
            sequential,
        }
    }

    /// Number of distinct keys.
    pub fn space(&self) -> u64 {
        self.space
    }

    /// The common prefix of every key.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The key with index `idx` (taken modulo the key space).
    pub fn key(&self, idx: u64) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(format!("{:0w$}", idx % self.space, w = self.width).as_bytes());
        k
    }

    /// The key index for op number `op`: `op % space` when sequential, else uniform.
    pub fn index(&self, op: u64, rng: &mut impl Rng) -> u64 {
        if self.sequential {
            op % self.space
        } else {
            rng.gen_range(0..self.space)
        }
    }
}

/// A printable value of `size` bytes.
pub fn value(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_are_fixed_width_and_distinct() {
        let g = KeyGen::new(b"", 8, 1000, true);
        assert_eq!(g.key(7), b"00000007");
        assert_eq!(g.key(1007), b"00000007", "modulo the key space");
        let g = KeyGen::new(b"/w/", 4, 100_000, false);
        assert_eq!(
            g.key(12345),
            b"/w/12345",
            "width grows to fit the key space"
        );
        assert!(g.key(1) < g.key(2));
    }

    #[test]
    fn indexes_stay_in_key_space() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let g = KeyGen::new(b"", 8, 10, false);
        assert!((0..1000).all(|i| g.index(i, &mut rng) < 10));
        let g = KeyGen::new(b"", 8, 10, true);
        assert_eq!(
            (0..12).map(|i| g.index(i, &mut rng)).collect::<Vec<_>>()[10..],
            [0, 1]
        );
        assert_eq!(value(3), b"abc");
    }
}
