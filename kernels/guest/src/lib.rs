//! Glue between the `ifp:kernel` WIT world and a native [`Algorithm`]: [`Kernel<A>`]
//! implements the generated guest traits for any algorithm, so a kernel crate is one line.
//! Every kernel built with it exports the optional `sparse` interface too (world
//! `sparse-kernel`): an algorithm whose shard has no [`Shard::append_sparse`] refuses sparse
//! rows with its default error.
//!
//! ```ignore
//! type Component = ifp_kernel_guest::Kernel<ifp_kernel_math::KMeans>;
//! ifp_kernel_guest::export!(Component with_types_in ifp_kernel_guest);
//! ```

use std::cell::RefCell;
use std::marker::PhantomData;

use ifp_kernel_math::{Algorithm, DataShape, SamplePlan, Shard};

wit_bindgen::generate!({
    world: "sparse-kernel",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export",
});

use exports::ifp::kernel::algorithm as wit;
use exports::ifp::kernel::sparse as wit_sparse;

/// The component type for algorithm `A`.
pub struct Kernel<A>(PhantomData<A>);

/// The `shard` resource for algorithm `A`.
pub struct KernelShard<A: Algorithm>(RefCell<A::Shard>, Option<String>);

fn shape(s: wit::DataShape) -> DataShape {
    DataShape { cols: s.cols, has_labels: s.has_labels, total_rows: s.total_rows }
}

impl<A: Algorithm + 'static> wit::Guest for Kernel<A> {
    type Shard = KernelShard<A>;

    fn name() -> String {
        A::NAME.to_string()
    }

    fn validate(params: Vec<wit::Param>, s: wit::DataShape) -> Result<(), String> {
        A::validate(&params, shape(s))
    }

    fn plan_sample(params: Vec<wit::Param>, s: wit::DataShape) -> Result<wit::SamplePlan, String> {
        Ok(match A::plan_sample(&params, shape(s))? {
            SamplePlan::Head(n) => wit::SamplePlan::Head(n),
            SamplePlan::Uniform { count, seed } => wit::SamplePlan::Uniform(wit::UniformSample { count, seed }),
        })
    }

    fn init(
        params: Vec<wit::Param>,
        s: wit::DataShape,
        sample: wit::Sample,
        start: Vec<f64>,
    ) -> Result<Vec<f64>, String> {
        A::init(&params, shape(s), &sample.features, &sample.labels, &start)
    }

    fn sizes(params: Vec<wit::Param>, s: wit::DataShape) -> Result<wit::ModelSizes, String> {
        let z = A::sizes(&params, shape(s))?;
        Ok(wit::ModelSizes { model: z.model, partial: z.partial })
    }

    fn plan_batches(params: Vec<wit::Param>, s: wit::DataShape) -> Result<Option<wit::BatchPlan>, String> {
        Ok(A::plan_batches(&params, shape(s))?.map(|b| wit::BatchPlan { size: b.size, seed: b.seed }))
    }

    fn update(
        params: Vec<wit::Param>,
        s: wit::DataShape,
        model: Vec<f64>,
        total: Vec<f64>,
    ) -> Result<wit::UpdateResult, String> {
        let u = A::update(&params, shape(s), &model, &total)?;
        Ok(wit::UpdateResult { model: u.model, loss: u.loss, converged: u.converged })
    }

    fn describe(params: Vec<wit::Param>, s: wit::DataShape, model: Vec<f64>) -> Result<Vec<wit::ModelField>, String> {
        Ok(A::describe(&params, shape(s), &model)?
            .into_iter()
            .map(|f| wit::ModelField { name: f.name, shape: f.shape, values: f.values })
            .collect())
    }
}

impl<A: Algorithm + 'static> wit::GuestShard for KernelShard<A> {
    fn new(params: Vec<wit::Param>, s: wit::DataShape, rows: u64) -> Self {
        let mut shard = A::new_shard(shape(s));
        shard.reserve(rows as usize);
        // The host validated the parameters before making shards; a failure here resurfaces
        // on the first append.
        let configured = shard.configure(&params);
        Self(RefCell::new(shard), configured.err())
    }
    fn append(&self, features: Vec<f32>, labels: Vec<f32>) -> Result<(), String> {
        if let Some(e) = &self.1 {
            return Err(e.clone());
        }
        self.0.borrow_mut().append(&features, &labels)
    }
    fn rows(&self) -> u64 {
        self.0.borrow().rows()
    }
    fn step(&self, model: Vec<f64>) -> Result<Vec<f64>, String> {
        self.0.borrow_mut().step(&model)
    }
    fn step_batch(&self, model: Vec<f64>, rows: Vec<u32>) -> Result<Vec<f64>, String> {
        self.0.borrow_mut().step_batch(&model, &rows)
    }
    fn assignments(&self) -> Vec<u32> {
        self.0.borrow().assignments()
    }
    fn score(&self, model: Vec<f64>) -> Result<Vec<wit::ClassCount>, String> {
        let counts = self.0.borrow_mut().score(&model)?;
        Ok(counts.into_iter().map(|c| wit::ClassCount { rows: c.rows, correct: c.correct }).collect())
    }
}

impl<A: Algorithm + 'static> wit_sparse::Guest for Kernel<A> {
    fn append_sparse(
        target: wit::ShardBorrow<'_>,
        rows: wit_sparse::SparseRows,
        labels: Vec<f32>,
    ) -> Result<(), String> {
        let shard = target.get::<KernelShard<A>>();
        if let Some(e) = &shard.1 {
            return Err(e.clone());
        }
        shard.0.borrow_mut().append_sparse(&rows.offsets, &rows.indices, &rows.values, &labels)
    }
}
