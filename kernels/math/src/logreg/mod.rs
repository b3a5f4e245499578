//! Full-batch logistic regression by gradient descent on the mean log-loss: binary (the
//! default, labels 0 or 1) or multinomial (softmax) with `classes = C ≥ 3` (labels 0..C−1).
//!
//! Binary model: `[w (cols) | b | previous loss (NaN before the first update)]`: the previous
//! loss travels with the model so that `update` can apply the stopping rule without other
//! state. Partial (additive): `[Σ r·x (cols) | Σ r | Σ loss | rows]` with `r = σ(w·x + b) − y`.
//! Multinomial model: `[W (classes × cols, row-major) | b (classes) | previous loss]`; partial
//! `[Σ r_k·x per class | Σ r_k per class | Σ loss | rows]` with `r_k = softmax(W·x + b)_k −
//! [y = k]` (see [`softmax`]). Both layouts are "weights, intercepts, loss", so one update
//! serves both.
//!
//! Update: `w ← w − lr · (Σ r·x / n + l2 · w)`, `b ← b − lr · Σ r / n` (the intercepts are not
//! regularised). Stop at `max-iter` (the host's business) or when the loss changes by at most
//! `tol` between two iterations.
//!
//! A shard only sees the data shape, not the parameters, so it learns the number of classes
//! from the model's length at each step; it checks at `append` that every label is a class
//! number (a whole number ≥ 0) and at `step` that none reaches the number of classes.
//!
//! Per row the dot product and the gradient are computed in f64 from the f32 features; the
//! log-loss uses the stable form `ln(1 + e^−|z|) + max(z, 0) − y·z`, with the logarithms of
//! a block of rows taken once, of their product. `e^−|z|` comes from an inlined polynomial
//! ([`exp_nonpositive`], within 2 ulp of the correctly rounded value) instead of a call into
//! libm, which in the wasm build is a scalar, uninlinable library function.

use crate::params::Params;
use crate::simd::{axpy_block_widened, dot_widened, dot_widened_rows, F32x4, F64x2};
use crate::{
    check_chunk, check_len, Algorithm, BatchPlan, ClassCount, DataShape, ModelField, Param, SamplePlan, Sizes,
    UpdateResult,
};

pub mod exp;
pub mod optim;
pub mod score;
pub mod softmax;
pub mod sparse;

use crate::csr::Csr;
pub use exp::{exp_nonpositive, exp_nonpositive_x2};
use optim::Optim;

/// Parameter names logistic regression accepts, besides the optimiser's ([`optim::PARAMS`]).
/// `batch-size` makes it mini-batch (the host steps only the batch's rows, chosen from
/// `seed`, see [`crate::batch`]).
pub const PARAMS: &[&str] = &["learning-rate", "l2", "tol", "classes", "batch-size", "seed"];

/// The most classes a multinomial model may have (a sanity bound: the model holds
/// `classes × (cols + 1)` values and every row computes all of them).
pub const MAX_CLASSES: u64 = 10_000;

/// Checked parameters. Defaults: `learning-rate = 0.1`, `l2 = 0`, `tol = 1e-6`, `classes = 2`,
/// full batch (no `batch-size`), `seed = 0`, and [`Optim`]'s.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRegParams {
    pub learning_rate: f64,
    pub l2: f64,
    pub tol: f64,
    pub classes: u64,
    /// Rows per iteration (None: every row, full batch).
    pub batch_size: Option<u64>,
    pub seed: u64,
    pub optim: Optim,
}

impl LogRegParams {
    pub fn parse(list: &[Param], shape: DataShape) -> Result<Self, String> {
        let known: Vec<&str> = PARAMS.iter().chain(optim::PARAMS).copied().collect();
        let p = Params::new("logreg", list, &known)?;
        if !shape.has_labels {
            return Err("logreg needs labelled data (a label column with values 0 or 1)".into());
        }
        let classes = p.u64_or("classes", 2)?;
        if !(2..=MAX_CLASSES).contains(&classes) {
            return Err(format!("logreg parameter 'classes' must be between 2 and {MAX_CLASSES}, got {classes}"));
        }
        let batch_size = match p.raw("batch-size") {
            None => None,
            Some(_) => Some(p.count("batch-size")?),
        };
        if let Some(b) = batch_size.filter(|&b| shape.total_rows > 0 && b > shape.total_rows) {
            return Err(format!("logreg parameter 'batch-size' is {b}, more than the {} rows", shape.total_rows));
        }
        Ok(Self {
            learning_rate: p.positive_or("learning-rate", 0.1)?,
            l2: p.nonneg_or("l2", 0.0)?,
            tol: p.nonneg_or("tol", 1e-6)?,
            classes,
            batch_size,
            seed: p.u64_or("seed", 0)?,
            optim: Optim::parse(&p)?,
        })
    }

