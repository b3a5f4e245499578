//! `ifp gen`: reproducible synthetic data sets.
//!
//! - `kmeans`: Gaussian blobs: `k` centres drawn uniformly in `[-10, 10]^cols`, each row a
//!   uniformly chosen centre plus standard normal noise.
//! - `logreg`: a labelled linear problem: features standard normal, true weights standard
//!   normal, intercept 0.5, label ~ Bernoulli(σ(x·w + b)) in the last column.
//!
//! The same seed gives the same rows on every platform (ChaCha8 streams).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use ifp_host::data::Rows;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct GenSpec {
    pub kind: Kind,
    pub rows: u64,
    pub cols: u64,
    pub k: u64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Kmeans,
    Logreg,
}

impl GenSpec {
    /// Columns per written row (the label adds one for `logreg`).
    pub fn file_cols(&self) -> u64 {
        match self.kind {
            Kind::Kmeans => self.cols,
            Kind::Logreg => self.cols + 1,
        }
    }

    /// Every value of the data set, row by row (label last for `logreg`), lazily.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        let mut setup = ChaCha8Rng::seed_from_u64(self.seed);
        let d = self.cols as usize;
        let centres: Vec<f32> = (0..self.k as usize * d).map(|_| setup.random_range(-10.0f32..10.0)).collect();
        let weights: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut setup)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x005E_ED0F_DA7A);
        let kind = self.kind;
        let k = self.k.max(1);
        let mut row = Vec::with_capacity(d + 1);
        (0..self.rows).flat_map(move |_| {
            row.clear();
            match kind {
                Kind::Kmeans => {
                    let c = rng.random_range(0..k) as usize;
                    for i in 0..d {
                        let noise: f32 = StandardNormal.sample(&mut rng);
                        row.push(centres[c * d + i] + noise);
                    }
                }
                Kind::Logreg => {
                    let mut z = 0.5f64;
                    for w in &weights {
                        let x: f32 = StandardNormal.sample(&mut rng);
                        z += w * x as f64;
                        row.push(x);
                    }
                    let p = 1.0 / (1.0 + (-z).exp());
                    row.push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
                }
            }
            row.clone()
        })
    }

    /// The data set in memory, split into features and labels.
    pub fn rows(&self) -> Rows {
        let cols = self.cols as usize;
        match self.kind {
            Kind::Kmeans => Rows { cols, features: self.values().collect(), labels: Vec::new() },
            Kind::Logreg => {
                let mut features = Vec::with_capacity(self.rows as usize * cols);
                let mut labels = Vec::with_capacity(self.rows as usize);
                let all: Vec<f32> = self.values().collect();
                for r in all.chunks_exact(cols + 1) {
                    features.extend_from_slice(&r[..cols]);
                    labels.push(r[cols]);
                }
                Rows { cols, features, labels }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let s = GenSpec { kind: Kind::Kmeans, rows: 50, cols: 3, k: 4, seed: 1 };
        let a: Vec<f32> = s.values().collect();
        assert_eq!(a.len(), 150);
        assert_eq!(a, s.values().collect::<Vec<_>>());
        let b: Vec<f32> = GenSpec { seed: 2, ..s }.values().collect();
        assert_ne!(a, b);
    }

    #[test]
    fn logreg_labels_are_binary_and_follow_the_linear_model() {
        let s = GenSpec { kind: Kind::Logreg, rows: 4000, cols: 4, k: 0, seed: 3 };
        let r = s.rows();
        assert_eq!(r.len(), 4000);
        assert!(r.labels.iter().all(|&y| y == 0.0 || y == 1.0));
        let ones = r.labels.iter().filter(|&&y| y == 1.0).count();
        // Intercept 0.5: more ones than zeros, but not all.
        assert!((2000..3800).contains(&ones), "{ones}");
    }

    #[test]
    fn blobs_are_near_their_centres() {
        let s = GenSpec { kind: Kind::Kmeans, rows: 1000, cols: 2, k: 3, seed: 9 };
        let r = s.rows();
        // Coordinates stay within the centre box plus a few standard deviations.
        assert!(r.features.iter().all(|v| v.abs() < 16.0));
    }
}
