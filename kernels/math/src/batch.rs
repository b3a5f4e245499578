//! Which rows each mini-batch holds: a function of the data set's row count, the batch size,
//! the seed and the iteration only, never of how the rows are spread over functions, so that
//! every configuration steps the same batches (and a single-process reference can too).
//!
//! Epoch `e` visits the rows in the order of a seeded permutation (Fisher–Yates driven by
//! [`SplitMix64`] seeded with `seed + e`); iteration `t` is batch `t mod B` of epoch
//! `t div B`, where `B = ceil(rows / batch)` is the number of batches per epoch (the last
//! batch of an epoch may be smaller).

use crate::rng::SplitMix64;

/// Batches per epoch: `ceil(rows / batch)`.
pub fn batches_per_epoch(rows: u64, batch: u64) -> u64 {
    rows.div_ceil(batch)
}

/// The visiting order of epoch `epoch`: a permutation of `0..rows`.
pub fn epoch_order(rows: u64, seed: u64, epoch: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..rows).collect();
    let mut rng = SplitMix64::new(seed.wrapping_add(epoch));
    for i in (1..rows as usize).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// The rows of iteration `iteration`'s batch, in ascending order, taken from `order` (the
/// iteration's epoch order, from [`epoch_order`]).
pub fn batch_rows(order: &[u64], batch: u64, iteration: u64) -> Vec<u64> {
    let rows = order.len() as u64;
    let b = iteration % batches_per_epoch(rows, batch);
    let (lo, hi) = (b * batch, ((b + 1) * batch).min(rows));
    let mut out = order[lo as usize..hi as usize].to_vec();
    out.sort_unstable();
    out
}

/// The size of iteration `iteration`'s batch.
pub fn batch_len(rows: u64, batch: u64, iteration: u64) -> u64 {
    let b = iteration % batches_per_epoch(rows, batch);
    ((b + 1) * batch).min(rows) - b * batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_visits_every_row_once_and_epochs_differ() {
        let (n, b) = (103, 10);
        let order = epoch_order(n, 7, 0);
        let mut seen: Vec<u64> = (0..batches_per_epoch(n, b)).flat_map(|t| batch_rows(&order, b, t)).collect();
        assert_eq!(batches_per_epoch(n, b), 11);
        assert_eq!(batch_len(n, b, 10), 3);
        assert_eq!(batch_len(n, b, 11), 10, "iteration 11 is the first batch of epoch 1");
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        assert_ne!(order, epoch_order(n, 7, 1));
        assert_ne!(order, (0..n).collect::<Vec<_>>());
    }
}
