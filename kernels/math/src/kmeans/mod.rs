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
//! min plus a comparison bitmask instead of a compare-and-select chain. A row whose other
//! scores come within the f32 rounding error of its smallest (~0.5 % of rows on blobs) is
//! decided again by `‖x − c‖²` in f64: the assignment is the nearest centroid in exact
//! arithmetic (up to f64 rounding), the same in every build, and the results follow
//! scikit-learn's float64 run.
//!
//! Hamerly's algorithm keeps, per row, an upper bound on the distance to its centroid and a
//! lower bound on the distance to every other one, moved by the centroids' movement each step;
//! a row is scored only when the bounds cannot prove (with the f32 scan's worst-case rounding
//! error as margin) that Lloyd's scan would keep its centroid. So it yields exactly Lloyd's
//! assignments. The sums are kept per block of rows, each summed in row order from zero and
//! added in block order under both algorithms, so that the partials are bit-identical too and
//! a block's sums for a cluster none of whose rows moved are reused instead of recomputed.
//!
//! The code: this module holds the parameters, the model and partial layouts and the
//! coordinator's side (`init`, `update`, `describe`); `init` chooses the initial centroids,
//! `shard` holds the resident rows and runs a step, `lloyd` and `hamerly` are the two steps
//! and `scan` is the f32 assignment scan both of them use.

#[cfg(test)]
mod fixtures;
mod hamerly;
mod init;
mod lloyd;
mod scan;
mod shard;

pub use shard::KMeansShard;

use crate::params::Params;
use crate::{check_len, Algorithm, DataShape, ModelField, Param, SamplePlan, Sizes, UpdateResult};

/// Parameter names k-means accepts.
pub const PARAMS: &[&str] = &["k", "init", "seed", "tol", "algorithm"];
/// Assignment algorithms; the first is the default. Both give bit-identical partials.
pub const ALGORITHMS: &[&str] = &["hamerly", "lloyd"];
/// Initialisation methods; the first is the default.
pub const INITS: &[&str] = &["kmeans++", "first", "random"];
/// Rows sampled for `random` and `kmeans++` initialisation.
pub const INIT_SAMPLE_ROWS: u64 = 10_000;

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
        init::initial_model(&p, shape, sample, start)
    }

    fn sizes(params: &[Param], shape: DataShape) -> Result<Sizes, String> {
        let p = KMeansParams::parse(params, shape)?;
        let d = shape.cols as usize;
        Sizes::of(p.k * d + 1, Layout { k: p.k, d }.len())
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

/// The algorithm code stored as the last value of a k-means model.
fn algorithm_code(name: &str) -> f64 {
    match name {
        "lloyd" => 0.0,
        _ => 1.0,
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

#[cfg(test)]
mod tests {
    use super::fixtures::{params, shape};
    use super::*;
    use crate::Shard;

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
    fn invalid_parameters_name_the_value() {
        let s = shape(2, 10);
        assert!(KMeansParams::parse(&params(0, "first"), s).unwrap_err().contains("'k' must be at least 1"));
        assert!(KMeansParams::parse(&params(11, "first"), s).unwrap_err().contains("'k' is 11, more than the 10 rows"));
        assert!(KMeansParams::parse(&params(2, "best"), s).unwrap_err().contains("got 'best'"));
        let e = KMeans::init(&params(2, "first"), s, &[0.0; 20], &[], &[1.0; 3]).unwrap_err();
        assert_eq!(e, "initial centroids have 3 values, expected k × cols = 2 × 2 = 4");
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
}
