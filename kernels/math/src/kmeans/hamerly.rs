//! Hamerly's step: per-row distance bounds, moved by the centroids' movement, skip the rows
//! whose assignment they settle; the others are scored as Lloyd's step scores them.

use super::scan::{Centroids, ROWS_PER_BLOCK};
use super::shard::{add_to, block_rows, KMeansShard};
use crate::simd::{add_widened, max_f64};

/// Per-row distance bounds (Hamerly 2010) and per-block statistics, valid for the centroids
/// of the previous step.
///
/// `upper[i] ≥ ‖x_i − c_a‖` for the row's assigned centroid `a`, `lower[i] ≤ ‖x_i − c_j‖` for
/// every other `j`, in exact arithmetic on the f64 centroids. A step keeps a row's assignment
/// without scoring it only when the bounds prove that the f32 scores of the full scan would
/// pick the same centroid, with the scan's worst-case rounding error (see [`Margin`]) taken
/// off; any row the bounds do not settle is scored exactly as Lloyd's scan scores it.
pub(super) struct Bounds {
    /// The centroids the bounds refer to (`k × d`).
    prev: Vec<f64>,
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// Per block of [`block_rows`] rows: `[sums (k·d) | counts (k) | sumsq (k)]` of its rows
    /// under their current assignment, so that blocks (or clusters of a block) whose rows kept
    /// their centroid need no new pass over their rows.
    blocks: Vec<f64>,
    /// Score every row in the next step (Lloyd's full scan, which also rebuilds exact
    /// bounds): the bounds settled fewer than [`SCAN_ALL_BELOW`] of the rows last time.
    scan_all_next: bool,
}

/// The share of rows the bounds must settle for the next step to test bounds row by row;
/// below it, a step scores every row in the SIMD scan as Lloyd's does (testing a row's
/// bounds, tightening its upper bound and gathering it for scoring cost more than they save
/// while the centroids move far, e.g. from the first rows or on unclustered data). A scan of
/// every row still tells, from the distances it computes, how many rows the old bounds would
/// have settled (a few flops per row), so the bounds come back once they would settle enough.
/// Either way the step's partial and assignments are the same.
const SCAN_ALL_BELOW: f64 = 0.25;

/// An upper bound on `|s_j − (½‖c_j‖² − x·c_j)|`, the rounding error of a row's f32 score
/// against any centroid (the f64 → f32 rounding of the centroids, the f32 half norms and the
/// f32 dot product, fused or not), for a row of norm `nx`:
/// `κ (‖x‖ C + C²) + 1e-13 (‖x‖ + C)²` (bounded above without a square root) with `C` the largest centroid norm and
/// `κ = (d + 8) · 2⁻²³`, twice the textbook `γ_{d+2} + 2u` bound; the last term covers the
/// f64 rounding of the bounds themselves.
struct Margin {
    kappa: f64,
    cmax: f64,
}

impl Margin {
    fn new(centroids: &[f64], k: usize, d: usize) -> Self {
        let cmax =
            (0..k).map(|j| centroids[j * d..(j + 1) * d].iter().map(|v| v * v).sum::<f64>().sqrt()).fold(0.0, f64::max)
                * (1.0 + 1e-12);
        Self { kappa: (d as f64 + 8.0) * f64::powi(2.0, -23), cmax }
    }

    /// The margin for a row with `‖x‖² = sq`, without a square root: `‖x‖ C ≤ (‖x‖² + C²) / 2`
    /// and `(‖x‖ + C)² ≤ 2 (‖x‖² + C²)`.
    #[inline(always)]
    fn of(&self, sq: f64) -> f64 {
        let c2 = self.cmax * self.cmax;
        self.kappa * (0.5 * (sq + c2) + c2) + 2e-13 * (sq + c2)
    }
}

/// True when `lower ≥ 0` and `lower² − upper² > 4e`: the assigned centroid's f32 score is
/// then strictly below every other centroid's, so the full scan would keep it.
#[inline(always)]
fn settled(lower: f64, upper: f64, e: f64) -> bool {
    lower >= 0.0 && lower * lower - upper * upper > 4.0 * e
}

