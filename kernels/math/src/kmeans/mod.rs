//! k-means (Lloyd's iteration, optionally accelerated with Hamerly's bounds) with
//! scikit-learn's stopping rule.
//!
//! Model: the `k × cols` centroids, row-major, then one algorithm code (0 = Lloyd,
//! 1 = Hamerly; the shard only ever sees the model). Partial (all additive):
//! `[sums (k·cols) | counts (k) | sumsq (k) | changed | rows | colsum (cols) | colsumsq (cols)]`
//! where `sumsq[j]` is `Σ‖x‖²` over the rows assigned to cluster `j` and `changed` counts rows
//! whose assignment differs from the shard's previous step. From these sums `update` computes,
//! exactly in f64, the next centroids, the inertia of the assignment, the centroid shift and
//! the data's mean per-feature variance (for the tolerance), so no extra pass is needed.
//!
//! Convergence follows `sklearn.cluster.KMeans(algorithm="lloyd")`: stop when no assignment
//! changed since the previous iteration, or when the total squared centroid shift is at most
//! `tol × mean(var(X, axis=0))`. An empty cluster keeps its previous centroid (scikit-learn
//! relocates it instead; the two agree whenever no cluster empties).
//!
//! The assignment loop scores `½‖c‖² − x·c` (the argmin of the squared distance) in f32 with
//! centroids transposed into four-lane vectors, several rows at a time so that each centroid
//! vector loaded serves every row of the block, and picks the first minimum with a vector
//! min plus an equality bitmask instead of a compare-and-select chain.
//!
//! Hamerly's algorithm keeps, per row, an upper bound on the distance to its centroid and a
//! lower bound on the distance to every other one, moved by the centroids' movement each step;
//! a row is scored only when the bounds cannot prove (with the f32 scan's worst-case rounding
//! error as margin) that Lloyd's scan would keep its centroid. So it yields exactly Lloyd's
//! assignments. The sums are kept per block of rows, each summed in row order from zero and
//! added in block order under both algorithms, so that the partials are bit-identical too and
//! a block's sums for a cluster none of whose rows moved are reused instead of recomputed.

use crate::params::Params;
use crate::rng::{sample_indices, SplitMix64};
use crate::simd::{add_widened, max_f64, min_f32, F32x4};
use crate::{check_chunk, check_len, Algorithm, DataShape, ModelField, Param, SamplePlan, UpdateResult};

/// Parameter names k-means accepts.
pub const PARAMS: &[&str] = &["k", "init", "seed", "tol", "algorithm"];
/// Assignment algorithms; the first is the default. Both give bit-identical partials.
pub const ALGORITHMS: &[&str] = &["hamerly", "lloyd"];
/// Initialisation methods; the first is the default.
pub const INITS: &[&str] = &["kmeans++", "first", "random"];
/// Rows sampled for `random` and `kmeans++` initialisation.
pub const INIT_SAMPLE_ROWS: u64 = 10_000;
/// Centroids scored per pass (four vectors of four lanes).
const CHUNK: usize = 16;

/// Checked k-means parameters. Defaults: `init = kmeans++`, `seed = 0`, `tol = 1e-4`,
/// `algorithm = hamerly`.
#[derive(Clone, Debug, PartialEq)]
pub struct KMeansParams {
    pub k: usize,
    pub init: &'static str,
    pub seed: u64,
    pub tol: f64,
    /// `hamerly` (distance bounds skip rows whose centroid cannot change) or `lloyd` (every
    /// distance computed). Same assignments, partials and models.
    pub algorithm: &'static str,
}

impl KMeansParams {
    pub fn parse(list: &[Param], shape: DataShape) -> Result<Self, String> {
        let p = Params::new("kmeans", list, PARAMS)?;
        let k = p.count("k")?;
        if k > shape.total_rows {
            return Err(format!("kmeans parameter 'k' is {k}, more than the {} rows of the data", shape.total_rows));
        }
        if k > u32::MAX as u64 / 2 {
            return Err(format!("kmeans parameter 'k' is too large: {k}"));
        }
        Ok(Self {
            k: k as usize,
            init: p.choice_or("init", INITS)?,
            seed: p.u64_or("seed", 0)?,
            tol: p.nonneg_or("tol", 1e-4)?,
            algorithm: p.choice_or("algorithm", ALGORITHMS)?,
        })
    }
}