    /// The model layout these parameters give on `d` columns.
    pub fn layout(&self, d: usize) -> Layout {
        let mut l = Layout::new(d, self.classes);
        if self.optim.extended(self.batch_size.is_some()) {
            l.state = Some(self.optim.state_vectors());
        }
        l
    }
}

/// Where the parts of a model sit: `weights` values, then `intercepts` values (together the
/// parameters θ), then, in the extended layout of [`optim`], the optimiser's state and the
/// update count, and last the previous loss. Binary models have one weight vector;
/// multinomial ones one per class. Partials are `[gradient sums (θ's size) | loss | rows]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Feature columns.
    pub d: usize,
    /// Weight vectors: 1 (binary) or the number of classes.
    pub vectors: usize,
    /// The extended layout's optimiser state, in vectors of θ's size (None: the original
    /// layout `[θ | previous loss]`).
    pub state: Option<usize>,
}

impl Layout {
    pub fn new(d: usize, classes: u64) -> Self {
        Self { d, vectors: if classes == 2 { 1 } else { classes as usize }, state: None }
    }
    /// The layout of a model of `len` values over `d` columns, as a shard sees it.
    fn of_model(d: usize, len: usize) -> Result<Self, String> {
        let vectors = len.saturating_sub(1) / (d + 1);
        if vectors == 0 || vectors == 2 || vectors * (d + 1) + 1 != len {
            return Err(format!(
                "logreg model has {len} values, expected classes × ({d} weights + 1 intercept) + 1 \
                 with 1 vector (binary) or 3 or more classes"
            ));
        }
        Ok(Self { d, vectors, state: None })
    }
    pub fn classes(self) -> usize {
        if self.vectors == 1 {
            2
        } else {
            self.vectors
        }
    }
    pub fn weights(self) -> usize {
        self.vectors * self.d
    }
    /// θ's size: weights and intercepts.
    pub fn params(self) -> usize {
        self.vectors * (self.d + 1)
    }
    pub fn model_len(self) -> usize {
        match self.state {
            None => self.params() + 1,
            Some(k) => (k + 1) * self.params() + 2,
        }
    }
    pub fn partial_len(self) -> usize {
        self.params() + 2
    }
}

/// The logistic-regression algorithm.
pub struct LogReg;

impl Algorithm for LogReg {
    type Shard = LogRegShard;
    const NAME: &'static str = "logreg";

    fn validate(params: &[Param], shape: DataShape) -> Result<(), String> {
        LogRegParams::parse(params, shape).map(|_| ())
    }

    fn plan_sample(params: &[Param], shape: DataShape) -> Result<SamplePlan, String> {
        LogRegParams::parse(params, shape)?;
        Ok(SamplePlan::Head(0))
    }

    fn init(params: &[Param], shape: DataShape, _s: &[f32], _l: &[f32], start: &[f64]) -> Result<Vec<f64>, String> {
        let p = LogRegParams::parse(params, shape)?;
        let l = p.layout(shape.cols as usize);
        let mut m = vec![0.0; l.model_len()];
        match start.len() {
            0 => {}
            n if n == l.weights() || n == l.weights() + l.vectors => m[..n].copy_from_slice(start),
            n => {
                return Err(format!(
                    "initial logreg model has {n} values, expected {} weights (and optionally {} intercepts)",
                    l.weights(),
                    l.vectors
                ))
            }
        }
        m[l.model_len() - 1] = f64::NAN;
        Ok(m)
    }

    fn sizes(params: &[Param], shape: DataShape) -> Result<Sizes, String> {
        let l = LogRegParams::parse(params, shape)?.layout(shape.cols as usize);
        Sizes::of(l.model_len(), l.partial_len())
    }

    fn plan_batches(params: &[Param], shape: DataShape) -> Result<Option<BatchPlan>, String> {
        let p = LogRegParams::parse(params, shape)?;
        Ok(p.batch_size.map(|size| BatchPlan { size, seed: p.seed }))
    }