impl KMeansShard {
    /// Hamerly: rows whose bounds settle their assignment are skipped; the others are scored
    /// as Lloyd scores them. Falls back to scoring every row (and building the bounds) when
    /// the shard holds no bounds for this `k`.
    pub(super) fn step_hamerly(&mut self, model: &[f64], centroids: &Centroids, out: &mut [f64]) -> u64 {
        let (d, k, n) = (self.d, centroids.k, self.sqnorm.len());
        let b = block_rows(k);
        let stride = k * d + 2 * k;
        let blocks = n.div_ceil(b);
        let mut st = match self.bounds.take() {
            Some(st) if st.prev.len() == k * d && st.upper.len() == n && st.blocks.len() == blocks * stride => st,
            _ => Bounds {
                prev: Vec::new(),
                upper: vec![0.0; n],
                lower: vec![0.0; n],
                blocks: vec![0.0; blocks * stride],
                scan_all_next: false,
            },
        };
        // `fresh`: no bounds yet; `full`: every row scored (and every block's sums rebuilt).
        let fresh = st.prev.is_empty();
        let full = fresh || st.scan_all_next;
        // Rows the bounds settle (or, in a full scan, would have settled).
        let mut settled_rows = 0u64;
        let margin = Margin::new(model, k, d);
        // Per-centroid movement since the bounds were made, the largest two movements, and
        // half the distance from each centroid to its nearest other centroid.
        let (mut mv, mut half) = (vec![0.0; k], vec![f64::INFINITY; k]);
        let (mut m1, mut m1j, mut m2) = (0.0f64, usize::MAX, 0.0f64);
        if !fresh {
            for j in 0..k {
                let (c, p) = (&model[j * d..(j + 1) * d], &st.prev[j * d..(j + 1) * d]);
                mv[j] = c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt() * (1.0 + 1e-12);
                if mv[j] > m1 {
                    (m2, m1, m1j) = (m1, mv[j], j);
                } else if mv[j] > m2 {
                    m2 = mv[j];
                }
            }
            for j in 0..k {
                for i in j + 1..k {
                    let (a, c) = (&model[j * d..(j + 1) * d], &model[i * d..(i + 1) * d]);
                    let s = 0.5 * a.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt() * (1.0 - 1e-12);
                    half[j] = half[j].min(s);
                    half[i] = half[i].min(s);
                }
            }
        }
        let mut changed = 0u64;
        self.scored = 0;
        let mut dirty = vec![false; k];
        let mut dirty_list: Vec<usize> = Vec::with_capacity(k);
        let mut todo: Vec<usize> = Vec::with_capacity(b);
        let mut best = vec![0u32; b];
        let mut top = vec![[0.0f32; 2]; b];
        let mut buf = vec![0.0f32; ROWS_PER_BLOCK * d];
        for (bi, b0) in (0..n).step_by(b).enumerate() {
            let b1 = (b0 + b).min(n);
            let slot = &mut st.blocks[bi * stride..(bi + 1) * stride];
            if full {
                centroids.assign_rows::<true>(&self.x[b0 * d..b1 * d], &mut best[..b1 - b0], &mut top[..b1 - b0]);
                todo.clear();
                todo.extend(b0..b1);
            } else {
                todo.clear();
                for row in b0..b1 {
                    let a = self.labels[row] as usize;
                    let e = margin.of(self.sqnorm[row]);
                    let mut u = (st.upper[row] + mv[a]) * (1.0 + 1e-15);
                    let mut lo = st.lower[row] - if a == m1j { m2 } else { m1 };
                    lo -= (lo.abs() + m1) * 1e-15;
                    st.lower[row] = lo;
                    if !settled(max_f64(lo, 2.0 * half[a] - u), u, e) {
                        // Tighten the upper bound to the exact distance, then test again.
                        let c = &model[a * d..(a + 1) * d];
                        let xr = &self.x[row * d..(row + 1) * d];
                        u = sq_dist(xr, c).sqrt() * (1.0 + 1e-12);
                        if !settled(max_f64(lo, 2.0 * half[a] - u), u, e) {
                            todo.push(row);
                        }
                    }
                    st.upper[row] = u;
                }
                settled_rows += (b1 - b0 - todo.len()) as u64;
                for (g, group) in todo.chunks(ROWS_PER_BLOCK).enumerate() {
                    for (r, &row) in group.iter().enumerate() {
                        buf[r * d..(r + 1) * d].copy_from_slice(&self.x[row * d..(row + 1) * d]);
                    }
                    let o = g * ROWS_PER_BLOCK;
                    let m = group.len();
                    centroids.assign_rows::<true>(&buf[..m * d], &mut best[o..o + m], &mut top[o..o + m]);
                }
            }
            self.scored += todo.len() as u64;
            for (t, &row) in todo.iter().enumerate() {
                let (j, [s0, s1]) = (best[t], top[t]);
                let (sq, e) = (self.sqnorm[row], margin.of(self.sqnorm[row]));
                let upper = max_f64(2.0 * (s0 as f64 + e) + sq, 0.0).sqrt() * (1.0 + 1e-12);
                let old = self.labels[row];
                if full && !fresh && old == j {
                    // Would the old bounds, moved and with the upper bound tightened (to
                    // this scan's distance), have settled the row?
                    let a = old as usize;
                    let mut lo = st.lower[row] - if a == m1j { m2 } else { m1 };
                    lo -= (lo.abs() + m1) * 1e-15;
                    settled_rows += settled(max_f64(lo, 2.0 * half[a] - upper), upper, e) as u64;
                }
                st.upper[row] = upper;
                st.lower[row] = max_f64(2.0 * (s1 as f64 - e) + sq, 0.0).sqrt() * (1.0 - 1e-12);
                if old != j {
                    changed += 1;
                    for c in [old as usize, j as usize] {
                        if !full && c < k && !dirty[c] {
                            dirty[c] = true;
                            dirty_list.push(c);
                        }
                    }
                    self.labels[row] = j;
                }
            }
            if full {
                Self::sums_into(&self.x, &self.sqnorm, &self.labels, d, b0..b1, k, slot, None);
            } else if !dirty_list.is_empty() {
                Self::sums_into(&self.x, &self.sqnorm, &self.labels, d, b0..b1, k, slot, Some(&dirty));
                for &c in &dirty_list {
                    dirty[c] = false;
                }
                dirty_list.clear();
            }
            add_to(out, slot);
        }
        st.prev.clear();
        st.prev.extend_from_slice(&model[..k * d]);
        // After the first scan the bounds are tested again, to learn whether they help.
        st.scan_all_next = !fresh && n > 0 && (settled_rows as f64) < SCAN_ALL_BELOW * n as f64;
        self.scanned_all = full;
        self.bounds = Some(st);
        changed
    }

