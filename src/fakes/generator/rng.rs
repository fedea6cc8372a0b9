//! Deterministic randomness: a small seeded generator and stable hashes, so a seed always gives the same catalogue.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64: stable across versions of any crate)
// ---------------------------------------------------------------------------------------------------------

pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of `(seed, a, b)`: the simulator draws its availability changes from it.
pub fn hash3(seed: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(a ^ mix(b)))
}

impl Rng {
    pub(super) fn new(seed: u64, stream: u64, index: u64) -> Self {
        Rng(hash3(seed, stream, index))
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
