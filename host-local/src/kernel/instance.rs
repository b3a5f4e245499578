//! Compiling and running a kernel: one shared [`KernelEngine`] (engine, compiled component,
//! linker, `InstancePre`) per process, one [`KernelInstance`] (its own `Store`) per inner
//! worker, and the [`KernelError`] every failing call is reported as.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wasmtime::component::{Component, InstancePre, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store};

use super::bindings::exports::ifp::kernel::{algorithm as v2, sparse as v2_sparse};
use super::bindings_v1::exports::ifp::kernel::algorithm as v1;
use super::bindings_v1::{Kernel as KernelV1, KernelPre as KernelPreV1};
use super::sandbox::{call_deadline, describe, new_store, start_ticker};
use super::{
    contract_of, sha256_hex, BatchPlan, ClassCount, ContractVersion, DataShape, HostState, KernelBytes, KernelSource,
    LoadError, ModelField, ModelSizes, Param, RemoteKernels, Sample, SamplePlan, Sandbox, SparseRows, UniformSample,
    UpdateResult, SPARSE_INTERFACE,
};

/// An error raised by a kernel: a returned `Err`, a trap, a deadline or a memory cap.
#[derive(Debug, thiserror::Error)]
#[error("kernel '{kernel}' failed in {function}: {message}")]
pub struct KernelError {
    pub kernel: String,
    pub function: &'static str,
    pub message: String,
}

/// A linked component, of one contract version or the other; a 0.2.0 one with the optional
/// `sparse` interface or without.
enum Pre {
    V0_2 { pre: InstancePre<HostState>, algorithm: v2::GuestIndices, sparse: Option<v2_sparse::GuestIndices> },
    V0_1(KernelPreV1<HostState>),
}

/// The engine and the compiled kernel, shared by every inner worker of a process.
pub struct KernelEngine {
    label: String,
    /// SHA-256 of the component, when known (not for an engine made from precompiled bytes
    /// alone; a [`KernelCache`](super::KernelCache) sets it for the engines it deserializes).
    pub(super) sha256: Option<String>,
    engine: Engine,
    component: Component,
    pre: Pre,
    sandbox: Sandbox,
    ticker: Option<Arc<AtomicBool>>,
}