    /// Recomputes, in row order from zero, the sums, counts and sums of squared norms of the
    /// rows in `rows`, for every cluster (`dirty = None`) or only the clusters marked dirty.
    #[allow(clippy::too_many_arguments)]
    fn sums_into(
        x: &[f32],
        sqnorm: &[f64],
        labels: &[u32],
        d: usize,
        rows: core::ops::Range<usize>,
        k: usize,
        slot: &mut [f64],
        dirty: Option<&[bool]>,
    ) {
        let (counts, sumsq) = (k * d, k * d + k);
        match dirty {
            None => slot.fill(0.0),
            Some(dirty) => {
                for j in (0..k).filter(|&j| dirty[j]) {
                    slot[j * d..(j + 1) * d].fill(0.0);
                    slot[counts + j] = 0.0;
                    slot[sumsq + j] = 0.0;
                }
            }
        }
        for row in rows {
            let j = labels[row] as usize;
            if dirty.is_some_and(|dirty| !dirty[j]) {
                continue;
            }
            add_widened(&mut slot[j * d..(j + 1) * d], &x[row * d..(row + 1) * d]);
            slot[counts + j] += 1.0;
            slot[sumsq + j] += sqnorm[row];
        }
    }
}

/// `‖x − c‖²` in f64, four partial sums (the order does not matter: bounds carry a margin).
#[inline(always)]
fn sq_dist(x: &[f32], c: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (xc, cc) = (x.chunks_exact(4), c.chunks_exact(4));
    let (xt, ct) = (xc.remainder(), cc.remainder());
    for (a, b) in xc.zip(cc) {
        for l in 0..4 {
            let t = a[l] as f64 - b[l];
            acc[l] += t * t;
        }
    }
    let tail: f64 = xt.iter().zip(ct).map(|(&a, b)| (a as f64 - b) * (a as f64 - b)).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{lcg_data, shape, with_code};
    use super::super::KMeans;
    use super::*;
    use crate::rng::SplitMix64;
    use crate::{Algorithm, Shard};

    /// `k` blobs in `d` dimensions around centres uniform in ±`spread`, shifted by `offset`,
    /// with uniform noise of half-width `noise`.
    fn blobs(n: usize, d: usize, k: usize, spread: f64, noise: f64, offset: f64, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        let centres: Vec<f64> = (0..k * d).map(|_| offset + (r.next_f64() * 2.0 - 1.0) * spread).collect();
        let mut x = Vec::with_capacity(n * d);
        for _ in 0..n {
            let c = r.below(k as u64) as usize;
            x.extend((0..d).map(|i| (centres[c * d + i] + (r.next_f64() * 2.0 - 1.0) * noise) as f32));
        }
        x
    }

    /// Runs Lloyd and Hamerly side by side from the same centroids and asserts that every
    /// step's partial and assignments are bit-identical, the models equal and the iteration
    /// counts the same; at iteration 3 a fresh Hamerly shard replays the previous model (as a
    /// host that rebuilt a shard does) and must agree too. Returns (iterations, rows Hamerly
    /// scored in total, rows Lloyd scored in total).
    fn lloyd_vs_hamerly(x: &[f32], d: usize, k: usize, start: &[f64], max_iter: usize) -> (usize, u64, u64) {
        let n = x.len() / d;
        let sh = shape(d as u32, n as u64);
        let ps = vec![("k".to_string(), k.to_string()), ("tol".to_string(), "0".to_string())];
        let new = || {
            let mut s = KMeansShard::new(sh);
            s.append(x, &[]).unwrap();
            s
        };
        let (mut lloyd, mut ham) = (new(), new());
        let (mut ml, mut mh) = (with_code(start, 0.0), with_code(start, 1.0));
        let (mut scored, mut prev_h) = (0u64, mh.clone());
        for it in 0..max_iter {
            if it == 3 {
                ham = new();
                ham.step(&prev_h).unwrap();
            }
            let pl = lloyd.step(&ml).unwrap();
            let ph = ham.step(&mh).unwrap();
            scored += ham.scored_rows();
            assert_eq!(lloyd.scored_rows(), n as u64);
            assert!(pl.iter().zip(&ph).all(|(a, b)| a.to_bits() == b.to_bits()), "partials differ at iteration {it}");
            assert_eq!(lloyd.assignments(), ham.assignments(), "assignments differ at iteration {it}");
            let ul = KMeans::update(&ps, sh, &ml, &pl).unwrap();
            let uh = KMeans::update(&ps, sh, &mh, &ph).unwrap();
            assert_eq!(ul.model[..k * d], uh.model[..k * d], "models differ after iteration {it}");
            assert_eq!(ul.converged, uh.converged);
            prev_h = mh;
            (ml, mh) = (ul.model, uh.model);
            if ul.converged {
                return (it + 1, scored, (n * (it + 1)) as u64);
            }
        }
        (max_iter, scored, (n * max_iter) as u64)
    }

    fn first_rows(x: &[f32], k: usize, d: usize) -> Vec<f64> {
        x[..k * d].iter().map(|&v| v as f64).collect()
    }

    #[test]
    fn hamerly_equals_lloyd_on_blobs_and_skips_most_rows() {
        let (n, d, k) = (3000, 5, 8);
        let x = blobs(n, d, k, 10.0, 1.0, 0.0, 5);
        let (iters, scored, all) = lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 50);
        assert!(iters >= 3, "too few iterations ({iters}) to exercise the bounds");
        assert!(scored * 2 < all, "Hamerly scored {scored} of {all} rows: the bounds skip nothing");
    }

    /// The steps Hamerly's shard scans in full, after the first, over `iters` iterations
    /// (checked against Lloyd by [`lloyd_vs_hamerly`] in the other tests).
    fn full_scans(x: &[f32], d: usize, k: usize, iters: usize) -> Vec<usize> {
        let sh = shape(d as u32, (x.len() / d) as u64);
        let ps = vec![("k".to_string(), k.to_string()), ("tol".to_string(), "0".to_string())];
        let mut s = KMeansShard::new(sh);
        s.append(x, &[]).unwrap();
        let mut m = with_code(&first_rows(x, k, d), 1.0);
        let mut full = Vec::new();
        for it in 0..iters {
            let p = s.step(&m).unwrap();
            if s.scanned_all() && it > 0 {
                full.push(it);
            }
            m = KMeans::update(&ps, sh, &m, &p).unwrap().model;
        }
        full
    }

    /// Where the bounds settle few rows (unclustered data, centroids moving far) the next
    /// steps scan every row as Lloyd does, and test the bounds again once they would settle
    /// enough; on well-separated blobs they keep skipping rows.
    #[test]
    fn bounds_that_settle_few_rows_give_way_to_full_scans_and_come_back() {
        let (d, k) = (8, 16);
        let uniform = lcg_data(6000, d, 21);
        let full = full_scans(&uniform, d, k, 40);
        // Full scans while the centroids move far, then bounds again (seen: 2).
        assert!(!full.is_empty() && full.iter().all(|&it| it < 20), "unclustered data: full scans at {full:?}");
        lloyd_vs_hamerly(&uniform, d, k, &first_rows(&uniform, k, d), 12);
        let x = blobs(6000, d, k, 10.0, 1.0, 0.0, 5);
        let full = full_scans(&x, d, k, 30);
        assert!(full.iter().all(|&it| it < 10), "blobs: full scans late, at {full:?}");
    }

    #[test]
    fn hamerly_equals_lloyd_on_uniform_data_and_many_chunks_and_odd_widths() {
        for &(n, d, k, seed) in &[(2000, 3, 7, 1), (1500, 17, 33, 2), (1200, 1, 4, 3), (900, 32, 16, 4)] {
            let x = lcg_data(n, d, seed);
            lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 40);
        }
    }

    #[test]
    fn hamerly_equals_lloyd_with_ties_and_duplicate_points_and_centroids() {
        // Coordinates in {0, 1, 2}: many identical rows and exactly equidistant centroids;
        // the first rows repeat, so some initial centroids coincide.
        let mut r = SplitMix64::new(11);
        let x: Vec<f32> = (0..2000 * 2).map(|_| r.below(3) as f32).collect();
        let mut start = first_rows(&x, 6, 2);
        let first = [start[0], start[1]];
        start[2..4].copy_from_slice(&first);
        lloyd_vs_hamerly(&x, 2, 6, &start, 30);
        // Centroids midway between grid points: every row ties between two or more of them.
        lloyd_vs_hamerly(&x, 2, 4, &[0.5, 0.5, 1.5, 0.5, 0.5, 1.5, 1.5, 1.5], 30);
    }

    #[test]
    fn hamerly_equals_lloyd_far_from_the_origin() {
        // Blobs around 10⁴ with unit spread: the f32 scores lose most of their digits to
        // cancellation, so only the rounding margin keeps the bounds honest.
        let (d, k) = (8, 5);
        let x = blobs(2500, d, k, 3.0, 1.5, 1e4, 9);
        lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 40);
    }

    #[test]
    fn hamerly_equals_lloyd_for_one_cluster_and_one_cluster_per_row() {
        let x = blobs(700, 3, 4, 5.0, 1.0, 0.0, 3);
        let (_, scored, _) = lloyd_vs_hamerly(&x, 3, 1, &first_rows(&x, 1, 3), 10);
        assert_eq!(scored, 700, "with k = 1 only the first step scores rows");
        let x = lcg_data(40, 3, 8);
        let (iters, _, _) = lloyd_vs_hamerly(&x, 3, 40, &first_rows(&x, 40, 3), 10);
        assert!(iters <= 2, "every row is its own centroid: converged after {iters} iterations");
    }
}
