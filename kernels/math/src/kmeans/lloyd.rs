//! Lloyd's step: every row of every block scored against every centroid.

use super::scan::Centroids;
use super::shard::{add_to, block_rows, block_sums, Grouping, KMeansShard};

impl KMeansShard {
    /// Lloyd: scores every row of every block ([`scan_block`]).
    pub(super) fn step_lloyd(&mut self, centroids: &Centroids, out: &mut [f64]) -> u64 {
        self.bounds = None;
        let (d, k, n) = (self.d, centroids.k, self.sqnorm.len());
        let b = block_rows(k);
        let mut slot = vec![0.0; k * d + 2 * k];
        let mut best = vec![0u32; b];
        let mut group = Grouping::default();
        let mut changed = 0u64;
        for b0 in (0..n).step_by(b) {
            let b1 = (b0 + b).min(n);
            changed += scan_block(
                &self.x,
                d,
                &self.sqnorm,
                &mut self.labels,
                b0..b1,
                centroids,
                &mut slot,
                &mut best,
                &mut group,
            );
            add_to(out, &slot);
        }
        self.scored = n as u64;
        self.scanned_all = true;
        changed
    }
}

/// Scores every row of `rows` (one block of the `d`-column rows `x`), records their centroids in
/// `labels` and writes the block's `[sums | counts | sumsq]` to `slot` (see [`block_sums`]);
/// returns how many rows changed centroid. `best` and `group` are scratch (`best` holds at
/// least a block's rows).
#[allow(clippy::too_many_arguments)] // the shard's fields, split to borrow them apart
#[inline(always)]
pub(super) fn scan_block(
    x: &[f32],
    d: usize,
    sqnorm: &[f64],
    labels: &mut [u32],
    rows: core::ops::Range<usize>,
    centroids: &Centroids,
    slot: &mut [f64],
    best: &mut [u32],
    group: &mut Grouping,
) -> u64 {
    let best = &mut best[..rows.len()];
    let x = &x[rows.start * d..rows.end * d];
    centroids.assign_rows::<0>(x, &sqnorm[rows.clone()], best, &mut []);
    let mut changed = 0u64;
    for (l, &j) in labels[rows.clone()].iter_mut().zip(best.iter()) {
        changed += (*l != j) as u64;
        *l = j;
    }
    block_sums(slot, centroids.k, x, &sqnorm[rows], best, group);
    changed
}
