//! Loading kernel components and running them: one shared [`KernelEngine`] (engine,
//! compiled component, linker, `InstancePre`) per process, and one [`KernelInstance`]
//! (its own `Store`) per inner worker.
//!
//! Kernels come from a [`KernelSource`]: a builtin, a file, or a remote URI read through a
//! pluggable [`RemoteKernels`] reader (S3's is [`S3Connector`]'s). What was read is a
//! [`KernelBytes`]: the component and its SHA-256, which every function of a job checks
//! against the driver's ([`KernelBytes::check`]) so that no two functions run different bytes.
//! Before anything runs, a component's exports are checked against the `ifp:kernel@0.1.0`
//! world, and a mismatch is refused with the list of what it lacks ([`LoadError::WrongWorld`]).
//! A [`KernelCache`] keeps compiled kernels on disk, named by content hash and wasmtime's
//! compatibility hash, so a process that finds one deserializes instead of compiling.
//!
//! The sandbox: WASI stays linked (Rust's `wasm32-wasip2` std imports it) but grants nothing:
//! no preopened directories, no environment or arguments, no network (TCP, UDP and name
//! lookup disabled), stdin empty, stdout discarded, stderr kept in a small in-memory buffer
//! only to quote a panicking guest's last words in the error; the clocks are frozen at zero
//! and "randomness" is a fixed byte cycle, so a kernel sees nothing beyond what the contract
//! passes in and its results cannot depend on when or where it runs. On top of that: an
//! optional linear-memory cap per instance (growth past it traps), and, when a call timeout
//! is set, an epoch deadline per call (a ticker thread advances the engine's epoch). Every
//! error a kernel returns or traps with is reported as a [`KernelError`] naming the kernel
//! and the function; the host's own state is untouched by a failing instance.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use sha2::{Digest as _, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::object::{S3Connector, S3Url};

mod bindings {
    wasmtime::component::bindgen!({
        world: "kernel",
        path: "../wit",
        // The contract's records travel in tasks and reports (JSON) as they are.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use bindings::exports::ifp::kernel::algorithm::{
    DataShape, ModelField, Sample, SamplePlan, UniformSample, UpdateResult,
};
use bindings::{Kernel, KernelPre};

impl Default for DataShape {
    fn default() -> Self {
        DataShape { cols: 0, has_labels: false, total_rows: 0 }
    }
}

/// A parameter as passed to kernels: `(kebab-case name, value)`.
pub type Param = (String, String);

/// How kernels are sandboxed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
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
    /// SHA-256 of the component, when known (not for an engine made from precompiled bytes
    /// alone).
    sha256: Option<String>,
    engine: Engine,
    component: Component,
    pre: KernelPre<HostState>,
    sandbox: Sandbox,
    ticker: Option<Arc<AtomicBool>>,
}

/// Per-store host state: the capability-free WASI context, the memory limiter and the
/// guest's captured stderr.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    limits_memory: Option<usize>,
    stderr: MemoryOutputPipe,
}

/// The WIT interface every kernel exports.
pub const INTERFACE: &str = "ifp:kernel/algorithm@0.1.0";

/// What [`INTERFACE`] must contain, as export names of the component instance.
const REQUIRED_EXPORTS: &[&str] = &[
    "name",
    "validate",
    "plan-sample",
    "init",
    "update",
    "describe",
    "shard",
    "[constructor]shard",
    "[method]shard.append",
    "[method]shard.rows",
    "[method]shard.step",
    "[method]shard.assignments",
];

/// Bytes of a guest's stderr kept for error messages (the rest is dropped).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Where a kernel's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSource {
    /// A kernel embedded in this binary, by name.
    Builtin(String),
    /// A component file (`.wasm`, or a component precompiled by this build).
    File(PathBuf),
    /// A `scheme://...` URI (e.g. `s3://bucket/key`), read by a [`RemoteKernels`] reader.
    Remote(String),
}