/// Layout of a k-means partial.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub k: usize,
    pub d: usize,
}

impl Layout {
    pub fn sums(&self) -> usize {
        0
    }
    pub fn counts(&self) -> usize {
        self.k * self.d
    }
    pub fn sumsq(&self) -> usize {
        self.counts() + self.k
    }
    pub fn changed(&self) -> usize {
        self.sumsq() + self.k
    }
    pub fn rows(&self) -> usize {
        self.changed() + 1
    }
    pub fn colsum(&self) -> usize {
        self.rows() + 1
    }
    pub fn colsumsq(&self) -> usize {
        self.colsum() + self.d
    }
    #[allow(clippy::len_without_is_empty)] // a layout is never empty: it always holds the counters
    pub fn len(&self) -> usize {
        self.colsumsq() + self.d
    }
}

/// The k-means algorithm.
pub struct KMeans;

impl Algorithm for KMeans {
    type Shard = KMeansShard;
    const NAME: &'static str = "kmeans";

    fn validate(params: &[Param], shape: DataShape) -> Result<(), String> {
        KMeansParams::parse(params, shape).map(|_| ())
    }

    fn plan_sample(params: &[Param], shape: DataShape) -> Result<SamplePlan, String> {
        let p = KMeansParams::parse(params, shape)?;
        Ok(match p.init {
            "first" => SamplePlan::Head(p.k as u64),
            _ => SamplePlan::Uniform { count: INIT_SAMPLE_ROWS.max(p.k as u64).min(shape.total_rows), seed: p.seed },
        })
    }

    fn init(
        params: &[Param],
        shape: DataShape,
        sample: &[f32],
        _labels: &[f32],
        start: &[f64],
    ) -> Result<Vec<f64>, String> {
        let p = KMeansParams::parse(params, shape)?;
        let d = shape.cols as usize;
        if !start.is_empty() {
            if start.len() != p.k * d {
                return Err(format!(
                    "initial centroids have {} values, expected k × cols = {} × {d} = {}",
                    start.len(),
                    p.k,
                    p.k * d
                ));
            }
            if let Some(v) = start.iter().find(|v| !v.is_finite()) {
                return Err(format!("initial centroids contain a non-finite value ({v})"));
            }
            let mut m = start.to_vec();
            m.push(algorithm_code(p.algorithm));
            return Ok(m);
        }
        let n = sample.len() / d.max(1);
        if n < p.k {
            return Err(format!("kmeans init needs at least k = {} sample rows, got {n}", p.k));
        }
        let row = |i: usize| sample[i * d..(i + 1) * d].iter().map(|&v| v as f64);
        let chosen: Vec<usize> = match p.init {
            "first" => (0..p.k).collect(),
            "random" => sample_indices(n as u64, p.k as u64, p.seed).into_iter().map(|i| i as usize).collect(),
            _ => kmeans_plus_plus(sample, d, p.k, p.seed),
        };
        let mut m: Vec<f64> = chosen.into_iter().flat_map(row).collect();
        m.push(algorithm_code(p.algorithm));
        Ok(m)
    }

