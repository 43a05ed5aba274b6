//! `rng`: the seeded pseudo-random generator behind every fake value.
//!
//! Each record gets its own generator, derived from the configured seed, a
//! per-stream salt and the record's index. A record therefore depends only on
//! `(seed, stream, index)`: not on `records_per_slice`, `parallelism`, the
//! order of the streams in the catalog or which records were generated
//! before it. The generator is SplitMix64 (Steele, Lea & Flood, 2014): one
//! add and three xor-shift-multiplies per 64 bits, plenty for fake data.

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output mix (also used to hash seed, salt and index).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fast, seeded pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded directly with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: mix(seed) }
    }

    /// The generator of record `index` of the stream salted `salt`, for the
    /// configured `seed`.
    #[inline]
    pub fn for_record(seed: u64, salt: u64, index: u64) -> Self {
        let a = mix(seed ^ salt.rotate_left(32));
        Self {
            state: mix(a ^ index.wrapping_mul(GOLDEN)),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform integer in `0..n` (`0` when `n` is 0), by Lemire's
    /// multiply-shift (the bias, below 2^-32 for our ranges, is irrelevant
    /// here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform integer in `lo..=hi` (`lo` when `hi < lo`).
    #[inline]
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.wrapping_add(self.below(span) as i64)
    }

    /// A uniform float in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `percent` / 100 (like mimesis'
    /// `integer_number(1, 100) <= percent`).
    #[inline]
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A uniformly chosen element of a non-empty slice (`None` when empty).
    #[inline]
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::for_record(1, 2, 3);
        let mut b = Rng::for_record(1, 2, 3);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::for_record(1, 2, 4);
        assert_ne!(Rng::for_record(1, 2, 3).next_u64(), c.next_u64());
    }

    #[test]
    fn ranges_are_inclusive_and_bounded() {
        let mut r = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..10_000 {
            let v = r.int_in(-2, 2);
            assert!((-2..=2).contains(&v));
            seen[(v + 2) as usize] = true;
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.int_in(5, 5), 5);
        assert_eq!(r.pick::<u8>(&[]), None);
    }
}