impl KernelSource {
    /// A plugin given on the command line: a `scheme://` URI or a file path.
    pub fn plugin(arg: &str) -> Self {
        match arg.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                KernelSource::Remote(arg.to_string())
            }
            _ => KernelSource::File(PathBuf::from(arg)),
        }
    }

    /// A kernel named where only a string fits (a Lambda event): a builtin name, else a
    /// plugin ([`KernelSource::plugin`]). A bare word that is no builtin stays a builtin, so
    /// that a typo reads "unknown algorithm" rather than "cannot read file".
    pub fn parse(arg: &str) -> Self {
        let bare = !arg.contains(['/', '.', ':']);
        if bare || ifp_kernels::builtin(arg).is_some() {
            KernelSource::Builtin(arg.to_string())
        } else {
            Self::plugin(arg)
        }
    }

    /// The kernel's name in errors.
    pub fn label(&self) -> String {
        match self {
            KernelSource::Builtin(n) => n.clone(),
            KernelSource::File(p) => p.display().to_string(),
            KernelSource::Remote(u) => u.clone(),
        }
    }

    /// Reads the component and hashes it; `remote` reads [`KernelSource::Remote`] URIs.
    pub fn read(&self, remote: Option<&dyn RemoteKernels>) -> Result<KernelBytes, LoadError> {
        let bytes = self.bytes(remote)?;
        Ok(KernelBytes { label: self.label(), sha256: sha256_hex(&bytes), bytes })
    }

    /// The component bytes; `remote` reads [`KernelSource::Remote`] URIs.
    pub fn bytes(&self, remote: Option<&dyn RemoteKernels>) -> Result<Vec<u8>, LoadError> {
        match self {
            KernelSource::Builtin(name) => {
                ifp_kernels::builtin(name).map(<[u8]>::to_vec).ok_or_else(|| LoadError::UnknownBuiltin {
                    name: name.clone(),
                    builtins: ifp_kernels::BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                })
            }
            KernelSource::File(p) => {
                std::fs::read(p).map_err(|e| LoadError::Read { kernel: self.label(), message: e.to_string() })
            }
            KernelSource::Remote(uri) => match remote {
                Some(r) => r.fetch(uri).map_err(|e| {
                    // The object store's errors start with the URI already.
                    let message = format!("{e:#}");
                    let message = message.strip_prefix(&format!("{uri}: ")).unwrap_or(&message).to_string();
                    LoadError::Read { kernel: uri.clone(), message }
                }),
                None => Err(LoadError::Read {
                    kernel: uri.clone(),
                    message: "no reader for this URI scheme in this build".into(),
                }),
            },
        }
    }
}

/// Reads kernel components from remote URIs (`s3://bucket/key`, ...); the object store
/// plugs in here.
pub trait RemoteKernels {
    fn fetch(&self, uri: &str) -> Result<Vec<u8>>;
}

/// The largest kernel component read from a remote store (components are usually well under
/// a megabyte; this only bounds what a wrong URI can make a function download).
pub const MAX_REMOTE_KERNEL_BYTES: u64 = 256 << 20;

impl RemoteKernels for S3Connector {
    /// The whole object, in one GET; refuses anything but `s3://` and objects over
    /// [`MAX_REMOTE_KERNEL_BYTES`].
    fn fetch(&self, uri: &str) -> Result<Vec<u8>> {
        let url = S3Url::parse(uri)?;
        let (bytes, size) = self.store()?.head_bytes(&url, MAX_REMOTE_KERNEL_BYTES + 1)?;
        if size > MAX_REMOTE_KERNEL_BYTES {
            return Err(anyhow!("{size} bytes is more than a kernel may have ({MAX_REMOTE_KERNEL_BYTES} bytes)"));
        }
        if (bytes.len() as u64) < size {
            return Err(anyhow!("got {} of its {size} bytes", bytes.len()));
        }
        Ok(bytes.to_vec())
    }
}

/// A kernel component as read from its source, with its content hash.
#[derive(Clone, Debug)]
pub struct KernelBytes {
    /// The source's name in errors.
    pub label: String,
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex (what `sha256sum` prints).
    pub sha256: String,
}

impl KernelBytes {
    /// Refuses bytes whose hash is not `expected` (the job's: what the driver read).
    pub fn check(&self, expected: Option<&str>) -> Result<(), LoadError> {
        match expected {
            Some(e) if !e.eq_ignore_ascii_case(&self.sha256) => Err(LoadError::Mismatch {
                kernel: self.label.clone(),
                found: self.sha256.clone(),
                expected: e.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Why a kernel could not be loaded; nothing of the kernel has run yet.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("unknown algorithm '{name}' (builtin: {builtins})")]
    UnknownBuiltin { name: String, builtins: String },
    #[error("cannot read kernel '{kernel}': {message}")]
    Read { kernel: String, message: String },
    #[error("kernel '{kernel}' is not a valid WebAssembly component: {message}")]
    NotComponent { kernel: String, message: String },
    #[error("kernel '{kernel}' is not an ifp:kernel@0.1.0 component: it lacks {}", .missing.join(", "))]
    WrongWorld { kernel: String, missing: Vec<String> },
    #[error("kernel '{kernel}' cannot be sandboxed: {message}")]
    Imports { kernel: String, message: String },
    #[error(
        "kernel '{kernel}' has sha256 {found} but the job runs sha256 {expected}: every function must load the same component (did it change after the job started?)"
    )]
    Mismatch { kernel: String, found: String, expected: String },
}

/// How a [`KernelCache`] produced an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Deserialized from a compiled kernel found on disk.
    Precompiled,
    /// Compiled from the component (and written to the cache, if it has a directory).
    Compiled,
}