    fn update(params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, String> {
        let p = KMeansParams::parse(params, shape)?;
        let (k, d) = (p.k, shape.cols as usize);
        let l = Layout { k, d };
        check_len("kmeans model", model.len(), k * d + 1)?;
        check_len("kmeans partial", total.len(), l.len())?;
        let n = total[l.rows()];
        if n != shape.total_rows as f64 {
            return Err(format!("the partials cover {n} rows but the data set has {}", shape.total_rows));
        }
        let mut next = model.to_vec();
        let (mut inertia, mut shift) = (0.0, 0.0);
        for j in 0..k {
            let c = &model[j * d..(j + 1) * d];
            let s = &total[j * d..(j + 1) * d];
            let cnt = total[l.counts() + j];
            let dot: f64 = c.iter().zip(s).map(|(a, b)| a * b).sum();
            let norm: f64 = c.iter().map(|a| a * a).sum();
            inertia += total[l.sumsq() + j] - 2.0 * dot + cnt * norm;
            if cnt > 0.0 {
                for i in 0..d {
                    let v = s[i] / cnt;
                    shift += (v - c[i]) * (v - c[i]);
                    next[j * d + i] = v;
                }
            }
        }
        let mean_var = (0..d)
            .map(|i| {
                let m = total[l.colsum() + i] / n;
                (total[l.colsumsq() + i] / n - m * m).max(0.0)
            })
            .sum::<f64>()
            / d as f64;
        let converged = total[l.changed()] == 0.0 || shift <= p.tol * mean_var;
        Ok(UpdateResult { model: next, loss: inertia.max(0.0), converged })
    }

    fn describe(params: &[Param], shape: DataShape, model: &[f64]) -> Result<Vec<ModelField>, String> {
        let p = KMeansParams::parse(params, shape)?;
        let kd = p.k * shape.cols as usize;
        check_len("kmeans model", model.len(), kd + 1)?;
        Ok(vec![ModelField {
            name: "centroids".into(),
            shape: vec![p.k as u32, shape.cols],
            values: model[..kd].to_vec(),
        }])
    }

    fn new_shard(shape: DataShape) -> KMeansShard {
        KMeansShard::new(shape)
    }
}

/// Greedy k-means++ (as scikit-learn: `2 + ln k` candidates per step, keep the best).
fn kmeans_plus_plus(x: &[f32], d: usize, k: usize, seed: u64) -> Vec<usize> {
    let n = x.len() / d;
    let mut rng = SplitMix64::new(seed);
    let dist = |a: usize, b: usize| -> f64 {
        x[a * d..(a + 1) * d].iter().zip(&x[b * d..(b + 1) * d]).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum()
    };
    let first = rng.below(n as u64) as usize;
    let mut chosen = vec![first];
    let mut closest: Vec<f64> = (0..n).map(|i| dist(i, first)).collect();
    let trials = 2 + (k as f64).ln() as usize;
    while chosen.len() < k {
        let pot: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let cand = if pot > 0.0 {
                let target = rng.next_f64() * pot;
                let mut acc = 0.0;
                closest
                    .iter()
                    .position(|c| {
                        acc += c;
                        acc > target
                    })
                    .unwrap_or(n - 1)
            } else {
                rng.below(n as u64) as usize
            };
            let upd: Vec<f64> = (0..n).map(|i| closest[i].min(dist(i, cand))).collect();
            let p: f64 = upd.iter().sum();
            if best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, cand, upd));
            }
        }
        let (_, cand, upd) = best.expect("at least one trial");
        chosen.push(cand);
        closest = upd;
    }
    chosen
}

/// A resident slice of rows for k-means, with the last assignment of each row and, under
/// Hamerly's algorithm, the distance bounds and cached block sums that let a step skip rows.
pub struct KMeansShard {
    d: usize,
    x: Vec<f32>,
    /// `‖x‖²` of each row, in f64 (for the exact inertia).
    sqnorm: Vec<f64>,
    colsum: Vec<f64>,
    colsumsq: Vec<f64>,
    labels: Vec<u32>,
    /// Hamerly state from the previous step; `None` under Lloyd or before the first step.
    bounds: Option<Bounds>,
    /// Rows the last step scored against every centroid.
    scored: u64,
}

/// Per-row distance bounds (Hamerly 2010) and per-block statistics, valid for the centroids
/// of the previous step.
///
/// `upper[i] ≥ ‖x_i − c_a‖` for the row's assigned centroid `a`, `lower[i] ≤ ‖x_i − c_j‖` for
/// every other `j`, in exact arithmetic on the f64 centroids. A step keeps a row's assignment
/// without scoring it only when the bounds prove that the f32 scores of the full scan would
/// pick the same centroid, with the scan's worst-case rounding error (see [`Margin`]) taken
/// off; any row the bounds do not settle is scored exactly as Lloyd's scan scores it.
struct Bounds {
    /// The centroids the bounds refer to (`k × d`).
    prev: Vec<f64>,
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// Per block of [`block_rows`] rows: `[sums (k·d) | counts (k) | sumsq (k)]` of its rows
    /// under their current assignment, so that blocks (or clusters of a block) whose rows kept
    /// their centroid need no new pass over their rows.
    blocks: Vec<f64>,
}

