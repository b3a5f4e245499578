//! Loading kernel components and running them: one shared [`KernelEngine`] (engine,
//! compiled component, linker, `InstancePre`) per process, and one [`KernelInstance`]
//! (its own `Store`) per inner worker.
//!
//! Kernels get a WASI context with nothing in it (no files, sockets, environment, arguments
//! or stdio), an optional memory cap per instance and, when a step deadline is set, an epoch
//! deadline per call. Every error a kernel returns or traps with is reported as a
//! [`KernelError`] naming the kernel and the function.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        world: "kernel",
        path: "../wit",
    });
}

pub use bindings::exports::ifp::kernel::algorithm::{
    DataShape, ModelField, Sample, SamplePlan, UniformSample, UpdateResult,
};
use bindings::{Kernel, KernelPre};

/// A parameter as passed to kernels: `(kebab-case name, value)`.
pub type Param = (String, String);

/// How kernels are sandboxed.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    /// Maximum linear memory per instance, in bytes (`None`: wasmtime's default of 4 GiB).
    pub memory_limit: Option<usize>,
    /// CPU deadline per call into the kernel (`None`: no deadline, no epoch checks).
    pub call_timeout: Option<Duration>,
}

/// Epoch tick used for call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// An error raised by a kernel: a returned `Err`, a trap, a deadline or a memory cap.
#[derive(Debug, thiserror::Error)]
#[error("kernel '{kernel}' failed in {function}: {message}")]
pub struct KernelError {
    pub kernel: String,
    pub function: &'static str,
    pub message: String,
}

/// The engine and the compiled kernel, shared by every inner worker of a process.
pub struct KernelEngine {
    label: String,
    engine: Engine,
    pre: KernelPre<HostState>,
    sandbox: Sandbox,
    ticker: Option<Arc<AtomicBool>>,
}

/// Per-store host state: the (empty) WASI context and the memory limiter.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
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
        c
    }

    /// Compiles `bytes` (a component, or a component precompiled by
    /// [`KernelEngine::precompile`] with the same configuration) and links it.
    /// `label` names the kernel in errors (a builtin name or a file).
    pub fn new(label: &str, bytes: &[u8], sandbox: Sandbox) -> Result<Self> {
        let engine = Engine::new(&Self::config(&sandbox))?;
        let component = if wasmtime::Engine::detect_precompiled(bytes).is_some() {
            // SAFETY: precompiled artifacts are only produced by `precompile` from this
            // binary's own configuration and stored where only this tool writes.
            unsafe { Component::deserialize(&engine, bytes) }
                .map_err(|e| anyhow!("kernel '{label}' is a precompiled artifact this build cannot load: {e}"))?
        } else {
            Component::new(&engine, bytes).map_err(|e| anyhow!("kernel '{label}' is not a valid WebAssembly component: {e}"))?
        };
        Self::from_component(label, engine, component, sandbox)
    }

    /// Loads a kernel component from a file.
    pub fn from_file(path: &Path, sandbox: Sandbox) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read kernel file {}", path.display()))?;
        Self::new(&path.display().to_string(), &bytes, sandbox)
    }

    /// Loads the builtin kernel `name`.
    pub fn builtin(name: &str, sandbox: Sandbox) -> Result<Self> {
        let bytes = ifp_kernels::builtin(name).ok_or_else(|| {
            let names: Vec<_> = ifp_kernels::BUILTIN.iter().map(|(n, _)| *n).collect();
            anyhow!("unknown algorithm '{name}' (builtin: {})", names.join(", "))
        })?;
        Self::new(name, bytes, sandbox)
    }

    /// Compiles a component ahead of time; the result loads with [`KernelEngine::new`] in
    /// a fraction of the compile time.
    pub fn precompile(bytes: &[u8], sandbox: &Sandbox) -> Result<Vec<u8>> {
        Ok(Engine::new(&Self::config(sandbox))?.precompile_component(bytes)?)
    }

    fn from_component(label: &str, engine: Engine, component: Component, sandbox: Sandbox) -> Result<Self> {
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("kernel '{label}' cannot be linked: {e:#}"))?;
        let pre = KernelPre::new(pre).map_err(|e| {
            anyhow!("kernel '{label}' does not implement the ifp:kernel/algorithm@0.1.0 interface: {e:#}")
        })?;
        let ticker = sandbox.call_timeout.map(|_| {
            let stop = Arc::new(AtomicBool::new(false));
            let (s, e) = (stop.clone(), engine.weak());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match e.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            });
            stop
        });
        Ok(Self { label: label.to_string(), engine, pre, sandbox, ticker })
    }

    /// The kernel's name in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh instance with its own store.
    pub fn instantiate(&self) -> Result<KernelInstance> {
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(m) = self.sandbox.memory_limit {
            limits = limits.memory_size(m);
        }
        let state = HostState { wasi: WasiCtx::builder().build(), table: ResourceTable::new(), limits: limits.build() };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = self.sandbox.call_timeout.map(|t| (t.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64).max(1));
        if deadline.is_some() {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let kernel = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| KernelError { kernel: self.label.clone(), function: "instantiate", message: describe(e) })?;
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

/// Turns a wasmtime error into one line, naming traps by their kind.
fn describe(e: wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "exceeded its time limit per call (interrupted)".into(),
        Some(Trap::OutOfFuel) => "ran out of fuel".into(),
        Some(t) => {
            let msg = format!("{e:#}");
            if msg.contains("memory") && msg.contains("grow") || matches!(t, Trap::AllocationTooLarge) {
                format!("exceeded its memory limit ({t})")
            } else {
                format!("trapped: {t}")
            }
        }
        None => {
            let msg = format!("{e:#}");
            msg.lines().next().unwrap_or("unknown error").to_string()
        }
    }
}

