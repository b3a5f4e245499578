//! An example ifp plugin that takes sparse rows: least-squares linear regression with an
//! intercept by full-batch gradient descent, the same algorithm, model and parameters as the
//! 0.1.0 example in `kernels/examples/linreg`, here written as an
//! [`ifp_kernel_math::Algorithm`] and exported with `ifp-kernel-guest`, which implements the
//! contract 0.2.0 and its optional `sparse` interface for it. The shard keeps dense rows or
//! CSR rows ([`Csr`]), whichever the host appends: LIBSVM data (`.svm`) is never made dense.
//!
//! Model `[w (d values), b]`; partial, with residuals `r = w·x + b − y`:
//! `[Σ r·x (d values), Σ r, Σ r², rows]`; update `w ← w − lr · (Σ r·x, Σ r) / n`, loss
//! `Σ r² / (2n)`, converged when the gradient's norm is at most `tol`.
//! Parameters (`--param name=value`): `learning-rate` (default 0.1), `tol` (default 1e-6).

use ifp_kernel_math::csr::{axpy, dot, Csr};
use ifp_kernel_math::params::Params;
use ifp_kernel_math::{Algorithm, DataShape, ModelField, Param, SamplePlan, Shard, Sizes, UpdateResult};

/// The parameters, validated.
struct Hyper {
    learning_rate: f64,
    tol: f64,
}

impl Hyper {
    fn parse(params: &[Param], shape: DataShape) -> Result<Self, String> {
        let p = Params::new("linreg", params, &["learning-rate", "tol"])?;
        if !shape.has_labels {
            return Err("linreg needs a target value per row (label column: use --label-col last)".into());
        }
        Ok(Self { learning_rate: p.positive_or("learning-rate", 0.1)?, tol: p.nonneg_or("tol", 1e-6)? })
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!("{what} has {got} values, expected {want}"));
    }
    Ok(())
}

pub struct LinReg;

impl Algorithm for LinReg {
    type Shard = LinRegShard;
    const NAME: &'static str = "linreg";

    fn validate(params: &[Param], shape: DataShape) -> Result<(), String> {
        Hyper::parse(params, shape).map(|_| ())
    }

    fn plan_sample(params: &[Param], shape: DataShape) -> Result<SamplePlan, String> {
        Hyper::parse(params, shape)?;
        Ok(SamplePlan::Head(0))
    }

    fn init(params: &[Param], shape: DataShape, _s: &[f32], _l: &[f32], start: &[f64]) -> Result<Vec<f64>, String> {
        Hyper::parse(params, shape)?;
        let len = shape.cols as usize + 1;
        if start.is_empty() {
            return Ok(vec![0.0; len]);
        }
        check_len("the starting model", start.len(), len)?;
        Ok(start.to_vec())
    }

    fn sizes(params: &[Param], shape: DataShape) -> Result<Sizes, String> {
        Hyper::parse(params, shape)?;
        Sizes::of(shape.cols as usize + 1, shape.cols as usize + 3)
    }

    fn update(params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, String> {
        let h = Hyper::parse(params, shape)?;
        let d = shape.cols as usize;
        check_len("the model", model.len(), d + 1)?;
        check_len("the summed partial", total.len(), d + 3)?;
        let n = total[d + 2];
        if n <= 0.0 {
            return Err("no rows were processed".into());
        }
        let grad: Vec<f64> = total[..=d].iter().map(|s| s / n).collect();
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let model = model.iter().zip(&grad).map(|(w, g)| w - h.learning_rate * g).collect();
        Ok(UpdateResult { model, loss: total[d + 1] / (2.0 * n), converged: norm <= h.tol })
    }

    fn describe(_params: &[Param], shape: DataShape, model: &[f64]) -> Result<Vec<ModelField>, String> {
        let d = shape.cols as usize;
        check_len("the model", model.len(), d + 1)?;
        Ok(vec![
            ModelField { name: "weights".into(), shape: vec![d as u32], values: model[..d].to_vec() },
            ModelField { name: "intercept".into(), shape: vec![], values: vec![model[d]] },
        ])
    }

    fn new_shard(shape: DataShape) -> LinRegShard {
        LinRegShard { d: shape.cols as usize, dense: Vec::new(), sparse: None, y: Vec::new() }
    }
}

/// One inner worker's rows: dense (row-major) or sparse, and the targets.
pub struct LinRegShard {
    d: usize,
    dense: Vec<f32>,
    sparse: Option<Csr>,
    y: Vec<f32>,
}

impl Shard for LinRegShard {
    fn reserve(&mut self, rows: usize) {
        self.y.reserve_exact(rows);
    }

    fn append(&mut self, features: &[f32], labels: &[f32]) -> Result<(), String> {
        if self.sparse.is_some() {
            return Err("this shard holds sparse rows: dense rows cannot be added to it".into());
        }
        if self.d == 0 || !features.len().is_multiple_of(self.d) || features.len() / self.d != labels.len() {
            let (f, l, d) = (features.len(), labels.len(), self.d);
            return Err(format!("{f} features and {l} labels do not form rows of {d} columns"));
        }
        self.dense.extend_from_slice(features);
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
        if !self.dense.is_empty() {
            return Err("this shard holds dense rows: sparse rows cannot be added to it".into());
        }
        self.sparse.get_or_insert_with(Csr::default).append(self.d, offsets, indices, values, labels.len())?;
        self.y.extend_from_slice(labels);
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.y.len() as u64
    }

    fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, String> {
        let d = self.d;
        check_len("the model", model.len(), d + 1)?;
        let (w, b) = (&model[..d], model[d]);
        let mut partial = vec![0.0; d + 3];
        let mut add = |r: f64, partial: &mut [f64]| {
            partial[d] += r;
            partial[d + 1] += r * r;
        };
        match &self.sparse {
            Some(x) => {
                for (i, &y) in self.y.iter().enumerate() {
                    let (idx, val) = x.row(i);
                    let r = dot(w, idx, val) + b - y as f64;
                    axpy(&mut partial[..d], r, idx, val);
                    add(r, &mut partial);
                }
            }
            None => {
                for (x, &y) in self.dense.chunks_exact(d).zip(&self.y) {
                    let r = x.iter().zip(w).map(|(&xi, wi)| xi as f64 * wi).sum::<f64>() + b - y as f64;
                    for (p, &xi) in partial[..d].iter_mut().zip(x) {
                        *p += r * xi as f64;
                    }
                    add(r, &mut partial);
                }
            }
        }
        partial[d + 2] = self.y.len() as f64;
        Ok(partial)
    }

    fn assignments(&self) -> Vec<u32> {
        Vec::new()
    }
}

type Component = ifp_kernel_guest::Kernel<LinReg>;
ifp_kernel_guest::export!(Component with_types_in ifp_kernel_guest);
