//! The assignment scan that Lloyd's and Hamerly's steps both use: centroids transposed into
//! f32 vectors and the blocked argmin of `½‖c‖² − x·c`, with each row whose f32 scores come
//! within the scan's rounding error ([`Margin`]) of a tie decided again in f64.
//!
//! So a row goes to its nearest centroid as exact arithmetic on the f64 centroids picks it
//! (by `‖x − c‖²` in f64, the first minimum on ties: the criterion of `ifp predict`), not as
//! f32 rounding happens to pick it: the assignments are the same in the wasm build (fused
//! multiply-adds) and the native one, and follow scikit-learn's float64 run rather than its
//! float32 one. On 1,000,000 × 32 blobs f32 picked another centroid for 1-7 rows per
//! iteration, which from the first 16 rows put the seventh iteration's centroids 5.5e-4 from
//! scikit-learn's float64 run (a numpy simulation; exact assignments: 3.2e-12).
//! About 0.5 % of blob rows and 3.6 % of unclustered rows come that near a tie.

use crate::simd::{min_f32, F32x4, F64x2};

/// Centroids scored per pass (four vectors of four lanes).
const CHUNK: usize = 16;

/// Rows scored per block: 3 rows × 4 vectors of accumulators + 4 centroid vectors + the row
/// value fill 17 of the 16 SSE registers cranelift allocates; measured with callgrind on the
/// wasm kernel, R = 3 runs 1.7 % fewer instructions than R = 4 (spills) and the native
/// baseline build is as fast as with R = 4 (R = 2 is slower there). With two columns per
/// trip ([`score_block`]), R = 2 ran a Lloyd step in 1.13x R = 3's time (AMD EPYC, wasm).
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
    /// The centroids as given (`k × d`), for the rows the f32 scores leave undecided.
    exact: Vec<f64>,
    margin: Margin,
    /// [`Margin::tie_gap`] of the rows' largest `‖x‖²` (one gap for all rows: the largest
    /// norm of a block or of the shard differ little, and deciding more rows again is harmless).
    tie_gap: f32,
}

/// With more than 16 centroids, a row's entry in the scan's `best` while its f32 scores leave
/// it undecided (no centroid's: `k` is below 2³¹).
const TIE: u32 = 1 << 31;
/// The candidates of [`Centroids::nearest_exact`]: every centroid.
const ALL: u32 = u32::MAX;

/// An upper bound on `|s_j − (½‖c_j‖² − x·c_j)|`, the rounding error of a row's f32 score
/// against any centroid (the f64 → f32 rounding of the centroids, the f32 half norms and the
/// f32 dot product, fused or not), for a row of norm `nx`:
/// `κ (‖x‖ C + C²) + 1e-13 (‖x‖ + C)²` (bounded above without a square root) with `C` the largest centroid norm and
/// `κ = (d + 8) · 2⁻²³`, twice the textbook `γ_{d+2} + 2u` bound; the last term covers the
/// f64 rounding of Hamerly's bounds.
pub(super) struct Margin {
    pub(super) kappa: f64,
    pub(super) cmax: f64,
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
    pub(super) fn of(&self, sq: f64) -> f64 {
        let c2 = self.cmax * self.cmax;
        self.kappa * (0.5 * (sq + c2) + c2) + 2e-13 * (sq + c2)
    }

    /// `(α, β)` with `α ‖x‖² + β ≥ 4 ·` [`Self::of`]`(‖x‖²)`: the margin is affine in `‖x‖²`,
    /// so a row loop needs one multiply-add instead of its five operations (the `1e-12` covers
    /// the rounding of either form).
    pub(super) fn four_times_affine(&self) -> (f64, f64) {
        let c2 = self.cmax * self.cmax;
        let up = 1.0 + 1e-12;
        ((2.0 * self.kappa + 8e-13) * up, (6.0 * self.kappa + 8e-13) * c2 * up)
    }

