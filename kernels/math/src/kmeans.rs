//! Lloyd's k-means with scikit-learn's stopping rule.
//!
//! Model: the `k × cols` centroids, row-major. Partial (all additive):
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

use crate::params::Params;
use crate::rng::{sample_indices, SplitMix64};
use crate::simd::{add_widened, F32x4};
use crate::{check_chunk, check_len, Algorithm, DataShape, ModelField, Param, SamplePlan, UpdateResult};

/// Parameter names k-means accepts.
pub const PARAMS: &[&str] = &["k", "init", "seed", "tol"];
/// Initialisation methods; the first is the default.
pub const INITS: &[&str] = &["kmeans++", "first", "random"];
/// Rows sampled for `random` and `kmeans++` initialisation.
pub const INIT_SAMPLE_ROWS: u64 = 10_000;
/// Centroids scored per pass (four vectors of four lanes).
const CHUNK: usize = 16;

/// Checked k-means parameters. Defaults: `init = kmeans++`, `seed = 0`, `tol = 1e-4`.
#[derive(Clone, Debug, PartialEq)]
pub struct KMeansParams {
    pub k: usize,
    pub init: &'static str,
    pub seed: u64,
    pub tol: f64,
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
            return Ok(start.to_vec());
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
        Ok(chosen.into_iter().flat_map(row).collect())
    }

    fn update(params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, String> {
        let p = KMeansParams::parse(params, shape)?;
        let (k, d) = (p.k, shape.cols as usize);
        let l = Layout { k, d };
        check_len("kmeans model", model.len(), k * d)?;
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
        check_len("kmeans model", model.len(), p.k * shape.cols as usize)?;
        Ok(vec![ModelField { name: "centroids".into(), shape: vec![p.k as u32, shape.cols], values: model.to_vec() }])
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

/// A resident slice of rows for k-means, with the last assignment of each row.
pub struct KMeansShard {
    d: usize,
    x: Vec<f32>,
    /// `‖x‖²` of each row, in f64 (for the exact inertia).
    sqnorm: Vec<f64>,
    colsum: Vec<f64>,
    colsumsq: Vec<f64>,
    labels: Vec<u32>,
}

impl KMeansShard {
    pub fn new(shape: DataShape) -> Self {
        let d = shape.cols as usize;
        Self { d, x: Vec::new(), sqnorm: Vec::new(), colsum: vec![0.0; d], colsumsq: vec![0.0; d], labels: Vec::new() }
    }
}

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
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.sqnorm.len() as u64
    }

    fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, String> {
        let d = self.d;
        if model.is_empty() || model.len() % d != 0 {
            return Err(format!("kmeans model has {} values, not a whole number of {d}-column centroids", model.len()));
        }
        let k = model.len() / d;
        let l = Layout { k, d };
        let mut out = vec![0.0; l.len()];
        let centroids = Centroids::new(model, k, d);
        let mut changed = 0u64;
        let n = self.sqnorm.len();
        // Rows scored per block: 3 rows × 4 vectors of accumulators + 4 centroid vectors
        // + the row value fill 17 of the 16 SSE registers cranelift allocates; measured with
        // callgrind on the wasm kernel, R = 3 runs 1.7 % fewer instructions than R = 4 (spills)
        // and the native baseline build is as fast as with R = 4 (R = 2 is slower there).
        const R: usize = 3;
        let mut i = 0;
        while i < n {
            let r = R.min(n - i);
            let mut best = [0u32; R];
            let rows = &self.x[i * d..(i + r) * d];
            match r {
                R => centroids.assign::<R>(rows, &mut best),
                1 => centroids.assign::<1>(rows, &mut best[..1]),
                2 => centroids.assign::<2>(rows, &mut best[..2]),
                _ => centroids.assign::<3>(rows, &mut best[..3]),
            }
            for (o, &j) in best[..r].iter().enumerate() {
                let row = i + o;
                let j = j as usize;
                changed += (self.labels[row] != j as u32) as u64;
                self.labels[row] = j as u32;
                add_widened(&mut out[j * d..(j + 1) * d], &self.x[row * d..(row + 1) * d]);
                out[l.counts() + j] += 1.0;
                out[l.sumsq() + j] += self.sqnorm[row];
            }
            i += r;
        }
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

    /// Writes into `best[r]` the index of the closest centroid to row `r` of `rows`
    /// (the first one on ties).
    #[inline(always)]
    fn assign<const R: usize>(&self, rows: &[f32], best: &mut [u32]) {
        let d = self.d;
        let mut best_score = [f32::INFINITY; R];
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
                if m < best_score[r] {
                    let mv = F32x4::splat(m);
                    let mask =
                        s[0].eq_mask(mv) | s[1].eq_mask(mv) << 4 | s[2].eq_mask(mv) << 8 | s[3].eq_mask(mv) << 12;
                    best_score[r] = m;
                    best[r] = (c * CHUNK) as u32 + mask.trailing_zeros();
                }
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
            let mut s = KMeansShard::new(shape(d as u32, n as u64));
            s.append(&x, &[]).unwrap();
            s.step(&c).unwrap();
            assert_eq!(s.assignments(), brute_assign(&x, &c, d), "k={k} d={d}");
        }
    }

    #[test]
    fn partial_sums_are_the_hand_computed_statistics() {
        // Rows 0,1 near centroid 0 = (0,0); row 2 near centroid 1 = (10,10).
        let x = [1.0f32, 0.0, 0.0, 2.0, 9.0, 11.0];
        let c = [0.0, 0.0, 10.0, 10.0];
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
        assert_eq!(u.model, vec![0.5, 1.0, 9.0, 11.0]);
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
        let c = [1.0, 100.0];
        let mut s = KMeansShard::new(shape(1, 3));
        s.append(&x, &[]).unwrap();
        let p = s.step(&c).unwrap();
        let u = KMeans::update(&params(2, "first"), shape(1, 3), &c, &p).unwrap();
        assert_eq!(u.model, vec![1.0, 100.0]);
    }

    #[test]
    fn partials_of_a_split_add_up_to_the_whole() {
        let (n, d, k) = (500, 6, 5);
        let x = lcg_data(n, d, 1);
        let c: Vec<f64> = x[..k * d].iter().map(|&v| v as f64).collect();
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
        let mut groups: Vec<i64> = m.chunks(2).map(|c| (c[0] / 100.0).round() as i64).collect();
        groups.sort();
        assert_eq!(groups, vec![0, 1, 2]);
    }
}
