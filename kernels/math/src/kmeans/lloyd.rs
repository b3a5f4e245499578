//! Lloyd's step: every row of every block scored against every centroid.

use super::scan::{Centroids, ROWS_PER_BLOCK};
use super::shard::{add_to, block_rows, KMeansShard};
use crate::simd::add_widened;

impl KMeansShard {
    /// Lloyd: scores every row of every block.
    pub(super) fn step_lloyd(&mut self, centroids: &Centroids, out: &mut [f64]) -> u64 {
        self.bounds = None;
        let (d, k, n) = (self.d, centroids.k, self.sqnorm.len());
        let b = block_rows(k);
        let mut slot = vec![0.0; k * d + 2 * k];
        let mut best = [0u32; ROWS_PER_BLOCK];
        let mut changed = 0u64;
        let (counts, sumsq) = (k * d, k * d + k);
        for b0 in (0..n).step_by(b) {
            let b1 = (b0 + b).min(n);
            // Each group's rows are added to the block's sums while still in cache: the same
            // row-order sums from zero that `sums_into` computes.
            slot.fill(0.0);
            for g0 in (b0..b1).step_by(ROWS_PER_BLOCK) {
                let g1 = (g0 + ROWS_PER_BLOCK).min(b1);
                centroids.assign_rows::<false>(&self.x[g0 * d..g1 * d], &mut best[..g1 - g0], &mut []);
                for (o, &j) in best[..g1 - g0].iter().enumerate() {
                    let row = g0 + o;
                    changed += (self.labels[row] != j) as u64;
                    self.labels[row] = j;
                    let j = j as usize;
                    add_widened(&mut slot[j * d..(j + 1) * d], &self.x[row * d..(row + 1) * d]);
                    slot[counts + j] += 1.0;
                    slot[sumsq + j] += self.sqnorm[row];
                }
            }
            add_to(out, &slot);
        }
        self.scored = n as u64;
        self.scanned_all = true;
        changed
    }
}