/// Rows per block of the partial's sums: every block's sums are computed in row order from
/// zero and then added in block order, under Lloyd and Hamerly alike, so that both give
/// bit-identical partials. Sized so that the cached block sums stay within 3/16 of the data.
fn block_rows(k: usize) -> usize {
    (32 * k).max(512)
}

/// The algorithm code stored as the last value of a k-means model.
fn algorithm_code(name: &str) -> f64 {
    match name {
        "lloyd" => 0.0,
        _ => 1.0,
    }
}

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
    pub fn new(shape: DataShape) -> Self {
        let d = shape.cols as usize;
        Self {
            d,
            x: Vec::new(),
            sqnorm: Vec::new(),
            colsum: vec![0.0; d],
            colsumsq: vec![0.0; d],
            labels: Vec::new(),
            bounds: None,
            scored: 0,
        }
    }

    /// Rows the last step scored against every centroid (all of them under Lloyd; under
    /// Hamerly, those whose bounds did not settle their assignment).
    pub fn scored_rows(&self) -> u64 {
        self.scored
    }

    /// Lloyd: scores every row of every block.
    fn step_lloyd(&mut self, centroids: &Centroids, out: &mut [f64]) -> u64 {
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
        changed
    }

    /// Hamerly: rows whose bounds settle their assignment are skipped; the others are scored
    /// as Lloyd scores them. Falls back to scoring every row (and building the bounds) when
    /// the shard holds no bounds for this `k`.
    fn step_hamerly(&mut self, model: &[f64], centroids: &Centroids, out: &mut [f64]) -> u64 {
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
            },
        };
        let full = st.prev.is_empty();
        let margin = Margin::new(model, k, d);
        // Per-centroid movement since the bounds were made, the largest two movements, and
        // half the distance from each centroid to its nearest other centroid.
        let (mut mv, mut half) = (vec![0.0; k], vec![f64::INFINITY; k]);
        let (mut m1, mut m1j, mut m2) = (0.0f64, usize::MAX, 0.0f64);
        if !full {
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
                st.upper[row] = max_f64(2.0 * (s0 as f64 + e) + sq, 0.0).sqrt() * (1.0 + 1e-12);
                st.lower[row] = max_f64(2.0 * (s1 as f64 - e) + sq, 0.0).sqrt() * (1.0 - 1e-12);
                let old = self.labels[row];
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

/// `out[..slot.len()] += slot` (a block's `[sums | counts | sumsq]` is the partial's prefix).
fn add_to(out: &mut [f64], slot: &[f64]) {
    for (o, s) in out.iter_mut().zip(slot) {
        *o += s;
    }
}

/// Splits a model into its centroids and whether it asks for Hamerly's algorithm.
fn split_model(model: &[f64], d: usize) -> Result<(usize, bool), String> {
    if model.len() < d + 1 || !(model.len() - 1).is_multiple_of(d) {
        return Err(format!(
            "kmeans model has {} values, not a whole number of {d}-column centroids plus the algorithm code",
            model.len()
        ));
    }
    let code = model[model.len() - 1];
    if code != 0.0 && code != 1.0 {
        return Err(format!("kmeans model's algorithm code is {code}, expected 0 (lloyd) or 1 (hamerly)"));
    }
    Ok(((model.len() - 1) / d, code == 1.0))
}

/// Rows scored per block: 3 rows × 4 vectors of accumulators + 4 centroid vectors + the row
/// value fill 17 of the 16 SSE registers cranelift allocates; measured with callgrind on the
/// wasm kernel, R = 3 runs 1.7 % fewer instructions than R = 4 (spills) and the native
/// baseline build is as fast as with R = 4 (R = 2 is slower there).
const ROWS_PER_BLOCK: usize = 3;

impl crate::Shard for KMeansShard {
    fn reserve(&mut self, rows: usize) {
        self.x.reserve_exact(rows * self.d);
        self.sqnorm.reserve_exact(rows);
        self.labels.reserve_exact(rows);
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
        }
        self.labels.resize(self.labels.len() + n, u32::MAX);
        self.bounds = None;
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
        let centroids = Centroids::new(model, k, d);
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

/// Centroids laid out for scoring: per chunk of up to 16 centroids, for each column, four
/// vectors holding that column of the chunk's centroids negated, plus `½‖c‖²` per centroid (padding
/// lanes hold +∞ so that they never win).
struct Centroids {
    d: usize,
    k: usize,
    /// `chunks × d × 16` lanes, negated.
    t: Vec<f32>,
    /// `chunks × 16` half squared norms.
    half_norm: Vec<f32>,
}

impl Centroids {
    fn new(model: &[f64], k: usize, d: usize) -> Self {
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

    /// Assigns every row of the contiguous `rows` (`best.len()` rows); with `TOP2`, also
    /// writes each row's smallest and second smallest score (over all other centroids) to `top`.
    #[inline(always)]
    fn assign_rows<const TOP2: bool>(&self, rows: &[f32], best: &mut [u32], top: &mut [[f32; 2]]) {
        const R: usize = ROWS_PER_BLOCK;
        let (d, n) = (self.d, best.len());
        let mut i = 0;
        while i + R <= n {
            let top: &mut [[f32; 2]] = if TOP2 { &mut top[i..i + R] } else { &mut [] };
            self.assign::<R, TOP2>(&rows[i * d..(i + R) * d], &mut best[i..i + R], top);
            i += R;
        }
        let top: &mut [[f32; 2]] = if TOP2 { &mut top[i..n] } else { &mut [] };
        match n - i {
            1 => self.assign::<1, TOP2>(&rows[i * d..n * d], &mut best[i..n], top),
            2 => self.assign::<2, TOP2>(&rows[i * d..n * d], &mut best[i..n], top),
            _ => {}
        }
    }

    /// Writes into `best[r]` the index of the closest centroid to row `r` of `rows`
    /// (the first one on ties); with `TOP2`, `top[r]` gets the two smallest scores.
    #[inline(always)]
    fn assign<const R: usize, const TOP2: bool>(&self, rows: &[f32], best: &mut [u32], top: &mut [[f32; 2]]) {
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
                if TOP2 {
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
        if TOP2 {
            for r in 0..R {
                top[r] = [best_score[r], second[r]];
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
    use super::*;
    use crate::Shard;

    fn params(k: usize, init: &str) -> Vec<Param> {
        vec![("k".into(), k.to_string()), ("init".into(), init.into())]
    }

    fn shape(d: u32, n: u64) -> DataShape {
        DataShape { cols: d, has_labels: false, total_rows: n }
    }

    /// Squared-distance argmin by the definition, in f64.
    fn brute_assign(x: &[f32], c: &[f64], d: usize) -> Vec<u32> {
        x.chunks(d)
            .map(|r| {
                let dist = |j: usize| -> f64 { (0..d).map(|i| (r[i] as f64 - c[j * d + i]).powi(2)).sum() };
                (0..c.len() / d).min_by(|&a, &b| dist(a).partial_cmp(&dist(b)).unwrap()).unwrap() as u32
            })
            .collect()
    }

    fn with_code(c: &[f64], code: f64) -> Vec<f64> {
        c.iter().copied().chain([code]).collect()
    }

    fn lcg_data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..n * d).map(|_| (r.next_f64() * 20.0 - 10.0) as f32).collect()
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

    #[test]
    fn partial_sums_are_the_hand_computed_statistics() {
        // Rows 0,1 near centroid 0 = (0,0); row 2 near centroid 1 = (10,10).
        let x = [1.0f32, 0.0, 0.0, 2.0, 9.0, 11.0];
        let c = [0.0, 0.0, 10.0, 10.0, 1.0];
        let mut s = KMeansShard::new(shape(2, 3));
        s.append(&x, &[]).unwrap();
        let p = s.step(&c).unwrap();
        let l = Layout { k: 2, d: 2 };
        assert_eq!(&p[..4], &[1.0, 2.0, 9.0, 11.0]);
        assert_eq!(&p[l.counts()..l.counts() + 2], &[2.0, 1.0]);
        assert_eq!(&p[l.sumsq()..l.sumsq() + 2], &[5.0, 202.0]);
        assert_eq!(p[l.changed()], 3.0);
        assert_eq!(p[l.rows()], 3.0);
        let ps = params(2, "first");
        let u = KMeans::update(&ps, shape(2, 3), &c, &p).unwrap();
        // New centroids: mean of rows; inertia under the old centroids: 1 + 4 + (1 + 1).
        assert_eq!(u.model, vec![0.5, 1.0, 9.0, 11.0, 1.0]);
        assert!((u.loss - 7.0).abs() < 1e-12);
        assert!(!u.converged);
        // Same assignment again: nothing changed, strict convergence.
        let p2 = s.step(&u.model).unwrap();
        assert_eq!(p2[l.changed()], 0.0);
        assert!(KMeans::update(&ps, shape(2, 3), &u.model, &p2).unwrap().converged);
    }

    #[test]
    fn empty_cluster_keeps_its_centroid() {
        let x = [0.0f32, 1.0, 2.0];
        let c = [1.0, 100.0, 1.0];
        let mut s = KMeansShard::new(shape(1, 3));
        s.append(&x, &[]).unwrap();
        let p = s.step(&c).unwrap();
        let u = KMeans::update(&params(2, "first"), shape(1, 3), &c, &p).unwrap();
        assert_eq!(u.model, vec![1.0, 100.0, 1.0]);
    }

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

    #[test]
    fn invalid_parameters_name_the_value() {
        let s = shape(2, 10);
        assert!(KMeansParams::parse(&params(0, "first"), s).unwrap_err().contains("'k' must be at least 1"));
        assert!(KMeansParams::parse(&params(11, "first"), s).unwrap_err().contains("'k' is 11, more than the 10 rows"));
        assert!(KMeansParams::parse(&params(2, "best"), s).unwrap_err().contains("got 'best'"));
        let e = KMeans::init(&params(2, "first"), s, &[0.0; 20], &[], &[1.0; 3]).unwrap_err();
        assert_eq!(e, "initial centroids have 3 values, expected k × cols = 2 × 2 = 4");
    }

    #[test]
    fn kmeans_plus_plus_picks_distinct_far_apart_seeds() {
        // Three tight groups: k-means++ must pick one row from each.
        let mut x = Vec::new();
        for g in 0..3 {
            for i in 0..50 {
                x.extend([g as f32 * 100.0 + i as f32 * 0.01, 0.0]);
            }
        }
        let m = KMeans::init(&params(3, "kmeans++"), shape(2, 150), &x, &[], &[]).unwrap();
        assert_eq!(m.len(), 3 * 2 + 1);
        let mut groups: Vec<i64> = m[..6].chunks(2).map(|c| (c[0] / 100.0).round() as i64).collect();
        groups.sort();
        assert_eq!(groups, vec![0, 1, 2]);
    }

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

    #[test]
    fn model_with_a_bad_algorithm_code_is_refused() {
        let mut s = KMeansShard::new(shape(2, 2));
        s.append(&[0.0, 0.0, 1.0, 1.0], &[]).unwrap();
        let e = s.step(&[0.0, 0.0, 2.0]).unwrap_err();
        assert_eq!(e, "kmeans model's algorithm code is 2, expected 0 (lloyd) or 1 (hamerly)");
        let e = s.step(&[0.0, 0.0]).unwrap_err();
        assert!(e.contains("has 2 values"), "{e}");
        let e = KMeansParams::parse(&[("k".into(), "1".into()), ("algorithm".into(), "elkan".into())], shape(2, 2));
        assert!(e.unwrap_err().contains("'algorithm' must be one of hamerly, lloyd, got 'elkan'"));
    }

    #[test]
    fn init_appends_the_algorithm_code() {
        let ps =
            |a: &str| vec![("k".into(), "1".into()), ("init".into(), "first".into()), ("algorithm".into(), a.into())];
        let m = KMeans::init(&ps("lloyd"), shape(2, 2), &[3.0, 4.0], &[], &[]).unwrap();
        assert_eq!(m, vec![3.0, 4.0, 0.0]);
        let m = KMeans::init(&ps("hamerly"), shape(2, 2), &[], &[], &[5.0, 6.0]).unwrap();
        assert_eq!(m, vec![5.0, 6.0, 1.0]);
    }
}
