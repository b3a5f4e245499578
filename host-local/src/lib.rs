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

pub use kernel::{
    CacheUse, KernelBytes, KernelCache, KernelEngine, KernelError, KernelInstance, KernelSource, LoadError, Param,
    RemoteKernels, Sandbox,
};