    /// The f32 gap `t` from the smallest score within which rows of norms up to `‖x‖² = sq`
    /// are decided in f64: three margins, rounded up. A row whose other scores all exceed
    /// `fl(m + t)` has its f32 argmin's exact score below every other by over half a margin
    /// (two margins of rounding in the two scores; `fl(m + t)` rounds `m + t` down by at most
    /// `2⁻²⁴ |m + t|`, under half a margin since a margin is over `2⁻²⁰ |m|`), far above the
    /// f64 decision's rounding, which would pick the same centroid: whether a row is decided
    /// again never changes its centroid.
    fn tie_gap(&self, sq: f64) -> f32 {
        let (a, b) = self.four_times_affine();
        ((0.75 * (a * sq + b)) as f32).next_up()
    }
}

impl Centroids {
    /// The first `k × d` values of `model` as centroids for rows of `‖x‖²` up to `max_sq`.
    pub(super) fn new(model: &[f64], k: usize, d: usize, max_sq: f64) -> Self {
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
        let margin = Margin::new(model, k, d);
        let tie_gap = margin.tie_gap(max_sq);
        Self { d, k, t, half_norm, neg, exact: model[..k * d].to_vec(), margin, tie_gap }
    }

    /// The bound on a row's f32 score error against these centroids.
    pub(super) fn margin(&self) -> &Margin {
        &self.margin
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

    /// Assigns every row of the contiguous `rows` (`best.len()` rows, `sqnorm` their `‖x‖²`,
    /// none above the `max_sq` of [`Self::new`]) to its nearest centroid; with `SCORES = 2`, also writes each row's smallest score and a
    /// lower bound on the others (within [`Margin::of`] of the exact scores) to `top`, with
    /// `SCORES = 1` the smallest and −∞, with `SCORES = 0` nothing. Where no row is near a
    /// tie, `best` is the f32 scores' argmin and `top` their smallest two.
    #[inline(always)]
    pub(super) fn assign_rows<const SCORES: u8>(
        &self,
        rows: &[f32],
        sqnorm: &[f64],
        best: &mut [u32],
        top: &mut [[f32; 2]],
    ) {
        let d = self.d;
        self.scan_rows::<SCORES>(rows, best, top);
        self.decide_ties::<SCORES>(best, top, |r| (&rows[r * d..(r + 1) * d], sqnorm[r]));
    }

    /// The f32 half of [`Self::assign_rows`]: leaves in `best` what [`Self::decide_ties`]
    /// turns into centroids (so that rows scored in groups can be decided together).
    #[inline(always)]
    pub(super) fn scan_rows<const SCORES: u8>(&self, rows: &[f32], best: &mut [u32], top: &mut [[f32; 2]]) {
        const R: usize = ROWS_PER_BLOCK;
        let (d, n) = (self.d, best.len());
        let gap = self.tie_gap;
        let mut i = 0;
        while i + R <= n {
            let top: &mut [[f32; 2]] = if SCORES > 0 { &mut top[i..i + R] } else { &mut [] };
            self.assign::<R, SCORES>(&rows[i * d..(i + R) * d], &mut best[i..i + R], top, &gap);
            i += R;
        }
        let tail: &mut [[f32; 2]] = if SCORES > 0 { &mut top[i..n] } else { &mut [] };
        match n - i {
            1 => self.assign::<1, SCORES>(&rows[i * d..n * d], &mut best[i..n], tail, &gap),
            2 => self.assign::<2, SCORES>(&rows[i * d..n * d], &mut best[i..n], tail, &gap),
            _ => {}
        }
    }

    /// Turns [`Self::scan_rows`]' `best` into centroids (`row(r)`: row `r` and its `‖x‖²`):
    /// with up to 16 centroids it holds each row's lanes scored within the gap of the smallest
    /// (one lane: that centroid), with more a centroid or [`TIE`]. Rows near a tie are decided
    /// in f64 among their candidates, their `top` from the f64 scores (within the margin as
    /// the f32 ones are). Out of line, and the rows near a tie listed first (by [`near_ties`],
    /// whose loop has no call in it): with the call in the row loop, the wasm build kept the
    /// loop's values on the stack.
    #[inline(never)]
    pub(super) fn decide_ties<'a, const SCORES: u8>(
        &self,
        best: &mut [u32],
        top: &mut [[f32; 2]],
        row: impl Fn(usize) -> (&'a [f32], f64),
    ) {
        let mut open = [0u32; TIE_SPAN];
        for s in (0..best.len()).step_by(TIE_SPAN) {
            let span = s..(s + TIE_SPAN).min(best.len());
            let n = near_ties(&mut best[span], self.k <= CHUNK, &mut open);
            for &i in &open[..n] {
                let r = s + i as usize;
                let candidates = if self.k <= CHUNK { best[r] } else { ALL };
                let (x, sq) = row(r);
                let (j, s0, s1) = self.nearest_exact(x, sq, candidates);
                best[r] = j;
                if SCORES > 0 {
                    // Every other centroid is a candidate (score ≥ s1) or scored above the f32
                    // second smallest, which a non-candidate cannot undercut.
                    let lower = if SCORES == 2 { min_f32(top[r][1], s1) } else { f32::NEG_INFINITY };
                    top[r] = [s0, lower];
                }
            }
        }
    }

    /// Row `x`'s nearest centroid among `candidates` (bit `j` for centroid `j` of the first
    /// chunk, or [`ALL`]) by `‖x − c‖²` in f64 (the first on ties), and the scores
    /// `½ (‖x − c‖² − ‖x‖²)` of it and of the nearest other candidate (+∞ if none), as f32.
    pub(super) fn nearest_exact(&self, x: &[f32], sq: f64, candidates: u32) -> (u32, f32, f32) {
        let d = self.d;
        let (mut best, mut d0, mut d1) = (0u32, f64::INFINITY, f64::INFINITY);
        for j in 0..self.k {
            if candidates != ALL && (j >= CHUNK || candidates >> j & 1 == 0) {
                continue;
            }
            let dist = sq_dist(x, &self.exact[j * d..(j + 1) * d]);
            if dist < d0 {
                (best, d0, d1) = (j as u32, dist, d0);
            } else if dist < d1 {
                d1 = dist;
            }
        }
        let score = |dist: f64| (0.5 * (dist - sq)) as f32;
        (best, score(d0), score(d1))
    }

    /// Scores rows `rows` by f32 and writes to `best[r]` what [`Self::decide_ties`] reads:
    /// with one chunk, the lanes within `gap` of the smallest score; with more, the index of
    /// the smallest or [`TIE`]. `top[r]` gets the f32 scores as [`Self::assign_rows`] says.
    /// (`gap` by reference: read after the scoring loop, not held in a register through it.)
    #[inline(always)]
    fn assign<const R: usize, const SCORES: u8>(
        &self,
        rows: &[f32],
        best: &mut [u32],
        top: &mut [[f32; 2]],
        gap: &f32,
    ) {
        // The first chunk's results start the running minima, so that nothing is carried
        // through its scoring loop (with up to 16 centroids, the only one): values live
        // across it would take registers from the accumulators and spill inside the loop.
        let first = self.chunk::<R, SCORES>(0, rows, *gap);
        let mut best_score: [f32; R] = core::array::from_fn(|r| first[r].0);
        let mut second: [f32; R] = core::array::from_fn(|r| first[r].1);
        for r in 0..R {
            best[r] = first[r].2;
        }
        if self.k > CHUNK {
            self.later_chunks::<R, SCORES>(rows, best, &mut best_score, &mut second, *gap);
        }
        if SCORES > 0 {
            for r in 0..R {
                top[r] = [best_score[r], if SCORES == 2 { second[r] } else { f32::NEG_INFINITY }];
            }
        }
    }

    /// The chunks after the first, merged into the running minima (for `k > 16`; not inlined,
    /// so that the callers of [`Self::assign`] carry one copy of the scoring loop each):
    /// `best` comes with the first chunk's lanes and leaves with a centroid or [`TIE`] (then
    /// every centroid a candidate).
    #[inline(never)]
    fn later_chunks<const R: usize, const SCORES: u8>(
        &self,
        rows: &[f32],
        best: &mut [u32],
        best_score: &mut [f32; R],
        second: &mut [f32; R],
        gap: f32,
    ) {
        let mut near: [bool; R] = core::array::from_fn(|r| !best[r].is_power_of_two());
        for b in best.iter_mut() {
            *b = b.trailing_zeros();
        }
        for c in 1..self.k.div_ceil(CHUNK) {
            let next = self.chunk::<R, SCORES>(c, rows, gap);
            for r in 0..R {
                let (m, m2, lanes) = next[r];
                if SCORES == 2 {
                    // Merged with the smallest two so far: the best score among the other
                    // centroids.
                    second[r] = if m < best_score[r] { min_f32(best_score[r], m2) } else { min_f32(second[r], m) };
                }
                if m < best_score[r] {
                    // Near a tie when the old best is near the new one, or two of this chunk's are.
                    near[r] = !lanes.is_power_of_two() || best_score[r] <= m + gap;
                    best_score[r] = m;
                    best[r] = (c * CHUNK) as u32 + lanes.trailing_zeros();
                } else if m <= best_score[r] + gap {
                    near[r] = true;
                }
            }
        }
        for r in 0..R {
            if near[r] {
                best[r] = TIE;
            }
        }
    }

    /// Scores `R` rows against chunk `c` (up to 16 centroids): per row the smallest score, with
    /// `SCORES = 2` the second smallest (a tie with the smallest counts; else −∞), and the
    /// lanes scored within `gap` of the smallest (bit `l` for the chunk's centroid `l`).
    #[inline(always)]
    fn chunk<const R: usize, const SCORES: u8>(&self, c: usize, rows: &[f32], gap: f32) -> [(f32, f32, u32); R] {
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
            let mv = F32x4::splat(m + gap);
            let mask = s[0].le_mask(mv) | s[1].le_mask(mv) << 4 | s[2].le_mask(mv) << 8 | s[3].le_mask(mv) << 12;
            (m, m2, mask)
        })
    }
}

