//! `ifp gen sparse-logreg`: a Criteo-like sparse, labelled data set with a known true model.
//!
//! - `features` columns, `nnz` distinct non-zeros per row; which columns follow a power law
//!   (Zipf with exponent [`ZIPF_EXPONENT`] over the column number, so column 0 is the most
//!   frequent, as hashed click logs' heavy hitters are); values `k/8` for `k` in 1..=16, exact
//!   in text and in float32.
//! - The true model: weights `w_j ~ N(0, 1/nnz)`, intercept [`INTERCEPT`]; the label (0 or 1)
//!   is Bernoulli(σ(x·w + b)).
//!
//! Written as LIBSVM text (1-based indices, sorted; `.svm`/`.libsvm`), or densely as `.npy`
//! or `.csv` with the label last (the same rows, for comparing sparse and dense runs). The
//! same seed gives the same rows on every platform (ChaCha8 streams).

use std::io::Write;

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Zipf};

pub const ZIPF_EXPONENT: f64 = 1.1;
pub const INTERCEPT: f64 = -0.5;

/// What `ifp gen sparse-logreg` makes.
#[derive(Clone, Copy, Debug)]
pub struct SparseSpec {
    pub rows: u64,
    pub features: u64,
    pub nnz: u64,
    pub seed: u64,
}

/// One generated row: its label and its `(column, value)` entries, columns increasing.
pub type SparseRow = (f32, Vec<(u32, f32)>);

impl SparseSpec {
    pub fn check(&self) -> Result<()> {
        if self.features > u32::MAX as u64 {
            bail!("--features {} is beyond 2^32", self.features);
        }
        if self.nnz == 0 || self.nnz > self.features {
            bail!("--nnz must be between 1 and --features ({}), got {}", self.features, self.nnz);
        }
        Ok(())
    }

    /// The true model: `features` weights and the intercept.
    pub fn true_model(&self) -> (Vec<f64>, f64) {
        let mut setup = ChaCha8Rng::seed_from_u64(self.seed);
        let scale = 1.0 / (self.nnz as f64).sqrt();
        let w = (0..self.features).map(|_| scale * Distribution::<f64>::sample(&StandardNormal, &mut setup)).collect();
        (w, INTERCEPT)
    }

    /// Every row, lazily.
    pub fn rows(&self) -> impl Iterator<Item = SparseRow> {
        let (w, b) = self.true_model();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5BA2_5E0F_DA7A);
        let zipf = Zipf::new(self.features as f64, ZIPF_EXPONENT).expect("features >= 1");
        let (features, nnz) = (self.features, self.nnz as usize);
        let mut chosen: Vec<u32> = Vec::with_capacity(nnz);
        (0..self.rows).map(move |_| {
            chosen.clear();
            // Power-law draws until the row has its non-zeros; a row that keeps hitting the
            // heavy hitters (nnz near the number of features) is completed uniformly.
            let mut tries = 0;
            while chosen.len() < nnz {
                tries += 1;
                let c = if tries <= 64 * nnz { zipf.sample(&mut rng) as u64 - 1 } else { rng.random_range(0..features) }
                    as u32;
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            chosen.sort_unstable();
            let entries: Vec<(u32, f32)> =
                chosen.iter().map(|&c| (c, rng.random_range(1..=16u32) as f32 / 8.0)).collect();
            let z = b + entries.iter().map(|&(c, v)| w[c as usize] * v as f64).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let label = if rng.random::<f64>() < p { 1.0 } else { 0.0 };
            (label, entries)
        })
    }

    /// The rows as LIBSVM text (1-based indices).
    pub fn write_libsvm(&self, out: &mut dyn Write) -> Result<()> {
        let mut line = String::new();
        for (label, entries) in self.rows() {
            use std::fmt::Write as _;
            line.clear();
            write!(line, "{label}")?;
            for (c, v) in entries {
                write!(line, " {}:{v}", c + 1)?;
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// The rows densely, label last: `features + 1` values per row.
    pub fn dense_values(&self) -> impl Iterator<Item = f32> {
        let width = self.features as usize;
        self.rows().flat_map(move |(label, entries)| {
            let mut row = vec![0f32; width + 1];
            for (c, v) in entries {
                row[c as usize] = v;
            }
            row[width] = label;
            row
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows have `nnz` distinct sorted columns in range, values in the documented set, the
    /// column frequencies fall with the column number (power law), and the labels follow the
    /// true model (the mean label is close to the mean of σ(x·w + b)).
    #[test]
    fn rows_are_sparse_power_law_and_follow_the_true_model() {
        let spec = SparseSpec { rows: 20_000, features: 1000, nnz: 10, seed: 4 };
        let (w, b) = spec.true_model();
        let mut freq = vec![0u64; 1000];
        let (mut labels, mut probs) = (0.0, 0.0);
        for (label, entries) in spec.rows() {
            assert_eq!(entries.len(), 10);
            assert!(entries.windows(2).all(|e| e[0].0 < e[1].0));
            for &(c, v) in &entries {
                freq[c as usize] += 1;
                assert!((v * 8.0).fract() == 0.0 && (0.125..=2.0).contains(&v), "{v}");
            }
            let z = b + entries.iter().map(|&(c, v)| w[c as usize] * v as f64).sum::<f64>();
            probs += 1.0 / (1.0 + (-z).exp());
            labels += label as f64;
        }
        assert!(freq[0] > 2 * freq[9] && freq[9] > 2 * freq[99] && freq[99] > freq[999], "{freq:?}");
        // The mean of 20,000 Bernoulli draws is within 4 standard errors (0.0036 each) of
        // the mean probability.
        assert!((labels - probs).abs() / 20_000.0 < 0.015, "labels {labels}, expected {probs}");
        // Same seed, same rows; another seed, other rows.
        let again: Vec<SparseRow> = spec.rows().take(50).collect();
        assert_eq!(again, spec.rows().take(50).collect::<Vec<_>>());
        assert_ne!(again, SparseSpec { seed: 5, ..spec }.rows().take(50).collect::<Vec<_>>());
    }

    /// Every column can be drawn: nnz equal to the number of features gives full rows.
    #[test]
    fn nnz_up_to_the_feature_count() {
        let spec = SparseSpec { rows: 3, features: 6, nnz: 6, seed: 1 };
        for (_, entries) in spec.rows() {
            assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        }
        assert!(SparseSpec { nnz: 7, ..spec }.check().is_err());
        assert!(SparseSpec { nnz: 0, ..spec }.check().is_err());
    }
}