    fn update(params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, String> {
        let p = LogRegParams::parse(params, shape)?;
        let l = p.layout(shape.cols as usize);
        let (nw, np, last) = (l.weights(), l.params(), l.model_len() - 1);
        check_len("logreg model", model.len(), l.model_len())?;
        check_len("logreg partial", total.len(), l.partial_len())?;
        // Updates done so far (the extended layout counts them just before the loss).
        let t = if l.state.is_some() { model[last - 1] as u64 } else { 0 };
        let n = total[np + 1];
        let want = match p.batch_size {
            Some(b) => crate::batch::batch_len(shape.total_rows, b, t),
            None => shape.total_rows,
        };
        if n != want as f64 || n == 0.0 {
            return Err(format!("the partials cover {n} rows but this iteration's batch has {want}"));
        }
        let loss = total[np] / n;
        let prev = model[last];
        if !loss.is_finite() {
            let before = if prev.is_finite() {
                format!("the last finite loss was {prev:e}")
            } else {
                "no loss before it".into()
            };
            return Err(format!("the loss is {loss} ({before}): lower the learning rate"));
        }
        // The gradient of the mean loss (+ l2/2 |w|^2; intercepts are not regularised).
        let g: Vec<f64> = (0..np).map(|j| total[j] / n + if j < nw { p.l2 * model[j] } else { 0.0 }).collect();
        let mut next = model.to_vec();
        let (theta, rest) = next.split_at_mut(np);
        let state = &mut rest[..l.state.unwrap_or(0) * np];
        p.optim.step(theta, state, &g, p.optim.rate(p.learning_rate, t + 1), t + 1, nw);
        if l.state.is_some() {
            next[last - 1] = (t + 1) as f64;
        }
        next[last] = loss;
        // A mini-batch loss is noisy: mini-batch runs stop after their epochs (max-iter).
        let converged = p.batch_size.is_none() && !prev.is_nan() && (loss - prev).abs() <= p.tol;
        Ok(UpdateResult { model: next, loss, converged })
    }

    fn describe(params: &[Param], shape: DataShape, model: &[f64]) -> Result<Vec<ModelField>, String> {
        let p = LogRegParams::parse(params, shape)?;
        let l = p.layout(shape.cols as usize);
        check_len("logreg model", model.len(), l.model_len())?;
        let (d, nw) = (l.d as u32, l.weights());
        Ok(if l.vectors == 1 {
            vec![
                ModelField { name: "weights".into(), shape: vec![d], values: model[..nw].to_vec() },
                ModelField { name: "intercept".into(), shape: vec![], values: vec![model[nw]] },
            ]
        } else {
            let c = l.vectors as u32;
            vec![
                ModelField { name: "weights".into(), shape: vec![c, d], values: model[..nw].to_vec() },
                ModelField { name: "intercept".into(), shape: vec![c], values: model[nw..nw + l.vectors].to_vec() },
            ]
        })
    }

    fn new_shard(shape: DataShape) -> LogRegShard {
        LogRegShard { d: shape.cols as usize, x: Vec::new(), sparse: None, y: Vec::new(), max_label: 0.0, layout: None }
    }
}

/// A resident slice of labelled rows.
pub struct LogRegShard {
    d: usize,
    /// Dense rows, row-major (empty when the rows are sparse).
    x: Vec<f32>,
    /// Sparse rows, when the shard was given them ([`crate::Shard::append_sparse`]).
    sparse: Option<Csr>,
    y: Vec<f32>,
    /// The largest label appended, checked against the model's classes at each step.
    max_label: f32,
    /// The model layout, when the shard was given the parameters ([`crate::Shard::configure`]);
    /// else it is inferred from the model's length (the original layout only).
    layout: Option<Layout>,
}

/// Rows per block: residuals of a block are computed first, then the gradient of the
/// block is accumulated column-chunk by column-chunk while the block is in L1.
const BLOCK: usize = 64;

impl crate::Shard for LogRegShard {
    fn reserve(&mut self, rows: usize) {
        // The feature storage is sized at the first append, once it is known whether the rows
        // are dense or sparse (`rows × cols` floats would not fit for 2^20 sparse columns).
        self.y.reserve_exact(rows);
    }

    fn append(&mut self, features: &[f32], labels: &[f32]) -> Result<(), String> {
        let shape = DataShape { cols: self.d as u32, has_labels: true, total_rows: 0 };
        check_chunk(shape, features, labels)?;
        if self.sparse.is_some() {
            return Err("this shard holds sparse rows: dense rows cannot be added to it".into());
        }
        self.check_labels(labels)?;
        if self.x.is_empty() {
            self.x.reserve_exact(self.y.capacity().max(labels.len()) * self.d);
        }
        self.x.extend_from_slice(features);
        self.y.extend_from_slice(labels);
        Ok(())
    }