/// Rows [`Centroids::decide_ties`] lists at a time.
const TIE_SPAN: usize = 64;

/// Writes to the front of `open` the rows of `best` (at most [`TIE_SPAN`]) near a tie and
/// returns how many; with `lanes` (one chunk) turns the others' single lanes into centroids
/// (the tied keep their lanes), else finds the [`TIE`]s.
#[inline(never)]
fn near_ties(best: &mut [u32], lanes: bool, open: &mut [u32; TIE_SPAN]) -> usize {
    let mut n = 0;
    for (i, label) in best.iter_mut().enumerate() {
        let tie = if lanes { !label.is_power_of_two() } else { *label == TIE };
        if lanes && !tie {
            *label = label.trailing_zeros();
        }
        if let Some(o) = open.get_mut(n) {
            *o = i as u32;
        }
        n += tie as usize;
    }
    n
}

/// `‖x − c‖²` in f64, summed in two lanes (even and odd columns, then the two): the same
/// in every build (no fused operations).
fn sq_dist(x: &[f32], c: &[f64]) -> f64 {
    let (xs, cs) = (x.chunks_exact(4), c.chunks_exact(4));
    let tail = xs.remainder().iter().zip(cs.remainder()).fold(0.0, |s, (&v, &c)| s + (v as f64 - c) * (v as f64 - c));
    let mut acc = F64x2::splat(0.0);
    for (xv, cv) in xs.zip(cs) {
        let (lo, hi) = F32x4::load(xv, 0).to_f64();
        let (a, b) = (lo - F64x2::load(cv, 0), hi - F64x2::load(cv, 2));
        acc = acc + a * a + b * b;
    }
    let [e, o] = acc.to_array();
    e + o + tail
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
    // In the wasm build, two columns per trip: cranelift moves the accumulators back to
    // their registers at the loop's back edge and reloads the spilled ones once per trip,
    // so per column that halves. Per Lloyd step of 100,000 × 32 rows, k = 16: 89.1 M →
    // 83.2 M wasm instructions, and the step 0.80-0.87x the time on an AMD EPYC (Zen 5).
    // Tried on the same machine: three or four columns per trip (more spills: 0.97x);
    // the pair's values read by one 8-byte load and broadcast by lane shuffles (74.7 M
    // instructions, 0.83-0.87x: the wasm code shifts with the loop's shape); rows sliced
    // so that the compiler drops the two bounds checks per trip (81.1 M, 0.90x). The sums
    // are the same as one column at a time, in the same order.
    #[cfg(target_arch = "wasm32")]
    {
        let rows: [&[f32]; R] = core::array::from_fn(|r| &rows[r * d..(r + 1) * d]);
        let column = |acc: &mut [[F32x4; V]; R], i: usize, tc: &[f32]| {
            let cv: [F32x4; V] = core::array::from_fn(|v| F32x4::load(tc, 4 * v));
            for r in 0..R {
                let x = F32x4::splat(rows[r][i]);
                for v in 0..V {
                    acc[r][v] = F32x4::madd(x, cv[v], acc[r][v]);
                }
            }
        };
        let pairs = t[..d * CHUNK].chunks_exact(2 * CHUNK);
        let odd = pairs.remainder();
        for (p, tc) in pairs.enumerate() {
            column(&mut acc, 2 * p, &tc[..CHUNK]);
            column(&mut acc, 2 * p + 1, &tc[CHUNK..]);
        }
        if !odd.is_empty() {
            column(&mut acc, d - 1, odd);
        }
    }
    // Natively (LLVM) one column per trip, written out: in pairs (as above) the native
    // baseline's step took 1.3x as long, and even one column per trip through the closure
    // above 1.2x (68-74 against 56-59 ms). Per-row slices of length `d` let the compiler
    // drop the bounds checks.
    #[cfg(not(target_arch = "wasm32"))]
    {
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

    /// Row `r`'s exact score against every centroid, `½‖c‖² − x·c` in f64.
    fn exact_scores(r: &[f32], c: &[f64], d: usize) -> Vec<f64> {
        c.chunks(d)
            .map(|cj| {
                0.5 * cj.iter().map(|v| v * v).sum::<f64>() - r.iter().zip(cj).map(|(&x, &v)| x as f64 * v).sum::<f64>()
            })
            .collect()
    }

    /// Per row, the centroid (the nearest by the definition in f64), the smallest score and a
    /// lower bound on the others (`SCORES = 2`; a tie counts) or the smallest alone
    /// (`SCORES = 1`): bit for bit the f32 scores by the definition (natively) where they are
    /// clear of a tie, within the rounding margin of the exact scores everywhere; and
    /// `score_one`'s score of one centroid within the margin. Ties come from duplicated
    /// centroids.
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
            let sq: Vec<f64> = x.chunks(d).map(|r| r.iter().map(|&v| v as f64 * v as f64).sum()).collect();
            let cs = Centroids::new(&c, k, d, sq.iter().copied().fold(0.0, f64::max));
            let (mut best, mut top, mut top1) = (vec![0u32; n], vec![[0.0f32; 2]; n], vec![[0.0f32; 2]; n]);
            cs.assign_rows::<2>(&x, &sq, &mut best, &mut top);
            let mut best1 = vec![0u32; n];
            cs.assign_rows::<1>(&x, &sq, &mut best1, &mut top1);
            assert_eq!(best, best1, "k={k} d={d}");
            assert_eq!(best, brute_assign(&x, &c, d), "k={k} d={d}");
            let gap = cs.tie_gap;
            for (i, r) in x.chunks(d).enumerate() {
                let (s, exact, e) = (f32_scores(r, &c, d), exact_scores(r, &c, d), cs.margin().of(sq[i]));
                let a = best[i] as usize;
                let other = |v: &[f32]| (0..k).filter(|&j| j != a).map(|j| v[j]).fold(f32::INFINITY, f32::min);
                let exact_other = (0..k).filter(|&j| j != a).map(|j| exact[j]).fold(f64::INFINITY, f64::min);
                assert_eq!(top1[i], [top[i][0], f32::NEG_INFINITY], "k={k} d={d} row {i}");
                assert!((top[i][0] as f64 - exact[a]).abs() <= e, "k={k} d={d} row {i}: {:?} vs {}", top[i], exact[a]);
                assert!(top[i][1] as f64 <= exact_other + e, "k={k} d={d} row {i}: {:?} vs {exact_other}", top[i]);
                if other(&s) > s[a] + 2.0 * gap {
                    assert_eq!(top[i], [s[a], other(&s)], "k={k} d={d} row {i}");
                }
                for (j, &want) in exact.iter().enumerate() {
                    assert!((cs.score_one(r, j) as f64 - want).abs() <= e, "k={k} d={d} row {i} centroid {j}");
                }
            }
        }
    }

    /// Rows within the f32 rounding of a tie between two centroids go to the nearer one in
    /// f64 (by the definition, brute force), where the f32 scores' argmin often picks the
    /// other; whatever `SCORES`, and the `top` scores stay within the margin of the exact ones.
    /// First by hand: `c1 = (1 − 1e-9, 0)` rounds to `(1, 0)` in f32, so `x = (0.5, 0)` scores
    /// a tie (0 and 0) in f32, which goes to `c0 = (0, 0)`, but is nearer `c1` by 1e-9.
    #[test]
    fn rows_near_a_tie_go_to_the_nearer_centroid_in_f64() {
        let c = [0.0, 0.0, 1.0 - 1e-9, 0.0];
        let cs = Centroids::new(&c, 2, 2, 0.25);
        let (mut best, mut top) = ([9u32], [[0.0f32; 2]]);
        assert_eq!(f32_scores(&[0.5, 0.0], &c, 2), [0.0, 0.0]);
        cs.assign_rows::<0>(&[0.5, 0.0], &[0.25], &mut best, &mut []);
        assert_eq!(best, [1]);
        cs.assign_rows::<2>(&[0.5, 0.0], &[0.25], &mut best, &mut top);
        assert_eq!(best, [1]);

        // Rows on the bisector of two random centroids, moved off it by ~1e-7 of their norm.
        let mut rng = crate::rng::SplitMix64::new(5);
        for &(k, d) in &[(5, 8), (16, 32), (37, 7)] {
            let c: Vec<f64> = (0..k * d).map(|_| rng.next_f64() * 8.0 - 4.0).collect();
            let n = 600;
            let mut x = Vec::with_capacity(n * d);
            for _ in 0..n {
                let (p, q) = ((rng.next_f64() * k as f64) as usize, (rng.next_f64() * k as f64) as usize);
                let t = 0.5 + (rng.next_f64() - 0.5) * 2e-7;
                x.extend((0..d).map(|i| (c[p * d + i] + t * (c[q * d + i] - c[p * d + i])) as f32));
            }
            let sq: Vec<f64> = x.chunks(d).map(|r| r.iter().map(|&v| v as f64 * v as f64).sum()).collect();
            let want = brute_assign(&x, &c, d);
            let f32_argmin = x.chunks(d).map(|r| {
                let s = f32_scores(r, &c, d);
                (0..k).fold(0, |a, j| if s[j] < s[a] { j } else { a }) as u32
            });
            let wrong = f32_argmin.zip(&want).filter(|(a, w)| a != *w).count();
            assert!(wrong >= 10, "k={k} d={d}: only {wrong} of {n} rows misassigned in f32: not near enough");
            let cs = Centroids::new(&c, k, d, sq.iter().copied().fold(0.0, f64::max));
            let (mut best, mut top) = (vec![0u32; n], vec![[0.0f32; 2]; n]);
            for scores in 0..3 {
                match scores {
                    0 => cs.assign_rows::<0>(&x, &sq, &mut best, &mut []),
                    1 => cs.assign_rows::<1>(&x, &sq, &mut best, &mut top),
                    _ => cs.assign_rows::<2>(&x, &sq, &mut best, &mut top),
                }
                assert_eq!(best, want, "k={k} d={d} SCORES={scores}");
            }
            for (i, r) in x.chunks(d).enumerate() {
                let (exact, e, a) = (exact_scores(r, &c, d), cs.margin().of(sq[i]), best[i] as usize);
                let exact_other = (0..k).filter(|&j| j != a).map(|j| exact[j]).fold(f64::INFINITY, f64::min);
                assert!((top[i][0] as f64 - exact[a]).abs() <= e, "k={k} d={d} row {i}");
                assert!(top[i][1] as f64 <= exact_other + e, "k={k} d={d} row {i}");
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
