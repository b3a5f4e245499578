//! `ifp-host-lambda`: the AWS Lambda host, a thin adapter over `ifp-host`.
//!
//! One invocation is one function of a job ([`event::JobEvent`] in, [`event::FunctionResult`]
//! out): it loads its share of the data into one wasm instance per vCPU, synchronises with the
//! other functions through Redis once per iteration, and returns its timings and the final
//! model. [`handler::handle`] does the work; [`kernels`] keeps compiled kernels across warm
//! invocations and precompiled ones across cold starts; [`redis`] connects to the job's state.

pub mod event;
pub mod handler;
pub mod kernels;
pub mod redis;