    fn append_sparse(
        &mut self,
        offsets: &[u32],
        indices: &[u32],
        values: &[f32],
        labels: &[f32],
    ) -> Result<(), String> {
        if !self.x.is_empty() {
            return Err("this shard holds dense rows: sparse rows cannot be added to it".into());
        }
        self.check_labels(labels)?;
        let d = self.d;
        let csr = self.sparse.get_or_insert_with(|| {
            let mut c = Csr::default();
            c.reserve_rows(self.y.capacity());
            c
        });
        csr.append(d, offsets, indices, values, labels.len())?;
        self.y.extend_from_slice(labels);
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.y.len() as u64
    }

    fn configure(&mut self, params: &[Param]) -> Result<(), String> {
        let shape = DataShape { cols: self.d as u32, has_labels: true, total_rows: 0 };
        self.layout = Some(LogRegParams::parse(params, shape)?.layout(self.d));
        Ok(())
    }

    fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, String> {
        self.step_rows(model, None)
    }

    fn step_batch(&mut self, model: &[f64], rows: &[u32]) -> Result<Vec<f64>, String> {
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= self.y.len()) {
            return Err(format!("batch row {r} is outside this shard's {} rows", self.y.len()));
        }
        self.step_rows(model, Some(rows))
    }

    fn assignments(&self) -> Vec<u32> {
        Vec::new()
    }

    fn score(&mut self, model: &[f64]) -> Result<Vec<ClassCount>, String> {
        let l = self.layout_of(model)?;
        Ok(match &self.sparse {
            Some(csr) => sparse::count(l, model, csr, &self.y),
            None => score::count(l, model, &self.x, &self.y),
        })
    }
}

/// Why `label` (a class number; `at` says where it is, or is empty) is not a class of a model
/// of `classes` classes.
fn not_a_class(label: f32, at: &str, classes: usize) -> String {
    if classes == 2 {
        format!("label {label}{at} is not 0 or 1: give --classes C for labels 0..C-1")
    } else {
        format!("label {label}{at} is not below --classes {classes} (labels must be 0..{})", classes - 1)
    }
}

impl LogRegShard {
    /// Checks that every label is a class number (and one of the model's classes, when the
    /// shard knows them), and keeps the largest.
    fn check_labels(&mut self, labels: &[f32]) -> Result<(), String> {
        // Labels are class numbers; f32 holds every whole number up to 2^24 exactly.
        let class_number = |y: f32| y >= 0.0 && y.fract() == 0.0 && y < MAX_CLASSES as f32;
        if let Some((i, y)) = labels.iter().enumerate().find(|(_, &y)| !class_number(y)) {
            return Err(format!(
                "label {y} in row {} of this chunk is not a class number (0 or 1, or 0..C-1 with --classes C)",
                i + 1
            ));
        }
        // A shard that knows the classes (contract 0.2.0) names the row of a label beyond them.
        if let Some(c) = self.layout.map(Layout::classes) {
            if let Some((i, &y)) = labels.iter().enumerate().find(|(_, &y)| y as usize >= c) {
                return Err(not_a_class(y, &format!(" in row {} of this chunk", i + 1), c));
            }
        }
        self.max_label = labels.iter().fold(self.max_label, |m, &y| m.max(y));
        Ok(())
    }

    /// The layout of `model`, once every label appended is one of its classes.
    fn layout_of(&self, model: &[f64]) -> Result<Layout, String> {
        let l = match self.layout {
            Some(l) => {
                check_len("logreg model", model.len(), l.model_len())?;
                l
            }
            None => Layout::of_model(self.d, model.len())?,
        };
        if self.max_label as usize >= l.classes() {
            return Err(not_a_class(self.max_label, "", l.classes()));
        }
        Ok(l)
    }

    /// The partial of every row (`rows` None) or of the given rows.
    fn step_rows(&mut self, model: &[f64], rows: Option<&[u32]>) -> Result<Vec<f64>, String> {
        let l = self.layout_of(model)?;
        if let Some(csr) = &self.sparse {
            return Ok(sparse::step(l, csr, &self.y, rows, model));
        }
        let (x, y) = match rows {
            None => (std::borrow::Cow::Borrowed(&self.x[..]), std::borrow::Cow::Borrowed(&self.y[..])),
            // A batch's rows, gathered so that the blocked loops below run on them unchanged.
            Some(rows) => {
                let d = self.d;
                let x = rows.iter().flat_map(|&r| &self.x[r as usize * d..(r as usize + 1) * d]).copied().collect();
                (x, rows.iter().map(|&r| self.y[r as usize]).collect())
            }
        };
        Ok(if l.vectors > 1 { softmax::step(l, &x, &y, model) } else { binary_step(self.d, &x, &y, model) })
    }
}

