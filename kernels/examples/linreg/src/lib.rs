//! An example ifp plugin: least-squares linear regression with an intercept, fitted by
//! full-batch gradient descent. It is written directly against the `ifp:kernel` WIT world
//! with wit-bindgen (no ifp crate needed), as a template for user plugins; see README.md.
//!
//! Model (the `list<f64>` the host keeps between iterations): `[w_0 .. w_{d-1}, b]`.
//! Partial of a shard under that model, with residuals `r_i = w·x_i + b - y_i`:
//! `[Σ r_i x_i (d values), Σ r_i, Σ r_i², n]` — every entry is a sum over rows, so the
//! partials of any split of the data add up to those of the whole (the additive rule).
//! Update on the total: loss `L = Σ r² / (2n)`, gradient `g = (Σ r x / n, Σ r / n)`,
//! `w ← w − lr·g`; converged when `‖g‖₂ ≤ tol`.
//!
//! Parameters (`--param name=value`): `learning-rate` (default 0.1), `tol` (default 1e-6).

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "kernel",
    path: "../../../wit/v0.1.0",
});

use exports::ifp::kernel::algorithm::{
    DataShape, Guest, GuestShard, ModelField, Param, Sample, SamplePlan, UpdateResult,
};

/// The hyper-parameters, validated.
struct Hyper {
    learning_rate: f64,
    tol: f64,
}

impl Hyper {
    fn parse(params: &[Param]) -> Result<Self, String> {
        let mut h = Hyper { learning_rate: 0.1, tol: 1e-6 };
        for (name, value) in params {
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("linreg parameter '{name}' must be a number, got '{value}'"))?;
            match name.as_str() {
                "learning-rate" if v.is_finite() && v > 0.0 => h.learning_rate = v,
                "tol" if v.is_finite() && v >= 0.0 => h.tol = v,
                "learning-rate" => return Err(format!("linreg parameter 'learning-rate' must be > 0, got '{value}'")),
                "tol" => return Err(format!("linreg parameter 'tol' must be >= 0, got '{value}'")),
                other => {
                    return Err(format!("unknown parameter '{other}' for linreg (expected one of: learning-rate, tol)"))
                }
            }
        }
        Ok(h)
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!("{what} has {got} values, expected {want}"));
    }
    Ok(())
}

/// The component: the functions of the `algorithm` interface.
struct LinReg;

impl Guest for LinReg {
    type Shard = LinRegShard;

    fn name() -> String {
        "linreg".into()
    }

    fn validate(params: Vec<Param>, shape: DataShape) -> Result<(), String> {
        Hyper::parse(&params)?;
        if !shape.has_labels {
            return Err("linreg needs a target value per row (label column: use --label-col last)".into());
        }
        if shape.cols == 0 {
            return Err("linreg needs at least one feature column".into());
        }
        Ok(())
    }

    fn plan_sample(_params: Vec<Param>, _shape: DataShape) -> Result<SamplePlan, String> {
        // The initial model is all zeros: no rows needed.
        Ok(SamplePlan::Head(0))
    }

    fn init(params: Vec<Param>, shape: DataShape, _sample: Sample, start: Vec<f64>) -> Result<Vec<f64>, String> {
        Self::validate(params, shape)?;
        let len = shape.cols as usize + 1;
        if start.is_empty() {
            return Ok(vec![0.0; len]);
        }
        check_len("the starting model", start.len(), len)?;
        Ok(start)
    }

    fn update(params: Vec<Param>, shape: DataShape, model: Vec<f64>, total: Vec<f64>) -> Result<UpdateResult, String> {
        let h = Hyper::parse(&params)?;
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

    fn describe(_params: Vec<Param>, shape: DataShape, model: Vec<f64>) -> Result<Vec<ModelField>, String> {
        let d = shape.cols as usize;
        check_len("the model", model.len(), d + 1)?;
        Ok(vec![
            ModelField { name: "weights".into(), shape: vec![d as u32], values: model[..d].to_vec() },
            ModelField { name: "intercept".into(), shape: vec![], values: vec![model[d]] },
        ])
    }
}

/// One inner worker's rows, resident for the whole job.
struct LinRegShard {
    cols: usize,
    rows: RefCell<(Vec<f32>, Vec<f32>)>,
}

impl GuestShard for LinRegShard {
    fn new(shape: DataShape, rows: u64) -> Self {
        // `rows` is a capacity hint: reserving once keeps the outgrown copies of a growing
        // Vec from staying resident in the instance's linear memory.
        let cols = shape.cols as usize;
        let n = rows as usize;
        LinRegShard { cols, rows: RefCell::new((Vec::with_capacity(n * cols), Vec::with_capacity(n))) }
    }

    fn append(&self, features: Vec<f32>, labels: Vec<f32>) -> Result<(), String> {
        if self.cols == 0 || !features.len().is_multiple_of(self.cols) || features.len() / self.cols != labels.len() {
            return Err(format!(
                "{} features and {} labels do not form rows of {} columns",
                features.len(),
                labels.len(),
                self.cols
            ));
        }
        let mut rows = self.rows.borrow_mut();
        rows.0.extend_from_slice(&features);
        rows.1.extend_from_slice(&labels);
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows.borrow().1.len() as u64
    }

    fn step(&self, model: Vec<f64>) -> Result<Vec<f64>, String> {
        let d = self.cols;
        check_len("the model", model.len(), d + 1)?;
        let (w, b) = (&model[..d], model[d]);
        let mut partial = vec![0.0; d + 3];
        let rows = self.rows.borrow();
        for (x, &y) in rows.0.chunks_exact(d).zip(&rows.1) {
            let r = x.iter().zip(w).map(|(&xi, wi)| xi as f64 * wi).sum::<f64>() + b - y as f64;
            for (p, &xi) in partial[..d].iter_mut().zip(x) {
                *p += r * xi as f64;
            }
            partial[d] += r;
            partial[d + 1] += r * r;
        }
        partial[d + 2] = rows.1.len() as f64;
        Ok(partial)
    }

    fn assignments(&self) -> Vec<u32> {
        Vec::new()
    }
}

export!(LinReg);
