//! Merging what inner workers and functions return: partials summed element-wise in a fixed
//! (worker) order, so the total is the same bits however the data was split, and a
//! classifier's per-class counts summed class by class.

use rayon::prelude::*;

use crate::kernel::ClassCount;

/// Partials of one job with different lengths: a kernel that does not keep its contract.
#[derive(Debug, thiserror::Error)]
#[error("partials of different lengths ({0} and {1}): the kernel's step must always return the same length")]
pub struct PartialsMismatch(pub usize, pub usize);

/// Values below which a merge stays on one thread (spawning costs more than it saves).
const PARALLEL_MERGE_VALUES: usize = 1 << 18;

/// The element-wise sum of `parts`, each element summed in part (function) order, so the
/// result is the same bits however it is split: large merges (hundreds of functions, or
/// models of many coordinates) run in parallel over blocks of coordinates, on the current
/// rayon pool.
pub fn sum_in_order(parts: &[Vec<f64>]) -> Result<Vec<f64>, PartialsMismatch> {
    let Some(first) = parts.first() else { return Ok(Vec::new()) };
    if let Some(p) = parts.iter().find(|p| p.len() != first.len()) {
        return Err(PartialsMismatch(first.len(), p.len()));
    }
    let mut total = first.clone();
    if total.len() * parts.len() < PARALLEL_MERGE_VALUES {
        for p in &parts[1..] {
            add_into(&mut total, p)?;
        }
    } else {
        const BLOCK: usize = 4096;
        total.par_chunks_mut(BLOCK).enumerate().for_each(|(b, block)| {
            for p in &parts[1..] {
                let part = &p[b * BLOCK..b * BLOCK + block.len()];
                block.iter_mut().zip(part).for_each(|(a, x)| *a += x);
            }
        });
    }
    Ok(total)
}

/// `total += p`, element-wise; partials of one job must have equal lengths.
pub fn add_into(total: &mut [f64], p: &[f64]) -> Result<(), PartialsMismatch> {
    if total.len() != p.len() {
        return Err(PartialsMismatch(total.len(), p.len()));
    }
    total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    Ok(())
}

/// `total += counts`, class by class (a longer list extends `total`).
pub fn add_counts(total: &mut Vec<ClassCount>, counts: &[ClassCount]) {
    if total.len() < counts.len() {
        total.resize(counts.len(), ClassCount { rows: 0, correct: 0 });
    }
    for (t, c) in total.iter_mut().zip(counts) {
        (t.rows, t.correct) = (t.rows + c.rows, t.correct + c.correct);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each element is summed in part order whatever the split: the parallel merge gives the
    /// serial merge's bits, on values whose sum depends on the order (1e16 + 1 - 1e16).
    #[test]
    fn parallel_and_serial_merges_are_the_same_bits() {
        let n = 3 * 4096 + 17;
        let parts: Vec<Vec<f64>> = (0..80u32)
            .map(|w| {
                (0..n).map(|i| [1e16, 1.0, -1e16, 0.1 * w as f64][(i + w as usize) % 4] + i as f64 * 1e-3).collect()
            })
            .collect();
        assert!(n * parts.len() >= PARALLEL_MERGE_VALUES, "the parallel path runs");
        let mut serial = parts[0].clone();
        for p in &parts[1..] {
            add_into(&mut serial, p).unwrap();
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let parallel = pool.install(|| sum_in_order(&parts)).unwrap();
        assert_eq!(
            serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            parallel.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let short = vec![parts[0].clone(), vec![1.0]];
        assert_eq!(
            sum_in_order(&short).unwrap_err().to_string(),
            format!("partials of different lengths ({n} and 1): the kernel's step must always return the same length")
        );
    }
}
