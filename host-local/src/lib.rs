//! `ifp-host`: the engine shared by every ifp host (local worker processes, AWS Lambda).
//!
//! It loads a kernel component ([`kernel`]), reads a function's share of the data
//! ([`data`]), runs one wasmtime instance per inner worker over a contiguous slice of that
//! share and merges their partials ([`function`]), and synchronises functions once per
//! iteration through a state store ([`sync`], [`redis_store`]). [`worker`] is one function as a
//! process (the `ifp-worker` binary). Data and outputs may live in S3 ([`object`], [`remote`]).

pub mod data;
pub mod function;
pub mod job;
pub mod kernel;
pub mod object;
pub mod redis_store;
pub mod remote;
pub mod sync;
pub mod worker;

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

pub use kernel::{
    CacheUse, KernelBytes, KernelCache, KernelEngine, KernelError, KernelInstance, KernelSource, LoadError, Param,
    RemoteKernels, Sandbox,
};
