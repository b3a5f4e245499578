//! `ifp-host`: the engine shared by every ifp host (in-process threads, `ifp-worker`
//! processes, AWS Lambda).
//!
//! Where to look:
//! - [`task`]: what one function is asked to do ([`task::FunctionTask`]) and answers
//!   ([`task::FunctionReport`], or a typed [`task::FunctionFailure`]);
//! - [`run_task`]: the function lifecycle, written once (connect, load the kernel, open the
//!   data, first model, load the share, iterate, report);
//! - [`census`]: the first synchronisation, where the row counts and the init sample of every
//!   function's share meet and the first model is made;
//! - [`function`]: one function's inner workers and **the per-iteration loop**
//!   ([`function::Function::run_from`]);
//! - [`job`]: a whole job: the plan that makes the tasks, the [`job::Backend`] trait (threads
//!   here), and [`job::JobOutcome::collect`], the one rule for a job's outcome;
//! - [`kernel`]: the kernel contract and everything about running one: where a component comes
//!   from (`kernel/source.rs`), the sandbox (`kernel/sandbox.rs`), engines and instances
//!   (`kernel/instance.rs`), the on-disk cache (`kernel/cache.rs`) and the compiled kernels of
//!   a process ([`kernel::Kernels`], `kernel/compiled.rs`);
//! - [`data`]: rows, labels, data errors and a data set behind one API ([`data::Data`]), over
//!   [`data::local`] (`.npy`/CSV files), [`data::s3`] (S3 objects by parts) and
//!   [`data::object`] (the S3 client);
//! - [`labels`]: per-row outputs written by each function straight to the destination;
//! - [`merge`]: partials and a classifier's per-class counts summed in a fixed order;
//! - [`sync`]: the protocol and the in-process store ([`sync::InProcess`]), and
//!   [`sync::redis`] (Redis).

pub mod aws_error;
pub mod census;
pub mod data;
pub mod function;
pub mod job;
pub mod kernel;
pub mod labels;
pub mod merge;
pub mod run_task;
pub mod sync;
pub mod task;
pub mod test_delay;

/// Lets large freed buffers (downloaded S3 parts, append chunks) go back to the OS at once.
/// glibc raises its mmap threshold to the size of the largest block freed so far (up to 32
/// MiB), after which 8 MiB download parts come from the heap and stay resident once freed, so
/// a worker's peak RSS grows by buffers it no longer holds. A fixed 1 MiB threshold keeps
/// every buffer that large in its own mapping. Call once at the start of a host binary.
pub fn release_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before the process allocates much.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

pub use data::LabelCol;
pub use kernel::{
    CacheUse, KernelBytes, KernelCache, KernelEngine, KernelError, KernelInstance, KernelSource, LoadError, Param,
    RemoteKernels, Sandbox,
};
pub use task::{Attempt, AttemptOutcome, FailureKind, FunctionFailure, FunctionReport, FunctionTask, IterationReport};