/// The binary partial `[Σ r·x | Σ r | Σ loss | rows]` of rows `x` (row-major, `d` columns)
/// with labels `y` under `model` (whose first `d + 1` values are `w` and `b`).
///
/// Per block of rows, first every row's `z = w·x + b` (two rows at a time), then the rows'
/// terms in two f64 lanes, four rows per trip (`e^−|z|`, the division and the loss terms were
/// scalar code), then the block's `Σ r·x`.
fn binary_step(d: usize, x: &[f32], y: &[f32], model: &[f64]) -> Vec<f64> {
    let (w, b) = (&model[..d], model[d]);
    let mut out = vec![0.0; d + 3];
    let (mut loss, mut rsum, mut ln_sum) = (F64x2::splat(0.0), F64x2::splat(0.0), 0.0);
    let (mut z, mut r) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
    for (xb, yb) in x.chunks(BLOCK * d).zip(y.chunks(BLOCK)) {
        let m = yb.len();
        // Two rows at a time, sharing the loads of `w`.
        let mut pairs = xb.chunks_exact(2 * d);
        for (z, x2) in z.chunks_exact_mut(2).zip(&mut pairs) {
            let [z0, z1] = dot_widened_rows(w, [&x2[..d], &x2[d..]]);
            (z[0], z[1]) = (z0 + b, z1 + b);
        }
        if m % 2 == 1 {
            z[m - 1] = dot_widened(w, pairs.remainder()) + b;
        }
        // `Σ ln(1 + e_i)` as the log of the block's product: one logarithm per block
        // instead of one per row. Each factor is in (1, 2], so the 64 of a block cannot
        // overflow, and the product's rounding (≤ 64 ulp) moves the sum by < 1e-14.
        let mut prod = F64x2::splat(1.0);
        let mut i = 0;
        // Four rows per trip, two pairs sharing each of the residual's vector constants (which
        // cranelift keeps spilled outside the loop and reloads at each use).
        while i + 4 <= m {
            let (y0, y1) = F32x4::load(yb, i).to_f64();
            let (z0, z1) = (F64x2::load(&z, i), F64x2::load(&z, i + 2));
            let ((d0, l0, r0), (d1, l1, r1)) = (binary_terms(z0, y0), binary_terms(z1, y1));
            r0.store(&mut r, i);
            r1.store(&mut r, i + 2);
            (prod, loss, rsum) = (prod * d0 * d1, loss + l0 + l1, rsum + r0 + r1);
            i += 4;
        }
        while i < m {
            // A lone last row takes both lanes; the second lane's terms are then dropped.
            let j = (i + 1).min(m - 1);
            let (zv, yv) = (F64x2::new(z[i], z[j]), F64x2::new(yb[i] as f64, yb[j] as f64));
            let (den, l, rv) = binary_terms(zv, yv);
            let [r0, r1] = rv.to_array();
            r[i] = r0;
            if j > i {
                r[j] = r1;
                (prod, loss, rsum) = (prod * den, loss + l, rsum + rv);
            } else {
                let lane0 = |v: F64x2, pad: f64| F64x2::new(v.to_array()[0], pad);
                (prod, loss, rsum) = (prod * lane0(den, 1.0), loss + lane0(l, 0.0), rsum + lane0(rv, 0.0));
            }
            i += 2;
        }
        let [p0, p1] = prod.to_array();
        ln_sum += (p0 * p1).ln();
        axpy_block_widened(&mut out[..d], &r[..m], xb);
    }
    out[d] = rsum.to_array().iter().sum();
    out[d + 1] = loss.to_array().iter().sum::<f64>() + ln_sum;
    out[d + 2] = y.len() as f64;
    out
}