/// One instance of a kernel, owned by one inner worker (or used for init and update).
pub struct KernelInstance {
    label: String,
    store: Store<HostState>,
    kernel: Kernel,
    deadline: Option<u64>,
}

/// A shard resource living in one [`KernelInstance`].
#[derive(Clone, Copy)]
pub struct ShardHandle(ResourceAny);

macro_rules! call {
    ($self:ident, $fname:literal, |$g:ident, $s:ident| $body:expr) => {{
        if let Some(d) = $self.deadline {
            $self.store.set_epoch_deadline(d);
        }
        let $g = $self.kernel.ifp_kernel_algorithm();
        let $s = &mut $self.store;
        let r = $body;
        let label = $self.label.clone();
        let err = |message: String| KernelError { kernel: label.clone(), function: $fname, message };
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(err(describe(e))),
        }
    }};
}

impl KernelInstance {
    fn fail(&self, function: &'static str, message: String) -> KernelError {
        KernelError { kernel: self.label.clone(), function, message }
    }

    pub fn name(&mut self) -> Result<String, KernelError> {
        call!(self, "name", |g, s| g.call_name(s))
    }

    pub fn validate(&mut self, params: &[Param], shape: DataShape) -> Result<(), KernelError> {
        let r = call!(self, "validate", |g, s| g.call_validate(s, params, shape))?;
        r.map_err(|m| self.fail("validate", m))
    }

    pub fn plan_sample(&mut self, params: &[Param], shape: DataShape) -> Result<SamplePlan, KernelError> {
        let r = call!(self, "plan-sample", |g, s| g.call_plan_sample(s, params, shape))?;
        r.map_err(|m| self.fail("plan-sample", m))
    }

    pub fn init(&mut self, params: &[Param], shape: DataShape, sample: &Sample, start: &[f64]) -> Result<Vec<f64>, KernelError> {
        let r = call!(self, "init", |g, s| g.call_init(s, params, shape, sample, start))?;
        r.map_err(|m| self.fail("init", m))
    }

    pub fn update(&mut self, params: &[Param], shape: DataShape, model: &[f64], total: &[f64]) -> Result<UpdateResult, KernelError> {
        let r = call!(self, "update", |g, s| g.call_update(s, params, shape, model, total))?;
        r.map_err(|m| self.fail("update", m))
    }

    pub fn describe(&mut self, params: &[Param], shape: DataShape, model: &[f64]) -> Result<Vec<ModelField>, KernelError> {
        let r = call!(self, "describe", |g, s| g.call_describe(s, params, shape, model))?;
        r.map_err(|m| self.fail("describe", m))
    }

    pub fn new_shard(&mut self, shape: DataShape) -> Result<ShardHandle, KernelError> {
        call!(self, "shard constructor", |g, s| g.shard().call_constructor(s, shape)).map(ShardHandle)
    }

    pub fn append(&mut self, shard: ShardHandle, features: &[f32], labels: &[f32]) -> Result<(), KernelError> {
        let r = call!(self, "shard.append", |g, s| g.shard().call_append(s, shard.0, features, labels))?;
        r.map_err(|m| self.fail("shard.append", m))
    }

    pub fn rows(&mut self, shard: ShardHandle) -> Result<u64, KernelError> {
        call!(self, "shard.rows", |g, s| g.shard().call_rows(s, shard.0))
    }

    pub fn step(&mut self, shard: ShardHandle, model: &[f64]) -> Result<Vec<f64>, KernelError> {
        let r = call!(self, "shard.step", |g, s| g.shard().call_step(s, shard.0, model))?;
        r.map_err(|m| self.fail("shard.step", m))
    }

    pub fn assignments(&mut self, shard: ShardHandle) -> Result<Vec<u32>, KernelError> {
        call!(self, "shard.assignments", |g, s| g.shard().call_assignments(s, shard.0))
    }
}
