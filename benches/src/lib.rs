//! Shared fixtures for the criterion suites in `benches/`: seeded synthetic data (Gaussian-ish
//! blobs for k-means, a labelled linear problem for logistic regression), the models the
//! kernels start from, and helpers that load the same rows into a wasm instance or a native
//! shard, so every suite measures the same work.

use std::sync::Arc;

use ifp_host::data::{Data, Rows};
use ifp_host::function::{Function, JobSpec};
use ifp_host::kernel::{DataShape, KernelEngine, KernelInstance, ShardHandle};
use ifp_host::{Param, Sandbox};
use ifp_kernel_math::rng::SplitMix64;
use ifp_kernel_math::{Algorithm, Shard};

/// Which builtin kernel a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    KMeans,
    LogReg,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::KMeans => "kmeans",
            Kind::LogReg => "logreg",
        }
    }
}

/// One benchmark case: a data set and the model one step runs under.
pub struct Case {
    pub kind: Kind,
    pub rows: Arc<Rows>,
    pub k: usize,
    pub params: Vec<Param>,
    pub model: Vec<f64>,
}

impl Case {
    /// `n × d` rows; for k-means `k` blobs (centres uniform in ±10, uniform noise of unit
    /// variance) and the first `k` rows as centroids; for logreg labels from a random linear
    /// model and a small non-zero starting model.
    pub fn new(kind: Kind, n: usize, d: usize, k: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut u = move || rng.next_f64();
        let mut features = Vec::with_capacity(n * d);
        let mut labels = Vec::new();
        match kind {
            Kind::KMeans => {
                let centres: Vec<f64> = (0..k * d).map(|_| u() * 20.0 - 10.0).collect();
                for _ in 0..n {
                    let c = ((u() * k as f64) as usize).min(k - 1);
                    // Sum of two uniforms, scaled to unit variance: cheap and bell-shaped.
                    features.extend((0..d).map(|i| (centres[c * d + i] + (u() + u() - 1.0) * 2.449) as f32));
                }
            }
            Kind::LogReg => {
                let w: Vec<f64> = (0..d).map(|_| u() * 2.0 - 1.0).collect();
                labels.reserve(n);
                for _ in 0..n {
                    let mut z = 0.5;
                    for wi in &w {
                        let x = (u() + u() - 1.0) * 2.449;
                        z += wi * x;
                        features.push(x as f32);
                    }
                    labels.push(if u() < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 });
                }
            }
        }
        let rows = Rows { cols: d, features, labels };
        let (params, model) = match kind {
            Kind::KMeans => {
                // Lloyd (algorithm code 0 after the centroids): every step scores every row,
                // as it must for a per-step timing; Hamerly would skip most rows of a repeat.
                let p = vec![
                    ("k".to_string(), k.to_string()),
                    ("init".to_string(), "first".to_string()),
                    ("algorithm".to_string(), "lloyd".to_string()),
                ];
                (p, rows.features[..k * d].iter().map(|&v| v as f64).chain([0.0]).collect())
            }
            Kind::LogReg => {
                let p = vec![("learning-rate".to_string(), "0.1".to_string())];
                let mut m: Vec<f64> = (0..d).map(|j| 0.01 * (j as f64 - d as f64 / 2.0)).collect();
                m.extend([0.1, f64::NAN]);
                (p, m)
            }
        };
        Self { kind, rows: Arc::new(rows), k, params, model }
    }

    pub fn shape(&self) -> DataShape {
        DataShape {
            cols: self.rows.cols as u32,
            has_labels: self.rows.has_labels(),
            total_rows: self.rows.len() as u64,
        }
    }

    fn math_shape(&self) -> ifp_kernel_math::DataShape {
        let s = self.shape();
        ifp_kernel_math::DataShape { cols: s.cols, has_labels: s.has_labels, total_rows: s.total_rows }
    }

    /// `n × d` (× `k` for k-means): the parameter label of a case.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::KMeans => format!("{}x{}xk{}", self.rows.len(), self.rows.cols, self.k),
            Kind::LogReg => format!("{}x{}", self.rows.len(), self.rows.cols),
        }
    }

    /// The builtin kernel compiled for this process.
    pub fn engine(&self) -> KernelEngine {
        KernelEngine::builtin(self.kind.name(), Sandbox::default()).expect("builtin kernel")
    }

    /// One wasm instance holding every row of the case.
    pub fn wasm_shard(&self, engine: &KernelEngine) -> (KernelInstance, ShardHandle) {
        let mut inst = engine.instantiate().expect("instantiate");
        let shard = inst.new_shard(&self.params, self.shape(), self.rows.len() as u64).expect("shard");
        let chunk = 1 << 15;
        for start in (0..self.rows.len()).step_by(chunk) {
            let (f, l) = self.rows.slice(start..(start + chunk).min(self.rows.len()));
            inst.append(shard, f, l).expect("append");
        }
        (inst, shard)
    }

    /// The native build of the same kernel holding every row of the case.
    pub fn native_shard(&self) -> Box<dyn Shard> {
        let (f, l) = self.rows.slice(0..self.rows.len());
        let mut s: Box<dyn Shard> = match self.kind {
            Kind::KMeans => Box::new(ifp_kernel_math::KMeans::new_shard(self.math_shape())),
            Kind::LogReg => Box::new(ifp_kernel_math::LogReg::new_shard(self.math_shape())),
        };
        s.append(f, l).expect("append");
        s
    }

    /// One function (one worker of one) with `inner` inner workers over every row.
    pub fn function(&self, engine: &KernelEngine, inner: usize) -> Function {
        let spec = Arc::new(JobSpec {
            job: "bench".into(),
            params: self.params.clone(),
            shape: self.shape(),
            max_iter: 1,
            functions: 1,
            staleness: 0,
        });
        let n = self.rows.len() as u64;
        Function::load(engine, spec, 0, inner as u32, &Data::Memory(self.rows.clone()), 0..n, None)
            .expect("load function")
    }
}

/// Inner-worker counts to sweep: 1, 2, 4, … up to the machine's available parallelism.
pub fn inner_counts() -> Vec<usize> {
    let max = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |&m| Some(m * 2)).take_while(|&m| m < max).collect();
    v.push(max);
    v
}