impl KernelEngine {
    /// The wasmtime configuration every kernel runs under.
    pub fn config(sandbox: &Sandbox) -> Config {
        let mut c = Config::new();
        c.wasm_component_model(true)
            .wasm_simd(true)
            .wasm_relaxed_simd(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .epoch_interruption(sandbox.call_timeout.is_some());
        // `IFP_PERFMAP=1`: write /tmp/perf-PID.map, so that `perf record` / `perf report` name
        // the kernels' compiled functions (for profiling a kernel; costs nothing otherwise).
        if std::env::var_os("IFP_PERFMAP").is_some_and(|v| v == "1") {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        c
    }

    /// Compiles `bytes` (a component, or a component precompiled by
    /// [`KernelEngine::precompile`] with the same configuration) and links it.
    /// `label` names the kernel in errors (a builtin name or a file).
    pub fn new(label: &str, bytes: &[u8], sandbox: Sandbox) -> Result<Self, LoadError> {
        let engine = Engine::new(&Self::config(&sandbox)).map_err(LoadError::engine)?;
        let not_component = |message: String| LoadError::NotComponent { kernel: label.to_string(), message };
        let precompiled = wasmtime::Engine::detect_precompiled(bytes).is_some();
        let component = if precompiled {
            // SAFETY: precompiled artifacts are only produced by `precompile` from this
            // binary's own configuration and stored where only this tool writes.
            unsafe { Component::deserialize(&engine, bytes) }
                .map_err(|e| not_component(format!("a precompiled artifact this build cannot load: {e}")))?
        } else {
            if bytes.starts_with(b"\0asm\x01\0\0\0") {
                return Err(not_component(
                    "it is a core wasm module; build a component (target wasm32-wasip2, or `wasm-tools component new`)"
                        .into(),
                ));
            }
            Component::new(&engine, bytes).map_err(|e| not_component(e.to_string()))?
        };
        let mut k = Self::from_component(label, engine, component, sandbox)?;
        if !precompiled {
            k.sha256 = Some(sha256_hex(bytes));
        }
        Ok(k)
    }

    /// Compiles a component read by [`KernelSource::read`] (its hash is kept).
    pub fn compile(k: &KernelBytes, sandbox: Sandbox) -> Result<Self, LoadError> {
        Self::new(&k.label, &k.bytes, sandbox)
    }

    /// Loads a kernel from `source`; `remote` reads `scheme://` URIs.
    pub fn load(
        source: &KernelSource,
        sandbox: Sandbox,
        remote: Option<&dyn RemoteKernels>,
    ) -> Result<Self, LoadError> {
        Self::compile(&source.read(remote)?, sandbox)
    }

    /// Loads a kernel component from a file.
    pub fn from_file(path: &Path, sandbox: Sandbox) -> Result<Self, LoadError> {
        Self::load(&KernelSource::File(path.to_path_buf()), sandbox, None)
    }

    /// Loads the builtin kernel `name`.
    pub fn builtin(name: &str, sandbox: Sandbox) -> Result<Self, LoadError> {
        Self::load(&KernelSource::Builtin(name.to_string()), sandbox, None)
    }

    /// Compiles a component ahead of time; the result loads with [`KernelEngine::new`] in
    /// a fraction of the compile time.
    pub fn precompile(bytes: &[u8], sandbox: &Sandbox) -> Result<Vec<u8>, LoadError> {
        let engine = Engine::new(&Self::config(sandbox)).map_err(LoadError::engine)?;
        engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::NotComponent { kernel: "(precompiling)".into(), message: e.to_string() })
    }

    fn from_component(label: &str, engine: Engine, component: Component, sandbox: Sandbox) -> Result<Self, LoadError> {
        let (version, missing) = contract_of(&engine, &component);
        if !missing.is_empty() {
            return Err(LoadError::WrongWorld { kernel: label.to_string(), missing });
        }
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(LoadError::engine)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports { kernel: label.to_string(), message: format!("{e:#}") })?;
        let wrong_types = |e: wasmtime::Error| LoadError::WrongWorld {
            kernel: label.to_string(),
            missing: vec![format!("{} with the contract's types ({e:#})", version.interface())],
        };
        let pre = match version {
            ContractVersion::V0_2 => {
                let algorithm = v2::GuestIndices::new(&pre).map_err(wrong_types)?;
                // Absent, the kernel takes dense rows only; present, it must have the right types.
                let sparse = match component.component_type().get_export(&engine, SPARSE_INTERFACE) {
                    None => None,
                    Some(_) => Some(v2_sparse::GuestIndices::new(&pre).map_err(|e| LoadError::WrongWorld {
                        kernel: label.to_string(),
                        missing: vec![format!("{SPARSE_INTERFACE} with the contract's types ({e:#})")],
                    })?),
                };
                Pre::V0_2 { pre, algorithm, sparse }
            }
            ContractVersion::V0_1 => Pre::V0_1(KernelPreV1::new(pre).map_err(wrong_types)?),
        };
        let ticker = sandbox.call_timeout.map(|_| start_ticker(&engine));
        Ok(Self { label: label.to_string(), sha256: None, engine, component, pre, sandbox, ticker })
    }

    /// The contract version the kernel implements.
    pub fn version(&self) -> ContractVersion {
        match self.pre {
            Pre::V0_2 { .. } => ContractVersion::V0_2,
            Pre::V0_1(_) => ContractVersion::V0_1,
        }
    }

    /// Whether the kernel exports the optional `sparse` interface (takes rows in CSR form).
    pub fn takes_sparse(&self) -> bool {
        matches!(self.pre, Pre::V0_2 { sparse: Some(_), .. })
    }

    /// The kernel's name in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// SHA-256 of the component (lowercase hex), when it was compiled from its bytes here or
    /// loaded through a [`KernelCache`](super::KernelCache).
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// The sandbox it runs under.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The compiled kernel, for [`KernelEngine::new`] in another process of this build.
    pub fn serialize(&self) -> Result<Vec<u8>, LoadError> {
        self.component.serialize().map_err(LoadError::engine)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh instance with its own store.
    pub fn instantiate(&self) -> Result<KernelInstance, KernelError> {
        let mut store = new_store(&self.engine, &self.sandbox);
        let deadline = call_deadline(&self.sandbox);
        let kernel = match &self.pre {
            Pre::V0_2 { pre, algorithm, sparse } => pre.instantiate(&mut store).and_then(|i| {
                let algorithm = algorithm.load(&mut store, &i)?;
                let sparse = sparse.as_ref().map(|s| s.load(&mut store, &i)).transpose()?;
                Ok(Bound::V0_2 { algorithm, sparse })
            }),
            Pre::V0_1(p) => p.instantiate(&mut store).map(Bound::V0_1),
        };
        let kernel = kernel.map_err(|e| KernelError {
            kernel: self.label.clone(),
            function: "instantiate",
            message: describe(e, &store),
        })?;
        Ok(KernelInstance { label: self.label.clone(), store, kernel, deadline })
    }
}

impl Drop for KernelEngine {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.store(true, Ordering::Relaxed);
        }
    }
}

