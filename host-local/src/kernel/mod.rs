//! Loading kernel components and running them: one shared [`KernelEngine`] (engine,
//! compiled component, linker, `InstancePre`) per process, and one [`KernelInstance`]
//! (its own `Store`) per inner worker.
//!
//! Kernels come from a [`KernelSource`]: a builtin, a file, or a remote URI read through a
//! pluggable [`RemoteKernels`] reader (S3's is [`S3Connector`]'s). What was read is a
//! [`KernelBytes`]: the component and its SHA-256, which every function of a job checks
//! against the driver's ([`KernelBytes::check`]) so that no two functions run different bytes.
//! Before anything runs, a component's exports are checked against the `ifp:kernel` world:
//! version 0.2.0 (`wit/`: parameters in the shard constructor, sizes up front, mini-batches,
//! a classifier's per-class counts, and optionally sparse rows: [`SPARSE_INTERFACE`])
//! or version 0.1.0 (`wit/v0.1.0`, which plugins built before 0.2.0 implement and which still
//! runs, full batch only); a mismatch is refused with the list of what it lacks
//! ([`LoadError::WrongWorld`]). [`ContractVersion`] says which one a kernel implements.
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
pub(crate) mod rows;
mod sandbox;
mod source;
mod stderr;

pub use cache::{write_atomic, CacheUse, KernelCache};
pub use compiled::{GetError, KernelOrigin, Kernels};
pub use instance::{KernelEngine, KernelError, KernelInstance, ShardHandle};
pub use sandbox::{HostState, Sandbox};
pub use source::{sha256_hex, KernelBytes, KernelSource, LoadError, RemoteKernels, MAX_REMOTE_KERNEL_BYTES};

mod bindings {
    // The world with the optional `sparse` interface: its interfaces are bound one by one
    // (`GuestIndices`), so a kernel without `sparse` links as well.
    wasmtime::component::bindgen!({
        world: "sparse-kernel",
        path: "../wit",
        // The contract's records travel in tasks and reports (JSON) as they are.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The 0.1.0 contract, for components built against it; its records are converted to the
/// current ones at the call (`instance.rs`).
mod bindings_v1 {
    wasmtime::component::bindgen!({
        world: "kernel",
        path: "../wit/v0.1.0",
    });
}

pub use bindings::exports::ifp::kernel::algorithm::{
    BatchPlan, ClassCount, DataShape, ModelField, ModelSizes, Sample, SamplePlan, UniformSample, UpdateResult,
};
pub use bindings::exports::ifp::kernel::sparse::SparseRows;

/// The optional interface through which a kernel takes sparse rows (`wit/sparse.wit`).
pub const SPARSE_INTERFACE: &str = "ifp:kernel/sparse@0.2.0";

// Written out: the type comes from `bindgen!`, whose derives apply to every contract type.
#[allow(clippy::derivable_impls)]
impl Default for DataShape {
    fn default() -> Self {
        DataShape { cols: 0, has_labels: false, total_rows: 0 }
    }
}

/// A parameter as passed to kernels: `(kebab-case name, value)`.
pub type Param = (String, String);

/// Which version of the contract a kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContractVersion {
    /// `ifp:kernel@0.1.0`: full-batch steps; shards do not see the parameters.
    V0_1,
    /// `ifp:kernel@0.2.0`: adds sizes up front, the parameters in the shard's constructor,
    /// and mini-batches.
    V0_2,
}

impl ContractVersion {
    /// The exported interface's name.
    pub fn interface(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "ifp:kernel/algorithm@0.1.0",
            ContractVersion::V0_2 => "ifp:kernel/algorithm@0.2.0",
        }
    }

    /// What the interface must contain, as export names of the component instance.
    fn required_exports(self) -> &'static [&'static str] {
        const V0_1: &[&str] = &[
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
        const V0_2: &[&str] = &[
            "name",
            "validate",
            "plan-sample",
            "init",
            "sizes",
            "plan-batches",
            "update",
            "describe",
            "shard",
            "[constructor]shard",
            "[method]shard.append",
            "[method]shard.rows",
            "[method]shard.step",
            "[method]shard.step-batch",
            "[method]shard.assignments",
            "[method]shard.score",
        ];
        match self {
            ContractVersion::V0_1 => V0_1,
            ContractVersion::V0_2 => V0_2,
        }
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContractVersion::V0_1 => "ifp:kernel@0.1.0",
            ContractVersion::V0_2 => "ifp:kernel@0.2.0",
        })
    }
}

/// The contract version `component` exports (the newest it has), and the names that version
/// requires which it lacks (empty: the world matches by name; the types are checked when
/// linking).
fn contract_of(engine: &Engine, component: &Component) -> (ContractVersion, Vec<String>) {
    let ty = component.component_type();
    let found = [ContractVersion::V0_2, ContractVersion::V0_1]
        .into_iter()
        .find_map(|v| ty.get_export(engine, v.interface()).map(|e| (v, e)));
    let Some((version, export)) = found else {
        let found: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let found = if found.is_empty() { "nothing".to_string() } else { found.join(", ") };
        let (new, old) = (ContractVersion::V0_2.interface(), ContractVersion::V0_1.interface());
        return (ContractVersion::V0_2, vec![format!("the export {new} or {old} (it exports: {found})")]);
    };
    let ComponentItem::ComponentInstance(inst) = export.ty else {
        let name = version.interface();
        return (version, vec![format!("the export {name} as an interface (it is some other kind of item)")]);
    };
    let missing = version.required_exports().iter().filter(|n| inst.get_export(engine, n).is_none());
    (version, missing.map(|n| format!("`{n}`")).collect())
}