/// Compiled kernels on disk, as `DIR/SHA256-COMPAT.cwasm`: SHA256 is the component's content
/// hash, COMPAT wasmtime's compatibility hash for the sandbox's configuration, so another
/// component, wasmtime version or setting never picks up a stale artifact. Read-only
/// directories (`shipped`, e.g. a package's precompiled kernels) are searched first, then the
/// writable `dir`, where a compilation is written (to a temporary name, then renamed). A file
/// that fails to load anyway is ignored and replaced.
///
/// Only point it at directories that this tool alone writes: compiled code is trusted as is.
#[derive(Clone, Debug, Default)]
pub struct KernelCache {
    pub shipped: Vec<PathBuf>,
    pub dir: Option<PathBuf>,
}

impl KernelCache {
    /// A cache in `dir` (`None`: no cache, every load compiles).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { shipped: Vec::new(), dir }
    }

    /// Where the compiled form of the component hashed `sha256` lives in `dir`.
    pub fn path(dir: &Path, sha256: &str, sandbox: &Sandbox) -> Result<PathBuf> {
        use std::hash::{Hash as _, Hasher as _};
        let engine = Engine::new(&KernelEngine::config(sandbox))?;
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        Ok(dir.join(format!("{safe}-{:016x}.cwasm", h.finish())))
    }

    /// The engine for `k`: from the cache when there, else compiled (and cached).
    pub fn engine(&self, k: &KernelBytes, sandbox: Sandbox) -> Result<(KernelEngine, CacheUse)> {
        for dir in self.shipped.iter().chain(&self.dir) {
            let path = Self::path(dir, &k.sha256, &sandbox)?;
            if let Ok(bytes) = std::fs::read(&path) {
                match KernelEngine::new(&k.label, &bytes, sandbox.clone()) {
                    Ok(mut e) => {
                        e.sha256 = Some(k.sha256.clone());
                        return Ok((e, CacheUse::Precompiled));
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring a compiled kernel that does not load: {e:#}")
                    }
                }
            }
        }
        let engine = KernelEngine::compile(k, sandbox)?;
        if let Err(e) = self.store(&engine) {
            // A read-only or full disk costs the next process a compilation, nothing more.
            tracing::warn!("cannot cache the compiled kernel: {e:#}");
        }
        Ok((engine, CacheUse::Compiled))
    }

    /// Writes `engine`'s compiled kernel into the writable directory (if any); returns the
    /// file.
    pub fn store(&self, engine: &KernelEngine) -> Result<Option<PathBuf>> {
        let (Some(dir), Some(sha)) = (&self.dir, engine.sha256()) else { return Ok(None) };
        let path = Self::path(dir, sha, engine.sandbox())?;
        write_atomic(&path, &engine.serialize()?)?;
        Ok(Some(path))
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that no reader ever sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("kernel");
    let tmp = dir.join(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// A wall clock frozen at the Unix epoch.
struct FrozenWallClock;
impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that never advances.
struct FrozenMonotonicClock;
impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context every kernel gets: no capabilities, deterministic clocks and random.
fn sandbox_wasi(stderr: MemoryOutputPipe) -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .stderr(stderr)
        .wall_clock(FrozenWallClock)
        .monotonic_clock(FrozenMonotonicClock)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5e, 0xed]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x5e, 0xed]))
        .insecure_random_seed(0)
        .max_random_size(1 << 16);
    b.build()
}