/// One instance of a kernel, owned by one inner worker (or used for init and update).
pub struct KernelInstance {
    label: String,
    store: Store<HostState>,
    kernel: Bound,
    deadline: Option<u64>,
}

/// An instance's exports, of one contract version or the other.
enum Bound {
    V0_2 { algorithm: v2::Guest, sparse: Option<v2_sparse::Guest> },
    V0_1(KernelV1),
}

/// A shard resource living in one [`KernelInstance`].
#[derive(Clone, Copy)]
pub struct ShardHandle(ResourceAny);

/// Calls into the kernel with the store's deadline set, turning a trap into a
/// [`KernelError`]: `$v2` runs against a 0.2.0 kernel, `$v1` against a 0.1.0 one (with the
/// records converted both ways).
macro_rules! call {
    ($self:ident, $fname:literal, |$g:ident, $s:ident| $v2:expr, $v1:expr) => {{
        if let Some(d) = $self.deadline {
            $self.store.set_epoch_deadline(d);
        }
        let $s = &mut $self.store;
        let r = match &$self.kernel {
            Bound::V0_2 { algorithm, .. } => {
                let $g = algorithm;
                $v2
            }
            Bound::V0_1(k) => {
                let $g = k.ifp_kernel_algorithm();
                let _ = &$g; // unused where 0.1.0 has no such call
                $v1
            }
        };
        let label = $self.label.clone();
        let err = |message: String| KernelError { kernel: label.clone(), function: $fname, message };
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(err(describe(e, &$self.store))),
        }
    }};
}

/// The 0.1.0 contract's records from and to the current ones (the same fields).
fn shape_v1(s: DataShape) -> v1::DataShape {
    v1::DataShape { cols: s.cols, has_labels: s.has_labels, total_rows: s.total_rows }
}

fn plan_from_v1(p: v1::SamplePlan) -> SamplePlan {
    match p {
        v1::SamplePlan::Head(n) => SamplePlan::Head(n),
        v1::SamplePlan::Uniform(u) => SamplePlan::Uniform(UniformSample { count: u.count, seed: u.seed }),
    }
}

fn update_from_v1(u: v1::UpdateResult) -> UpdateResult {
    UpdateResult { model: u.model, loss: u.loss, converged: u.converged }
}

fn field_from_v1(f: v1::ModelField) -> ModelField {
    ModelField { name: f.name, shape: f.shape, values: f.values }
}

impl KernelInstance {
    fn fail(&self, function: &'static str, message: String) -> KernelError {
        KernelError { kernel: self.label.clone(), function, message }
    }

    pub fn name(&mut self) -> Result<String, KernelError> {
        call!(self, "name", |g, s| g.call_name(s), g.call_name(s))
    }

    pub fn validate(&mut self, params: &[Param], shape: DataShape) -> Result<(), KernelError> {
        let r = call!(
            self,
            "validate",
            |g, s| g.call_validate(s, params, shape),
            g.call_validate(s, params, shape_v1(shape))
        )?;
        r.map_err(|m| self.fail("validate", m))
    }

    pub fn plan_sample(&mut self, params: &[Param], shape: DataShape) -> Result<SamplePlan, KernelError> {
        let r = call!(
            self,
            "plan-sample",
            |g, s| g.call_plan_sample(s, params, shape),
            g.call_plan_sample(s, params, shape_v1(shape)).map(|r| r.map(plan_from_v1))
        )?;
        r.map_err(|m| self.fail("plan-sample", m))
    }

    pub fn init(
        &mut self,
        params: &[Param],
        shape: DataShape,
        sample: &Sample,
        start: &[f64],
    ) -> Result<Vec<f64>, KernelError> {
        let r = call!(self, "init", |g, s| g.call_init(s, params, shape, sample, start), {
            let sample = v1::Sample { features: sample.features.clone(), labels: sample.labels.clone() };
            g.call_init(s, params, shape_v1(shape), &sample, start)
        })?;
        r.map_err(|m| self.fail("init", m))
    }

    /// The lengths of the models and partials (None: a 0.1.0 kernel does not say).
    pub fn sizes(&mut self, params: &[Param], shape: DataShape) -> Result<Option<ModelSizes>, KernelError> {
        let r = call!(self, "sizes", |g, s| g.call_sizes(s, params, shape).map(|r| r.map(Some)), Ok(Ok(None)))?;
        r.map_err(|m| self.fail("sizes", m))
    }

    /// Mini-batch iterations, if the kernel asks for them (a 0.1.0 kernel never does).
    pub fn plan_batches(&mut self, params: &[Param], shape: DataShape) -> Result<Option<BatchPlan>, KernelError> {
        let r = call!(self, "plan-batches", |g, s| g.call_plan_batches(s, params, shape), Ok(Ok(None)))?;
        r.map_err(|m| self.fail("plan-batches", m))
    }

