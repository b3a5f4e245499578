//! The assignment scan: centroids transposed into f32 vectors and the blocked argmin of
//! `½‖c‖² − x·c` (first minimum on ties) that Lloyd's and Hamerly's steps both use.

use crate::simd::{min_f32, F32x4};

/// Centroids scored per pass (four vectors of four lanes).
const CHUNK: usize = 16;

/// Rows scored per block: 3 rows × 4 vectors of accumulators + 4 centroid vectors + the row
/// value fill 17 of the 16 SSE registers cranelift allocates; measured with callgrind on the
/// wasm kernel, R = 3 runs 1.7 % fewer instructions than R = 4 (spills) and the native
/// baseline build is as fast as with R = 4 (R = 2 is slower there).
pub(super) const ROWS_PER_BLOCK: usize = 3;

/// Centroids laid out for scoring: per chunk of up to 16 centroids, for each column, four
/// vectors holding that column of the chunk's centroids negated, plus `½‖c‖²` per centroid (padding
/// lanes hold +∞ so that they never win).
pub(super) struct Centroids {
    d: usize,
    pub(super) k: usize,
    /// `chunks × d × 16` lanes, negated.
    t: Vec<f32>,
    /// `chunks × 16` half squared norms (centroid `j`'s at `j`).
    half_norm: Vec<f32>,
    /// The centroids negated, row by row (`k × d`), to score a row against one centroid.
    neg: Vec<f32>,
}

impl Centroids {
    pub(super) fn new(model: &[f64], k: usize, d: usize) -> Self {
        let chunks = k.div_ceil(CHUNK);
        let mut t = vec![0.0f32; chunks * d * CHUNK];
        let mut half_norm = vec![f32::INFINITY; chunks * CHUNK];
        let neg: Vec<f32> = model[..k * d].iter().map(|&v| -(v as f32)).collect();
        for j in 0..k {
            let (c, lane) = (j / CHUNK, j % CHUNK);
            let mut s = 0.0f32;
            for i in 0..d {
                let v = model[j * d + i] as f32;
                // Negated, so that scoring multiplies rows as they are (`x·(−c)` is exactly
                // `−x·c`): no negation per row and column in the inner loop.
                t[(c * d + i) * CHUNK + lane] = -v;
                s += v * v;
            }
            half_norm[c * CHUNK + lane] = 0.5 * s;
        }
        Self { d, k, t, half_norm, neg }
    }

