//! A k-means shard: the resident rows with their squared norms, column sums and last
//! assignments; a step decodes the model and runs Lloyd's or Hamerly's pass over the rows.

use super::hamerly::{Bounds, Resident};
use super::scan::Centroids;
use super::{split_model, Layout};
use crate::simd::add_rows_widened;
use crate::{check_chunk, DataShape};

/// A resident slice of rows for k-means, with the last assignment of each row and, under
/// Hamerly's algorithm, the distance bounds and cached block sums that let a step skip rows.
pub struct KMeansShard {
    pub(super) d: usize,
    pub(super) x: Vec<f32>,
    /// `‖x‖²` of each row, in f64 (for the exact inertia).
    pub(super) sqnorm: Vec<f64>,
    /// The largest of them (for the scan's rounding margin).
    pub(super) max_sqnorm: f64,
    pub(super) colsum: Vec<f64>,
    pub(super) colsumsq: Vec<f64>,
    pub(super) labels: Vec<u32>,
    /// Hamerly state from the previous step; `None` under Lloyd or before the first step.
    pub(super) bounds: Option<Bounds>,
    /// Under Hamerly (known from the parameters), the bounds' storage made resident as the
    /// rows arrive, until the first step takes it.
    pub(super) resident: Option<Resident>,
    /// Rows the last step scored against every centroid.
    pub(super) scored: u64,
    /// Whether the last step scored every row (Lloyd, or Hamerly's first or full scan).
    pub(super) scanned_all: bool,
}

/// Rows per block of the partial's sums: every block's sums are computed in row order from
/// zero and then added in block order, under Lloyd and Hamerly alike, so that both give
/// bit-identical partials. Sized so that the cached block sums stay within 3/16 of the data.
pub(super) fn block_rows(k: usize) -> usize {
    (32 * k).max(512)
}

impl KMeansShard {
    pub fn new(shape: DataShape) -> Self {
        let d = shape.cols as usize;
        Self {
            d,
            x: Vec::new(),
            sqnorm: Vec::new(),
            max_sqnorm: 0.0,
            colsum: vec![0.0; d],
            colsumsq: vec![0.0; d],
            labels: Vec::new(),
            bounds: None,
            resident: None,
            scored: 0,
            scanned_all: false,
        }
    }

    /// Rows the last step scored against every centroid (all of them under Lloyd; under
    /// Hamerly, those whose bounds did not settle their assignment).
    pub fn scored_rows(&self) -> u64 {
        self.scored
    }

    /// Whether the last step scored every row in the full scan (Lloyd's step; Hamerly's first
    /// step, or one after bounds that settled too few rows).
    pub fn scanned_all(&self) -> bool {
        self.scanned_all
    }
}

/// Writes a block's `[sums (k·d) | counts (k) | sumsq (k)]` to `slot`: its rows (`x`, row-major,
/// with squared norms `sqnorm`) under their centroids `best`. Bit for bit the f64 sums of the
/// rows added one by one from zero (each cluster's rows in row order), but each cluster's
/// sums stay in registers across its rows: the rows are first grouped by cluster (a counting
/// sort). Row by row, every row loaded and stored its cluster's sums: Lloyd's step ran 19 %
/// more wasm instructions.
#[inline(always)]
pub(super) fn block_sums(slot: &mut [f64], k: usize, x: &[f32], sqnorm: &[f64], best: &[u32], group: &mut Grouping) {
    cluster_sums(slot, k, x, sqnorm, best, |_| true, group);
}

/// [`block_sums`] of the clusters `keep` selects: their sums, counts and sums of squared norms
/// are rewritten, the others' left as they are.
#[inline(always)]
pub(super) fn cluster_sums(
    slot: &mut [f64],
    k: usize,
    x: &[f32],
    sqnorm: &[f64],
    best: &[u32],
    keep: impl Fn(usize) -> bool,
    group: &mut Grouping,
) {
    let d = (slot.len() - 2 * k) / k.max(1);
    let Grouping { order, starts } = group;
    starts.clear();
    starts.resize(k + 1, 0);
    for &j in best {
        starts[j as usize + 1] += 1;
    }
    for j in 0..k {
        starts[j + 1] += starts[j];
    }
    order.resize(best.len(), 0);
    for (i, &j) in best.iter().enumerate() {
        // `starts[j]` is the next free place of cluster `j` (it ends at cluster `j + 1`'s
        // start: after this pass, `starts[j]` is where cluster `j` ends).
        order[starts[j as usize] as usize] = i as u32;
        starts[j as usize] += 1;
    }
    let (sums, rest) = slot.split_at_mut(k * d);
    let (counts, sumsq) = rest.split_at_mut(k);
    let mut from = 0;
    for j in 0..k {
        let rows = &order[from..starts[j] as usize];
        from = starts[j] as usize;
        if !keep(j) {
            continue;
        }
        let sum = &mut sums[j * d..(j + 1) * d];
        sum.fill(0.0);
        add_rows_widened(sum, x, rows);
        counts[j] = rows.len() as f64;
        sumsq[j] = rows.iter().fold(0.0, |s, &i| s + sqnorm[i as usize]);
    }
}

/// Scratch of [`block_sums`]: a block's rows grouped by cluster.
#[derive(Default)]
pub(super) struct Grouping {
    order: Vec<u32>,
    starts: Vec<u32>,
}

/// `out[..slot.len()] += slot` (a block's `[sums | counts | sumsq]` is the partial's prefix).
pub(super) fn add_to(out: &mut [f64], slot: &[f64]) {
    for (o, s) in out.iter_mut().zip(slot) {
        *o += s;
    }
}

impl crate::Shard for KMeansShard {
    fn reserve(&mut self, rows: usize) {
        self.x.reserve_exact(rows * self.d);
        self.sqnorm.reserve_exact(rows);
        self.labels.reserve_exact(rows);
    }

