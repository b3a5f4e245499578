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
    /// `chunks × 16` half squared norms.
    half_norm: Vec<f32>,
}

impl Centroids {
    pub(super) fn new(model: &[f64], k: usize, d: usize) -> Self {
        let chunks = k.div_ceil(CHUNK);
        let mut t = vec![0.0f32; chunks * d * CHUNK];
        let mut half_norm = vec![f32::INFINITY; chunks * CHUNK];
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
        Self { d, k, t, half_norm }
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
        let d = self.d;
        let mut best_score = [f32::INFINITY; R];
        let mut second = [f32::INFINITY; R];
        for c in 0..self.k.div_ceil(CHUNK) {
            let lanes = (self.k - c * CHUNK).min(CHUNK);
            let t = &self.t[c * d * CHUNK..(c + 1) * d * CHUNK];
            let hn = &self.half_norm[c * CHUNK..(c + 1) * CHUNK];
            let scores: [[F32x4; 4]; R] = match lanes.div_ceil(4) {
                1 => widen(score_block::<R, 1>(rows, t, hn, d)),
                2 => widen(score_block::<R, 2>(rows, t, hn, d)),
                3 => widen(score_block::<R, 3>(rows, t, hn, d)),
                _ => score_block::<R, 4>(rows, t, hn, d),
            };
            for r in 0..R {
                let s = &scores[r];
                let m = s[0].min(s[1]).min(s[2].min(s[3])).hmin();
                let mv = F32x4::splat(m);
                let mask = || s[0].eq_mask(mv) | s[1].eq_mask(mv) << 4 | s[2].eq_mask(mv) << 8 | s[3].eq_mask(mv) << 12;
                if SCORES == 2 {
                    // The chunk's second smallest score (a tie with the smallest counts), merged
                    // with the smallest two so far: the best score among the other centroids.
                    let m2 = if mask().count_ones() >= 2 {
                        m
                    } else {
                        let d = |v: usize| s[v].drop_eq(mv);
                        d(0).min(d(1)).min(d(2).min(d(3))).hmin()
                    };
                    let b0 = best_score[r];
                    second[r] = if m < b0 { min_f32(b0, m2) } else { min_f32(second[r], m) };
                }
                if m < best_score[r] {
                    best_score[r] = m;
                    best[r] = (c * CHUNK) as u32 + mask().trailing_zeros();
                }
            }
        }
        if SCORES > 0 {
            for r in 0..R {
                top[r] = [best_score[r], if SCORES == 2 { second[r] } else { f32::NEG_INFINITY }];
            }
        }
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
