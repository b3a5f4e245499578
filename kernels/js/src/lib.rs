//! The builtin kernels' math ([`ifp_kernel_math`]) for JavaScript, through wasm-bindgen:
//! [`fit`] runs a whole job (validate, sample, init, then step/update until converged or
//! `max_iter`) on one shard in the calling thread, with the same loop and the same
//! stopping rule as the ifp host, so a job gives the same model in Node.js, in a browser and
//! in `ifp run`. Built for `wasm32-unknown-unknown` (see README.md).

use ifp_kernel_math::{Algorithm, DataShape, KMeans, LogReg, ModelField, SamplePlan, Shard};
use wasm_bindgen::prelude::*;

/// A finished job: the model's named arrays, the per-iteration losses and, for algorithms
/// that have them, every row's assignment under the final model.
#[wasm_bindgen]
pub struct Fit {
    algorithm: String,
    iterations: u32,
    converged: bool,
    losses: Vec<f64>,
    fields: Vec<ModelField>,
    assignments: Vec<u32>,
}

#[wasm_bindgen]
impl Fit {
    #[wasm_bindgen(getter)]
    pub fn algorithm(&self) -> String {
        self.algorithm.clone()
    }
    #[wasm_bindgen(getter)]
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
    #[wasm_bindgen(getter)]
    pub fn converged(&self) -> bool {
        self.converged
    }
    /// The loss of the model entering each iteration (inertia for k-means).
    #[wasm_bindgen(getter)]
    pub fn losses(&self) -> Vec<f64> {
        self.losses.clone()
    }
    /// Every row's assignment (cluster for k-means; empty for algorithms without one).
    #[wasm_bindgen(getter)]
    pub fn assignments(&self) -> Vec<u32> {
        self.assignments.clone()
    }
    /// The names of the model's arrays (e.g. `centroids`, `counts`, `inertia`).
    #[wasm_bindgen(js_name = fieldNames)]
    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }
    /// One array of the model, row-major (undefined if there is none by that name).
    pub fn field(&self, name: &str) -> Option<Vec<f64>> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.values.clone())
    }
    /// Its shape: `[]` scalar, `[n]` vector, `[rows, cols]` matrix.
    #[wasm_bindgen(js_name = fieldShape)]
    pub fn field_shape(&self, name: &str) -> Option<Vec<u32>> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.shape.clone())
    }
}

/// Runs `algorithm` (`kmeans` or `logreg`) on `features` (row-major, `cols` per row) and
/// `labels` (one per row, or empty). `params` alternates names and values (`["k", "4",
/// "init", "first"]`); `start` is a starting model (k-means centroids) or empty.
#[wasm_bindgen]
pub fn fit(
    algorithm: &str,
    params: Vec<String>,
    cols: u32,
    features: &[f32],
    labels: &[f32],
    start: &[f64],
    max_iter: u32,
) -> Result<Fit, JsError> {
    if !params.len().is_multiple_of(2) {
        return Err(JsError::new(&format!("params must alternate names and values, got {} strings", params.len())));
    }
    let params: Vec<(String, String)> = params.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    let r = match algorithm {
        "kmeans" => fit_with::<KMeans>(&params, cols, features, labels, start, max_iter),
        "logreg" => fit_with::<LogReg>(&params, cols, features, labels, start, max_iter),
        other => Err(format!("unknown algorithm '{other}' (expected kmeans or logreg)")),
    };
    r.map_err(|e| JsError::new(&e))
}

/// The job loop of the ifp host (`ifp_host::function`), on a single shard.
pub fn fit_with<A: Algorithm>(
    params: &[(String, String)],
    cols: u32,
    features: &[f32],
    labels: &[f32],
    start: &[f64],
    max_iter: u32,
) -> Result<Fit, String> {
    if cols == 0 || !features.len().is_multiple_of(cols as usize) {
        return Err(format!("{} feature values do not form rows of {cols} columns", features.len()));
    }
    if max_iter == 0 {
        return Err("max_iter must be at least 1, got 0".into());
    }
    let rows = features.len() / cols as usize;
    let shape = DataShape { cols, has_labels: !labels.is_empty(), total_rows: rows as u64 };
    A::validate(params, shape)?;
    let plan = if start.is_empty() { A::plan_sample(params, shape)? } else { SamplePlan::Head(0) };
    let indices: Vec<u64> = match plan {
        SamplePlan::Head(n) => (0..n.min(rows as u64)).collect(),
        SamplePlan::Uniform { count, seed } => {
            ifp_kernel_math::rng::sample_indices(rows as u64, count.min(rows as u64), seed)
        }
    };
    let c = cols as usize;
    let sample_x: Vec<f32> =
        indices.iter().flat_map(|&i| &features[i as usize * c..(i as usize + 1) * c]).copied().collect();
    let sample_y: Vec<f32> =
        if labels.is_empty() { Vec::new() } else { indices.iter().map(|&i| labels[i as usize]).collect() };
    let mut model = A::init(params, shape, &sample_x, &sample_y, start)?;
    let mut shard = A::new_shard(shape);
    shard.append(features, labels)?;
    let (mut losses, mut converged) = (Vec::new(), false);
    for _ in 0..max_iter {
        let partial = shard.step(&model)?;
        let u = A::update(params, shape, &model, &partial)?;
        model = u.model;
        losses.push(u.loss);
        if u.converged {
            converged = true;
            break;
        }
    }
    // Assign every row under the final model, as the host does for --labels-out.
    shard.step(&model)?;
    Ok(Fit {
        algorithm: A::NAME.to_string(),
        iterations: losses.len() as u32,
        converged,
        losses,
        fields: A::describe(params, shape, &model)?,
        assignments: shard.assignments(),
    })
}
