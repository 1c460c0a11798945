//! A seeded pseudo-random sequence (xorshift64) for the property tests and
//! the fuzz targets' checks: deterministic, so that a failing case replays
//! exactly, and too small to be worth a dependency.

/// The generator; the seed must not be 0 (it would stay 0).
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        debug_assert_ne!(seed, 0, "a xorshift seed of 0 stays 0");
        XorShift(seed)
    }

    /// The next number of the sequence.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The next number, below `n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