/// Two rows' logistic terms from their scores `z` and labels `y`: `1 + e^−|z|` (the factor
/// whose logarithm the loss needs), the rest of the loss `max(z, 0) − y·z` and the residual
/// `σ(z) − y`.
#[inline(always)]
fn binary_terms(z: F64x2, y: F64x2) -> (F64x2, F64x2, F64x2) {
    let (zero, one) = (F64x2::splat(0.0), F64x2::splat(1.0));
    let e = exp_nonpositive_x2(z.abs().negated());
    let den = one + e;
    // σ(z) = 1 / (1 + e^−z) for z ≥ 0, e^z / (1 + e^z) below.
    let p = z.select_lt(zero, e, one) / den;
    (den, zero.max(z) - y * z, p - y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shard;

    fn shape(d: u32, n: u64) -> DataShape {
        DataShape { cols: d, has_labels: true, total_rows: n }
    }
    fn params() -> Vec<Param> {
        vec![("learning-rate".into(), "0.5".into()), ("l2".into(), "0.1".into()), ("tol".into(), "0".into())]
    }

    #[test]
    fn one_step_matches_hand_computed_gradient() {
        // Two rows, one feature; w = 1, b = 0: z = (2, -1).
        let x = [2.0f32, -1.0];
        let y = [1.0f32, 1.0];
        let mut s = LogReg::new_shard(shape(1, 2));
        s.append(&x, &y).unwrap();
        let model = [1.0, 0.0, f64::NAN];
        let p = s.step(&model).unwrap();
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let (r0, r1) = (sig(2.0) - 1.0, sig(-1.0) - 1.0);
        assert!((p[0] - (r0 * 2.0 - r1)).abs() < 1e-15);
        assert!((p[1] - (r0 + r1)).abs() < 1e-15);
        let want_loss = -(sig(2.0).ln() + sig(-1.0).ln());
        assert!((p[2] - want_loss).abs() < 1e-14);
        let u = LogReg::update(&params(), shape(1, 2), &model, &p).unwrap();
        let g = (r0 * 2.0 - r1) / 2.0;
        assert!((u.model[0] - (1.0 - 0.5 * (g + 0.1 * 1.0))).abs() < 1e-15);
        assert!((u.model[1] - (0.0 - 0.5 * (r0 + r1) / 2.0)).abs() < 1e-15);
        assert!((u.loss - want_loss / 2.0).abs() < 1e-15);
        assert!(!u.converged, "no previous loss yet");
    }

    #[test]
    fn labels_outside_zero_one_are_refused() {
        let mut s = LogReg::new_shard(shape(1, 2));
        let e = s.append(&[1.0, 2.0], &[0.0, 2.5]).unwrap_err();
        assert_eq!(e, "label 2.5 in row 2 of this chunk is not a class number (0 or 1, or 0..C-1 with --classes C)");
        s.append(&[1.0, 2.0], &[0.0, 2.0]).unwrap();
        let e = s.step(&[0.0, 0.0, f64::NAN]).unwrap_err();
        assert_eq!(e, "label 2 is not 0 or 1: give --classes C for labels 0..C-1");
        let three = vec![0.0; 3 * 2 + 1];
        assert!(s.step(&three).is_ok(), "three classes take label 2");
        s.append(&[1.0], &[3.0]).unwrap();
        assert_eq!(s.step(&three).unwrap_err(), "label 3 is not below --classes 3 (labels must be 0..2)");
    }

    #[test]
    fn unlabelled_data_is_refused() {
        let e = LogReg::validate(&params(), DataShape { cols: 2, has_labels: false, total_rows: 3 }).unwrap_err();
        assert!(e.contains("needs labelled data"), "{e}");
    }

    #[test]
    fn block_boundaries_do_not_change_the_gradient() {
        let d = 7;
        let n = 3 * BLOCK + 5;
        let mut rng = crate::rng::SplitMix64::new(5);
        let x: Vec<f32> = (0..n * d).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let y: Vec<f32> = (0..n).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let model: Vec<f64> = (0..d).map(|j| j as f64 * 0.1 - 0.3).chain([0.2, f64::NAN]).collect();
        let mut s = LogReg::new_shard(shape(d as u32, n as u64));
        s.append(&x, &y).unwrap();
        let p = s.step(&model).unwrap();
        // Reference: row by row, no blocking.
        let mut g = vec![0.0; d + 1];
        for i in 0..n {
            let z: f64 = (0..d).map(|j| model[j] * x[i * d + j] as f64).sum::<f64>() + 0.2;
            let r = 1.0 / (1.0 + (-z).exp()) - y[i] as f64;
            for j in 0..d {
                g[j] += r * x[i * d + j] as f64;
            }
            g[d] += r;
        }
        for j in 0..=d {
            assert!((p[j] - g[j]).abs() < 1e-12, "col {j}: {} vs {}", p[j], g[j]);
        }
    }
}
