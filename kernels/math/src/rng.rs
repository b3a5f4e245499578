//! A small seeded generator (SplitMix64) for initialisation. It is deterministic across
//! platforms and builds, which is all init needs; it is not for statistics-heavy sampling.

/// SplitMix64 (Steele, Lea & Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in `0..n` (`n > 0`), by rejection so that it is unbiased.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// `count` distinct indices from `0..n`, sorted, chosen uniformly with `seed`
/// (Floyd's algorithm; `count <= n`).
pub fn sample_indices(n: u64, count: u64, seed: u64) -> Vec<u64> {
    let count = count.min(n);
    let mut rng = SplitMix64::new(seed);
    let mut chosen = std::collections::BTreeSet::new();
    for j in (n - count)..n {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_indices_are_distinct_sorted_and_in_range() {
        for (n, c) in [(10, 10), (100, 7), (5, 0), (1_000_000, 1000)] {
            let s = sample_indices(n, c, 42);
            assert_eq!(s.len() as u64, c);
            assert!(s.windows(2).all(|w| w[0] < w[1]));
            assert!(s.iter().all(|&i| i < n));
        }
        assert_eq!(sample_indices(100, 7, 1), sample_indices(100, 7, 1));
        assert_ne!(sample_indices(100, 7, 1), sample_indices(100, 7, 2));
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = SplitMix64::new(3);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[r.below(4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }
}
