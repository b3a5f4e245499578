//! The numerical core of the builtin ifp kernels.
//!
//! Every algorithm here has the shape the `ifp:kernel` contract (see `wit/`) requires:
//! a resident [`Shard`] whose [`Shard::step`] returns additive statistics, and an
//! [`Algorithm::update`] that turns their sum into the next model. The guest crates in
//! `kernels/kmeans` and `kernels/logreg` wrap this code as WebAssembly components; the host
//! and the benchmarks also use it natively, so wasm and native run the very same source.
//!
//! Hot loops are written against [`simd`]'s vector types (wasm SIMD128 on wasm32, portable
//! arrays elsewhere); statistics are accumulated in `f64` whatever the input precision.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod batch;
pub mod csr;
pub mod kmeans;
pub mod logreg;
pub mod params;
pub mod rng;
pub mod simd;

pub use kmeans::KMeans;
pub use logreg::LogReg;

/// The shape of the data a job runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataShape {
    /// Feature columns (labels excluded).
    pub cols: u32,
    /// Whether each row carries a label.
    pub has_labels: bool,
    /// Rows in the whole data set, over all functions.
    pub total_rows: u64,
}

/// Which rows `init` needs (mirrors the WIT `sample-plan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplePlan {
    /// The first `n` rows.
    Head(u64),
    /// `count` rows drawn uniformly without replacement with `seed`, in row order.
    Uniform { count: u64, seed: u64 },
}

/// The result of one [`Algorithm::update`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateResult {
    pub model: Vec<f64>,
    pub loss: f64,
    pub converged: bool,
}

/// The lengths of a job's models and partials (mirrors the WIT `model-sizes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub model: u32,
    pub partial: u32,
}

impl Sizes {
    /// Checked: a length must fit the contract's `u32`.
    pub fn of(model: usize, partial: usize) -> Result<Self, String> {
        let fit =
            |what: &str, n: usize| u32::try_from(n).map_err(|_| format!("the {what} would have {n} values: too many"));
        Ok(Self { model: fit("model", model)?, partial: fit("partial", partial)? })
    }
}

/// Mini-batch iterations (mirrors the WIT `batch-plan`; see [`batch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    pub size: u64,
    pub seed: u64,
}

/// How a classifier does on the rows of one class (mirrors the WIT `class-count`): `rows`
/// labelled with the class, `correct` of them predicted as it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    pub rows: u64,
    pub correct: u64,
}

/// One named array of a model (mirrors the WIT `model-field`).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelField {
    pub name: String,
    pub shape: Vec<u32>,
    pub values: Vec<f64>,
}

/// A parameter as the user gave it: kebab-case name and textual value.
pub type Param = (String, String);

/// An algorithm in the map → sum → update shape. Errors are one readable line.
pub trait Algorithm {
    type Shard: Shard;
    /// Name used on the command line and in reports.
    const NAME: &'static str;
    fn validate(params: &[Param], shape: DataShape) -> Result<(), String>;
    fn plan_sample(params: &[Param], shape: DataShape) -> Result<SamplePlan, String>;
    fn init(
        params: &[Param],
        shape: DataShape,
        sample_features: &[f32],
        sample_labels: &[f32],
        start: &[f64],
    ) -> Result<Vec<f64>, String>;
    /// The lengths of the models and partials `params` give on data of `shape`.
    fn sizes(params: &[Param], shape: DataShape) -> Result<Sizes, String>;
    /// Mini-batch iterations, if the parameters ask for them (default: full batch).
    fn plan_batches(params: &[Param], shape: DataShape) -> Result<Option<BatchPlan>, String> {
        Self::validate(params, shape).map(|_| None)
    }
    fn update(params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, String>;
    fn describe(params: &[Param], shape: DataShape, model: &[f64]) -> Result<Vec<ModelField>, String>;
    fn new_shard(shape: DataShape) -> Self::Shard;
}

/// One worker's resident slice of the data.
pub trait Shard {
    /// Pre-allocates room for `rows` more rows (the WIT constructor's capacity hint).
    fn reserve(&mut self, rows: usize) {
        let _ = rows;
    }
    /// Gives the shard the job's parameters (contract 0.2.0 passes them to the shard's
    /// constructor), so that it knows the model's layout up front instead of inferring it.
    fn configure(&mut self, params: &[Param]) -> Result<(), String> {
        let _ = params;
        Ok(())
    }
    fn append(&mut self, features: &[f32], labels: &[f32]) -> Result<(), String>;
    /// Appends rows in CSR form (the contract's optional `sparse` interface): row `r`'s
    /// non-zeros are `indices[offsets[r]..offsets[r + 1]]` with the same range of `values`;
    /// one label per row as in [`Shard::append`]. Algorithms without sparse rows refuse them.
    fn append_sparse(
        &mut self,
        offsets: &[u32],
        indices: &[u32],
        values: &[f32],
        labels: &[f32],
    ) -> Result<(), String> {
        let _ = (offsets, indices, values, labels);
        Err("this kernel takes dense rows only (no sparse rows)".into())
    }
    fn rows(&self) -> u64;
    fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, String>;
    /// The partial of the shard's rows `rows` (indices into the shard, ascending) only: one
    /// mini-batch iteration. Algorithms without mini-batches refuse it.
    fn step_batch(&mut self, model: &[f64], rows: &[u32]) -> Result<Vec<f64>, String> {
        let _ = (model, rows);
        Err("this algorithm has no mini-batch step".into())
    }
    fn assignments(&self) -> Vec<u32>;
    /// How `model` classifies the shard's rows, one count per class (empty: not a classifier).
    fn score(&mut self, model: &[f64]) -> Result<Vec<ClassCount>, String> {
        let _ = model;
        Ok(Vec::new())
    }
}

/// Checks that `features`/`labels` hold whole rows of `shape`; returns the row count.
pub(crate) fn check_chunk(shape: DataShape, features: &[f32], labels: &[f32]) -> Result<usize, String> {
    let cols = shape.cols as usize;
    if cols == 0 {
        return Err("the data has no feature columns".into());
    }
    if !features.len().is_multiple_of(cols) {
        return Err(format!("{} feature values do not form whole rows of {cols} columns", features.len()));
    }
    let n = features.len() / cols;
    let want = if shape.has_labels { n } else { 0 };
    if labels.len() != want {
        return Err(format!("{} labels given for {n} rows (expected {want})", labels.len()));
    }
    Ok(n)
}

/// Checks that a model or partial has the expected length.
pub(crate) fn check_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!("{what} has {got} values, expected {want}"));
    }
    Ok(())
}
