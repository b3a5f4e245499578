//! Where a job's functions run, each behind [`ifp_host::job::Backend`]: threads of this
//! process (the engine's [`ifp_host::job::Threads`]), `ifp-worker` processes synchronising
//! through Redis ([`processes`]), or AWS Lambda invocations ([`lambda`]). Every backend only
//! launches tasks and returns each function's report or failure; the job's outcome and its
//! root cause come from [`ifp_host::job::JobOutcome::collect`].

pub mod lambda;
pub mod processes;
pub mod retry;

/// Where `ifp run` runs the functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// On this machine (threads, or `ifp-worker` processes with --redis).
    Local,
    /// As AWS Lambda invocations of --function.
    Lambda,
}