    pub fn update(
        &mut self,
        params: &[Param],
        shape: DataShape,
        model: &[f64],
        total: &[f64],
    ) -> Result<UpdateResult, KernelError> {
        let r = call!(
            self,
            "update",
            |g, s| g.call_update(s, params, shape, model, total),
            g.call_update(s, params, shape_v1(shape), model, total).map(|r| r.map(update_from_v1))
        )?;
        r.map_err(|m| self.fail("update", m))
    }

    pub fn describe(
        &mut self,
        params: &[Param],
        shape: DataShape,
        model: &[f64],
    ) -> Result<Vec<ModelField>, KernelError> {
        let r = call!(
            self,
            "describe",
            |g, s| g.call_describe(s, params, shape, model),
            g.call_describe(s, params, shape_v1(shape), model)
                .map(|r| r.map(|fields| fields.into_iter().map(field_from_v1).collect()))
        )?;
        r.map_err(|m| self.fail("describe", m))
    }

    /// A new empty shard for a job with `params`; `rows` is the capacity hint (how many rows
    /// will be appended). A 0.1.0 shard does not take the parameters.
    pub fn new_shard(&mut self, params: &[Param], shape: DataShape, rows: u64) -> Result<ShardHandle, KernelError> {
        call!(
            self,
            "shard constructor",
            |g, s| g.shard().call_constructor(s, params, shape, rows),
            g.shard().call_constructor(s, shape_v1(shape), rows)
        )
        .map(ShardHandle)
    }

    pub fn append(&mut self, shard: ShardHandle, features: &[f32], labels: &[f32]) -> Result<(), KernelError> {
        let r = call!(
            self,
            "shard.append",
            |g, s| g.shard().call_append(s, shard.0, features, labels),
            g.shard().call_append(s, shard.0, features, labels)
        )?;
        r.map_err(|m| self.fail("shard.append", m))
    }

    /// Appends sparse rows (a kernel without the `sparse` interface refuses them).
    pub fn append_sparse(&mut self, shard: ShardHandle, rows: &SparseRows, labels: &[f32]) -> Result<(), KernelError> {
        let Bound::V0_2 { sparse: Some(sparse), .. } = &self.kernel else {
            return Err(self.fail(
                "shard.append-sparse",
                format!("it does not export {SPARSE_INTERFACE}, so it takes dense rows only"),
            ));
        };
        if let Some(d) = self.deadline {
            self.store.set_epoch_deadline(d);
        }
        let r = sparse.call_append_sparse(&mut self.store, shard.0, rows, labels);
        match r {
            Ok(r) => r.map_err(|m| self.fail("shard.append-sparse", m)),
            Err(e) => Err(self.fail("shard.append-sparse", describe(e, &self.store))),
        }
    }

    pub fn rows(&mut self, shard: ShardHandle) -> Result<u64, KernelError> {
        call!(self, "shard.rows", |g, s| g.shard().call_rows(s, shard.0), g.shard().call_rows(s, shard.0))
    }

    pub fn step(&mut self, shard: ShardHandle, model: &[f64]) -> Result<Vec<f64>, KernelError> {
        let r = call!(
            self,
            "shard.step",
            |g, s| g.shard().call_step(s, shard.0, model),
            g.shard().call_step(s, shard.0, model)
        )?;
        r.map_err(|m| self.fail("shard.step", m))
    }

    /// The partial of the shard's rows `rows` (indices into the shard, ascending).
    pub fn step_batch(&mut self, shard: ShardHandle, model: &[f64], rows: &[u32]) -> Result<Vec<f64>, KernelError> {
        let r = call!(
            self,
            "shard.step-batch",
            |g, s| g.shard().call_step_batch(s, shard.0, model, rows),
            Ok(Err("an ifp:kernel@0.1.0 kernel has no mini-batch step".to_string()))
        )?;
        r.map_err(|m| self.fail("shard.step-batch", m))
    }

    pub fn assignments(&mut self, shard: ShardHandle) -> Result<Vec<u32>, KernelError> {
        call!(
            self,
            "shard.assignments",
            |g, s| g.shard().call_assignments(s, shard.0),
            g.shard().call_assignments(s, shard.0)
        )
    }

    /// How `model` classifies the shard's rows, one count per class (empty: not a classifier,
    /// and always for a 0.1.0 kernel, which cannot say).
    pub fn score(&mut self, shard: ShardHandle, model: &[f64]) -> Result<Vec<ClassCount>, KernelError> {
        let r = call!(self, "shard.score", |g, s| g.shard().call_score(s, shard.0, model), Ok(Ok(Vec::new())))?;
        r.map_err(|m| self.fail("shard.score", m))
    }
}