    fn configure(&mut self, params: &[crate::Param]) -> Result<(), String> {
        // Rows are not known yet: the host checked `k` against them.
        let p = super::KMeansParams::parse(
            params,
            DataShape { cols: self.d as u32, has_labels: false, total_rows: u64::MAX },
        )?;
        self.resident = (p.algorithm == "hamerly").then(|| Resident::new(p.k, self.d));
        if let Some(r) = &mut self.resident {
            r.grow(self.sqnorm.len());
        }
        Ok(())
    }

    fn append(&mut self, features: &[f32], labels: &[f32]) -> Result<(), String> {
        let d = self.d;
        let has_labels = !labels.is_empty();
        let shape = DataShape { cols: d as u32, has_labels, total_rows: 0 };
        let n = check_chunk(shape, features, labels)?;
        self.x.extend_from_slice(features);
        for r in features.chunks_exact(d) {
            let mut s = 0.0;
            for (i, &v) in r.iter().enumerate() {
                let v = v as f64;
                s += v * v;
                self.colsum[i] += v;
                self.colsumsq[i] += v * v;
            }
            self.sqnorm.push(s);
            self.max_sqnorm = self.max_sqnorm.max(s);
        }
        self.labels.resize(self.labels.len() + n, u32::MAX);
        self.bounds = None;
        if let Some(r) = &mut self.resident {
            r.grow(self.sqnorm.len());
        }
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.sqnorm.len() as u64
    }

    fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, String> {
        let d = self.d;
        let (k, hamerly) = split_model(model, d)?;
        let l = Layout { k, d };
        let mut out = vec![0.0; l.len()];
        let centroids = Centroids::new(model, k, d, self.max_sqnorm);
        let changed = if hamerly {
            self.step_hamerly(model, &centroids, &mut out)
        } else {
            self.step_lloyd(&centroids, &mut out)
        };
        let n = self.sqnorm.len();
        out[l.changed()] = changed as f64;
        out[l.rows()] = n as f64;
        out[l.colsum()..l.colsum() + d].copy_from_slice(&self.colsum);
        out[l.colsumsq()..l.colsumsq() + d].copy_from_slice(&self.colsumsq);
        Ok(out)
    }

    fn assignments(&self) -> Vec<u32> {
        self.labels.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{lcg_data, shape};
    use super::*;
    use crate::rng::SplitMix64;
    use crate::Shard;

    #[test]
    fn partials_of_a_split_add_up_to_the_whole() {
        let (n, d, k) = (500, 6, 5);
        let x = lcg_data(n, d, 1);
        let c: Vec<f64> = x[..k * d].iter().map(|&v| v as f64).chain([1.0]).collect();
        let mut whole = KMeansShard::new(shape(d as u32, n as u64));
        whole.append(&x, &[]).unwrap();
        let pw = whole.step(&c).unwrap();
        let mut sum = vec![0.0; pw.len()];
        for part in x.chunks(137 * d) {
            let mut s = KMeansShard::new(shape(d as u32, n as u64));
            s.append(part, &[]).unwrap();
            for (a, b) in sum.iter_mut().zip(s.step(&c).unwrap()) {
                *a += b;
            }
        }
        for (a, b) in sum.iter().zip(&pw) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// `[sums | counts | sumsq]` by the definition: the rows added one by one in row order.
    fn by_rows(k: usize, d: usize, x: &[f32], sqnorm: &[f64], best: &[u32]) -> Vec<f64> {
        let mut slot = vec![0.0; k * d + 2 * k];
        for (i, &j) in best.iter().enumerate() {
            let j = j as usize;
            for c in 0..d {
                slot[j * d + c] += x[i * d + c] as f64;
            }
            slot[k * d + j] += 1.0;
            slot[k * d + k + j] += sqnorm[i];
        }
        slot
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// Grouped by cluster, the sums are the row-order sums bit for bit (widths through the
    /// 16-, 8- and 4-column paths and the tail, an empty cluster); with a filter, only the
    /// selected clusters are rewritten.
    #[test]
    fn grouped_sums_are_the_row_order_sums_bit_for_bit() {
        let mut rng = SplitMix64::new(21);
        let mut group = Grouping::default();
        for d in [1, 3, 4, 7, 8, 12, 16, 19, 32, 37] {
            let (k, n) = (6, 203);
            let x: Vec<f32> = (0..n * d).map(|_| (rng.next_f64() * 10.0 - 5.0) as f32).collect();
            let sqnorm: Vec<f64> = (0..n).map(|_| rng.next_f64() * 50.0).collect();
            // Cluster 4 stays empty.
            let best: Vec<u32> = (0..n).map(|_| [0, 1, 2, 3, 5][(rng.next_f64() * 5.0) as usize]).collect();
            let want = by_rows(k, d, &x, &sqnorm, &best);
            let mut slot = vec![f64::NAN; k * d + 2 * k];
            block_sums(&mut slot, k, &x, &sqnorm, &best, &mut group);
            assert_eq!(bits(&slot), bits(&want), "d = {d}");

            let keep = |j: usize| j % 2 == 1;
            let mut slot = vec![-7.0; k * d + 2 * k];
            cluster_sums(&mut slot, k, &x, &sqnorm, &best, keep, &mut group);
            for j in 0..k {
                let parts = [(j * d..(j + 1) * d), (k * d + j..k * d + j + 1), (k * d + k + j..k * d + k + j + 1)];
                for part in parts {
                    let expect: Vec<f64> = if keep(j) { want[part.clone()].to_vec() } else { vec![-7.0; part.len()] };
                    assert_eq!(bits(&slot[part]), bits(&expect), "d = {d} cluster {j}");
                }
            }
        }
    }
}
