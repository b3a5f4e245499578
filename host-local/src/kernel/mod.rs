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
//!
//! Files: the contract (this file: the `bindgen!` bindings, their types and the export check),
//! `source` (where a component comes from, its hash), `sandbox` (the store a kernel runs in),
//! `instance` (compiling, instantiating and calling), `cache` (compiled kernels on disk) and
//! `compiled` (the compiled kernels of a process, [`Kernels`]).
//!
//! [`S3Connector`]: crate::data::object::S3Connector

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

mod cache;
mod compiled;
mod instance;
mod sandbox;
mod source;
mod stderr;

pub use cache::{write_atomic, CacheUse, KernelCache};
pub use compiled::{GetError, KernelOrigin, Kernels};
pub use instance::{KernelEngine, KernelError, KernelInstance, ShardHandle};
pub use sandbox::{HostState, Sandbox};
pub use source::{sha256_hex, KernelBytes, KernelSource, LoadError, RemoteKernels, MAX_REMOTE_KERNEL_BYTES};

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

// Written out: the type comes from `bindgen!`, whose derives apply to every contract type.
#[allow(clippy::derivable_impls)]
impl Default for DataShape {
    fn default() -> Self {
        DataShape { cols: 0, has_labels: false, total_rows: 0 }
    }
}

/// A parameter as passed to kernels: `(kebab-case name, value)`.
pub type Param = (String, String);

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