    /// Row `x`'s f32 score against centroid `j` alone, `½‖c_j‖² − x·c_j`, summed in four lanes
    /// (another order than the scan's, so not always its bits, but within the same rounding
    /// bound: the dot product's error bound holds for any order of summation).
    #[inline(always)]
    pub(super) fn score_one(&self, x: &[f32], j: usize) -> f32 {
        let d = self.d;
        let (x, c) = (&x[..d], &self.neg[j * d..(j + 1) * d]);
        let mut acc = F32x4::splat(0.0);
        let (xc, cc) = (x.chunks_exact(4), c.chunks_exact(4));
        let tail: f32 = xc.remainder().iter().zip(cc.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in xc.zip(cc) {
            acc = F32x4::madd(F32x4::load(a, 0), F32x4::load(b, 0), acc);
        }
        let [a0, a1, a2, a3] = acc.to_array();
        self.half_norm[j] + ((a0 + a1) + (a2 + a3) + tail)
    }

    /// Assigns every row of the contiguous `rows` (`best.len()` rows); with `SCORES = 2`, also
    /// writes each row's smallest and second smallest score (over all other centroids) to
    /// `top`, with `SCORES = 1` the smallest and −∞, with `SCORES = 0` nothing.
    #[inline(always)]
    pub(super) fn assign_rows<const SCORES: u8>(&self, rows: &[f32], best: &mut [u32], top: &mut [[f32; 2]]) {
        const R: usize = ROWS_PER_BLOCK;
        let (d, n) = (self.d, best.len());
        let mut i = 0;
        while i + R <= n {
            let top: &mut [[f32; 2]] = if SCORES > 0 { &mut top[i..i + R] } else { &mut [] };
            self.assign::<R, SCORES>(&rows[i * d..(i + R) * d], &mut best[i..i + R], top);
            i += R;
        }
        let top: &mut [[f32; 2]] = if SCORES > 0 { &mut top[i..n] } else { &mut [] };
        match n - i {
            1 => self.assign::<1, SCORES>(&rows[i * d..n * d], &mut best[i..n], top),
            2 => self.assign::<2, SCORES>(&rows[i * d..n * d], &mut best[i..n], top),
            _ => {}
        }
    }

    /// Writes into `best[r]` the index of the closest centroid to row `r` of `rows`
    /// (the first one on ties); `top[r]` gets its scores as [`Self::assign_rows`] says.
    #[inline(always)]
    fn assign<const R: usize, const SCORES: u8>(&self, rows: &[f32], best: &mut [u32], top: &mut [[f32; 2]]) {
        // The first chunk's results start the running minima, so that nothing is carried
        // through its scoring loop (with up to 16 centroids, the only one): values live
        // across it would take registers from the accumulators and spill inside the loop.
        let first = self.chunk::<R, SCORES>(0, rows);
        let mut best_score: [f32; R] = core::array::from_fn(|r| first[r].0);
        let mut second: [f32; R] = core::array::from_fn(|r| first[r].1);
        for r in 0..R {
            best[r] = first[r].2;
        }
        if self.k > CHUNK {
            self.later_chunks::<R, SCORES>(rows, best, &mut best_score, &mut second);
        }
        if SCORES > 0 {
            for r in 0..R {
                top[r] = [best_score[r], if SCORES == 2 { second[r] } else { f32::NEG_INFINITY }];
            }
        }
    }

    /// The chunks after the first, merged into the running minima (for `k > 16`; not inlined,
    /// so that the callers of [`Self::assign`] carry one copy of the scoring loop each).
    #[inline(never)]
    fn later_chunks<const R: usize, const SCORES: u8>(
        &self,
        rows: &[f32],
        best: &mut [u32],
        best_score: &mut [f32; R],
        second: &mut [f32; R],
    ) {
        for c in 1..self.k.div_ceil(CHUNK) {
            let next = self.chunk::<R, SCORES>(c, rows);
            for r in 0..R {
                let (m, m2, j) = next[r];
                if SCORES == 2 {
                    // Merged with the smallest two so far: the best score among the other
                    // centroids.
                    second[r] = if m < best_score[r] { min_f32(best_score[r], m2) } else { min_f32(second[r], m) };
                }
                if m < best_score[r] {
                    best_score[r] = m;
                    best[r] = j;
                }
            }
        }
    }

    /// Scores `R` rows against chunk `c` (up to 16 centroids): per row the smallest score, with
    /// `SCORES = 2` the second smallest (a tie with the smallest counts; else −∞), and the
    /// index of the first centroid with the smallest score.
    #[inline(always)]
    fn chunk<const R: usize, const SCORES: u8>(&self, c: usize, rows: &[f32]) -> [(f32, f32, u32); R] {
        let d = self.d;
        let lanes = (self.k - c * CHUNK).min(CHUNK);
        let t = &self.t[c * d * CHUNK..(c + 1) * d * CHUNK];
        let hn = &self.half_norm[c * CHUNK..(c + 1) * CHUNK];
        let scores: [[F32x4; 4]; R] = match lanes.div_ceil(4) {
            1 => widen(score_block::<R, 1>(rows, t, hn, d)),
            2 => widen(score_block::<R, 2>(rows, t, hn, d)),
            3 => widen(score_block::<R, 3>(rows, t, hn, d)),
            _ => score_block::<R, 4>(rows, t, hn, d),
        };
        core::array::from_fn(|r| {
            let s = &scores[r];
            let (m, m2) = if SCORES == 2 {
                // Per lane the smallest two of the four vectors, then the smallest two lanes.
                let (a, b, c, e) = (s[0].min(s[1]), s[0].max(s[1]), s[2].min(s[3]), s[2].max(s[3]));
                let (m, m2) = a.min(c).two_min();
                (m, min_f32(m2, a.max(c).min(b.min(e)).hmin()))
            } else {
                (s[0].min(s[1]).min(s[2].min(s[3])).hmin(), f32::NEG_INFINITY)
            };
            let mv = F32x4::splat(m);
            let mask = s[0].eq_mask(mv) | s[1].eq_mask(mv) << 4 | s[2].eq_mask(mv) << 8 | s[3].eq_mask(mv) << 12;
            (m, m2, (c * CHUNK) as u32 + mask.trailing_zeros())
        })
    }
}

/// Pads `V < 4` score vectors per row with +∞ up to four.
#[inline(always)]
fn widen<const R: usize, const V: usize>(s: [[F32x4; V]; R]) -> [[F32x4; 4]; R] {
    core::array::from_fn(|r| core::array::from_fn(|v| if v < V { s[r][v] } else { F32x4::splat(f32::INFINITY) }))
}

/// Scores `½‖c‖² − x·c` of `R` rows against `4·V` centroid lanes.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size register blocks, indexed on purpose
fn score_block<const R: usize, const V: usize>(rows: &[f32], t: &[f32], hn: &[f32], d: usize) -> [[F32x4; V]; R] {
    let mut acc: [[F32x4; V]; R] = [[F32x4::splat(0.0); V]; R];
    for r in 0..R {
        for v in 0..V {
            acc[r][v] = F32x4::load(hn, 4 * v);
        }
    }
    // Per-row slices of length `d` and fixed 16-lane centroid columns let the compiler drop
    // the bounds checks of the inner loop (`i < d` is the loop bound, `4·v + 4 ≤ 16`).
    let rows: [&[f32]; R] = core::array::from_fn(|r| &rows[r * d..(r + 1) * d]);
    for (i, tc) in (0..d).zip(t.chunks_exact(CHUNK)) {
        let cv: [F32x4; V] = core::array::from_fn(|v| F32x4::load(tc, 4 * v));
        for r in 0..R {
            let x = F32x4::splat(rows[r][i]);
            for v in 0..V {
                acc[r][v] = F32x4::madd(x, cv[v], acc[r][v]);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{lcg_data, shape, with_code};
    use super::super::KMeansShard;
    use super::Centroids;
    use crate::Shard;

    /// Squared-distance argmin by the definition, in f64.
    fn brute_assign(x: &[f32], c: &[f64], d: usize) -> Vec<u32> {
        x.chunks(d)
            .map(|r| {
                let dist = |j: usize| -> f64 { (0..d).map(|i| (r[i] as f64 - c[j * d + i]).powi(2)).sum() };
                (0..c.len() / d).min_by(|&a, &b| dist(a).partial_cmp(&dist(b)).unwrap()).unwrap() as u32
            })
            .collect()
    }

    /// Every centroid's f32 score of row `r` as the native scan computes it (unfused
    /// multiply-add in column order from `½‖c‖²`, itself summed in f32 in column order).
    fn f32_scores(r: &[f32], c: &[f64], d: usize) -> Vec<f32> {
        (0..c.len() / d)
            .map(|j| {
                let cj: Vec<f32> = c[j * d..(j + 1) * d].iter().map(|&v| v as f32).collect();
                let half = 0.5 * cj.iter().fold(0.0f32, |s, &v| s + v * v);
                cj.iter().zip(r).fold(half, |s, (&v, &x)| x * -v + s)
            })
            .collect()
    }

    /// The smallest two scores per row (`SCORES = 2`: the second over the other centroids,
    /// so a tie with the smallest counts), the smallest alone (`SCORES = 1`) and the one
    /// centroid's score of `score_one` against the scores by the definition: bit for bit
    /// natively, within the rounding margin for `score_one`'s other summation order. Ties come
    /// from duplicated centroids.
    #[test]
    fn smallest_two_scores_and_single_scores_match_the_definition() {
        for &(k, d) in &[(1, 3), (2, 4), (5, 3), (16, 32), (16, 5), (20, 6), (40, 9)] {
            let n = 101;
            let x = lcg_data(n, d, k as u64 * 3 + d as u64);
            let mut c: Vec<f64> = lcg_data(k, d, 7).iter().map(|&v| v as f64).collect();
            if k >= 5 {
                let dup = c[..d].to_vec();
                c[3 * d..4 * d].copy_from_slice(&dup);
            }
            let cs = Centroids::new(&c, k, d);
            let (mut best, mut top, mut top1) = (vec![0u32; n], vec![[0.0f32; 2]; n], vec![[0.0f32; 2]; n]);
            cs.assign_rows::<2>(&x, &mut best, &mut top);
            let mut best1 = vec![0u32; n];
            cs.assign_rows::<1>(&x, &mut best1, &mut top1);
            assert_eq!(best, best1, "k={k} d={d}");
            for (i, r) in x.chunks(d).enumerate() {
                let s = f32_scores(r, &c, d);
                let a = (0..k).fold(0, |a, j| if s[j] < s[a] { j } else { a });
                let second = (0..k).filter(|&j| j != a).map(|j| s[j]).fold(f32::INFINITY, f32::min);
                assert_eq!(best[i] as usize, a, "k={k} d={d} row {i}");
                assert_eq!(top[i], [s[a], second], "k={k} d={d} row {i}");
                assert_eq!(top1[i], [s[a], f32::NEG_INFINITY], "k={k} d={d} row {i}");
                for j in 0..k {
                    let exact: f64 = 0.5 * c[j * d..(j + 1) * d].iter().map(|v| v * v).sum::<f64>()
                        - r.iter().zip(&c[j * d..(j + 1) * d]).map(|(&x, &v)| x as f64 * v).sum::<f64>();
                    let bound = (d as f64 + 8.0) * f64::powi(2.0, -23) * 200.0 * (d as f64);
                    assert!((cs.score_one(r, j) as f64 - exact).abs() <= bound, "k={k} d={d} row {i} centroid {j}");
                }
            }
        }
    }

    #[test]
    fn assignment_matches_brute_force_for_many_k_and_d() {
        for &(k, d) in &[(1, 1), (3, 2), (4, 5), (16, 32), (17, 3), (33, 7), (5, 4)] {
            let n = 203;
            let x = lcg_data(n, d, k as u64 * 7 + d as u64);
            let c: Vec<f64> = lcg_data(k, d, 99).iter().map(|&v| v as f64).collect();
            for code in [0.0, 1.0] {
                let mut s = KMeansShard::new(shape(d as u32, n as u64));
                s.append(&x, &[]).unwrap();
                s.step(&with_code(&c, code)).unwrap();
                assert_eq!(s.assignments(), brute_assign(&x, &c, d), "k={k} d={d} code={code}");
            }
        }
    }
}