/// The names [`REQUIRED_EXPORTS`] lacks in `component` (empty: the world matches by name;
/// the types are checked when linking).
fn missing_exports(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let Some(export) = ty.get_export(engine, INTERFACE) else {
        let found: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let found = if found.is_empty() { "nothing".to_string() } else { found.join(", ") };
        return vec![format!("the export {INTERFACE} (it exports: {found})")];
    };
    let ComponentItem::ComponentInstance(inst) = export.ty else {
        return vec![format!("the export {INTERFACE} as an interface (it is some other kind of item)")];
    };
    REQUIRED_EXPORTS.iter().filter(|n| inst.get_export(engine, n).is_none()).map(|n| format!("`{n}`")).collect()
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
                )
                .into());
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
    pub fn compile(k: &KernelBytes, sandbox: Sandbox) -> Result<Self> {
        Self::new(&k.label, &k.bytes, sandbox)
    }

    /// Loads a kernel from `source`; `remote` reads `scheme://` URIs.
    pub fn load(source: &KernelSource, sandbox: Sandbox, remote: Option<&dyn RemoteKernels>) -> Result<Self> {
        Self::compile(&source.read(remote)?, sandbox)
    }

    /// Loads a kernel component from a file.
    pub fn from_file(path: &Path, sandbox: Sandbox) -> Result<Self> {
        Self::load(&KernelSource::File(path.to_path_buf()), sandbox, None)
    }

    /// Loads the builtin kernel `name`.
    pub fn builtin(name: &str, sandbox: Sandbox) -> Result<Self> {
        Self::load(&KernelSource::Builtin(name.to_string()), sandbox, None)
    }

    /// Compiles a component ahead of time; the result loads with [`KernelEngine::new`] in
    /// a fraction of the compile time.
    pub fn precompile(bytes: &[u8], sandbox: &Sandbox) -> Result<Vec<u8>> {
        Ok(Engine::new(&Self::config(sandbox))?.precompile_component(bytes)?)
    }

    fn from_component(label: &str, engine: Engine, component: Component, sandbox: Sandbox) -> Result<Self> {
        let missing = missing_exports(&engine, &component);
        if !missing.is_empty() {
            return Err(LoadError::WrongWorld { kernel: label.to_string(), missing }.into());
        }
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports { kernel: label.to_string(), message: format!("{e:#}") })?;
        let pre = KernelPre::new(pre).map_err(|e| LoadError::WrongWorld {
            kernel: label.to_string(),
            missing: vec![format!("{INTERFACE} with the contract's types ({e:#})")],
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
        Ok(Self { label: label.to_string(), sha256: None, engine, component, pre, sandbox, ticker })
    }

    /// The kernel's name in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// SHA-256 of the component (lowercase hex), when it was compiled from its bytes here or
    /// loaded through a [`KernelCache`].
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// The sandbox it runs under.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The compiled kernel, for [`KernelEngine::new`] in another process of this build.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        Ok(self.component.serialize()?)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh instance with its own store.
    pub fn instantiate(&self) -> Result<KernelInstance, KernelError> {
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(m) = self.sandbox.memory_limit {
            limits = limits.memory_size(m);
        }
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let state = HostState {
            wasi: sandbox_wasi(stderr.clone()),
            table: ResourceTable::new(),
            limits: limits.build(),
            limits_memory: self.sandbox.memory_limit,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline =
            self.sandbox.call_timeout.map(|t| (t.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64).max(1));
        if deadline.is_some() {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let kernel = self.pre.instantiate(&mut store).map_err(|e| KernelError {
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

/// Turns a wasmtime error into one line, naming traps by their kind and quoting the last
/// line the guest wrote to stderr (a Rust panic message, typically).
fn describe(e: wasmtime::Error, store: &Store<HostState>) -> String {
    let memory_cap = store.data().limits_memory;
    let base = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "exceeded its time limit per call (interrupted)".to_string(),
        Some(Trap::OutOfFuel) => "ran out of fuel".into(),
        // `Trap`'s Display reads "wasm trap: ...".
        Some(t) => format!("trapped: {}", t.to_string().trim_start_matches("wasm trap: ")),
        // `trap_on_grow_failure` reports a refused `memory.grow` as a plain error.
        None if e.chain().any(|c| c.to_string().starts_with("forcing trap when growing memory")) => match memory_cap {
            Some(m) => format!("exceeded its memory limit of {} MiB", m >> 20),
            None => "exceeded its memory limit".to_string(),
        },
        None => {
            let msg = format!("{e:#}");
            msg.lines().next().unwrap_or("unknown error").to_string()
        }
    };
    let said = store.data().stderr.contents();
    let said = String::from_utf8_lossy(&said);
    // The last line that is not std's "note: run with RUST_BACKTRACE=1" hint.
    match said.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("note: ")) {
        Some(last) => format!("{base} (guest stderr: {last})"),
        None => base,
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
            Err(e) => Err(err(describe(e, &$self.store))),
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

    pub fn init(
        &mut self,
        params: &[Param],
        shape: DataShape,
        sample: &Sample,
        start: &[f64],
    ) -> Result<Vec<f64>, KernelError> {
        let r = call!(self, "init", |g, s| g.call_init(s, params, shape, sample, start))?;
        r.map_err(|m| self.fail("init", m))
    }

    pub fn update(
        &mut self,
        params: &[Param],
        shape: DataShape,
        model: &[f64],
        total: &[f64],
    ) -> Result<UpdateResult, KernelError> {
        let r = call!(self, "update", |g, s| g.call_update(s, params, shape, model, total))?;
        r.map_err(|m| self.fail("update", m))
    }

    pub fn describe(
        &mut self,
        params: &[Param],
        shape: DataShape,
        model: &[f64],
    ) -> Result<Vec<ModelField>, KernelError> {
        let r = call!(self, "describe", |g, s| g.call_describe(s, params, shape, model))?;
        r.map_err(|m| self.fail("describe", m))
    }

    /// A new empty shard; `rows` is the capacity hint (how many rows will be appended).
    pub fn new_shard(&mut self, shape: DataShape, rows: u64) -> Result<ShardHandle, KernelError> {
        call!(self, "shard constructor", |g, s| g.shard().call_constructor(s, shape, rows)).map(ShardHandle)
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
