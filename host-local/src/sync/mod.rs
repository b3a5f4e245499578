//! Synchronisation between functions, once per iteration, behind one trait.
//!
//! Per iteration `t`, every worker `w` of `W` calls [`StateStore::arrive`] with its partial.
//! Exactly one worker (the one completing the set) gets [`Arrival::Reduce`] with the parts
//! to sum in order (every partial in worker order, or beyond [`tree::FLAT`] workers the
//! in-order sums of fixed groups of workers: [`tree::Tree`]); it sums them, runs the
//! kernel's `update` and calls
//! [`StateStore::release`]. Every other worker gets [`Arrival::Wait`] and blocks in
//! [`StateStore::await_release`] until the release (or the sync timeout). Arriving twice for
//! the same `(t, w)` changes nothing, so a retried worker cannot double-count; a retry that
//! arrives after the release gets [`Arrival::Released`] at once.
//!
//! [`InProcess`] implements this for workers that are threads of one process;
//! [`redis::RedisStore`] for workers that are separate processes or functions. Both also run
//! stale-synchronous rounds ([`stale`], `--staleness S`), where a function may run up to `S`
//! rounds ahead of the slowest.

use std::time::Duration;

pub mod codec;
mod in_process;
pub mod model_ref;
pub mod redis;
pub mod simulate;
pub mod stale;
pub mod tree;

pub use in_process::{InProcess, CANCELLED};

/// The round before iteration 0, passed as `t` to [`StateStore::arrive`] and the rest: the
/// functions' row counts and init-sample candidates meet here, and the release carries the
/// row count and the first model ([`crate::census`]). A restarted function that arrives
/// after it gets the release at once, like any late arrival.
pub const CENSUS: u32 = u32::MAX;

/// How messages name round `t`.
pub fn round_name(t: u32) -> String {
    if t == CENSUS {
        "the first synchronisation (row counts and init sample)".to_string()
    } else {
        format!("iteration {t}")
    }
}

/// What the reducing worker publishes for iteration `t`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Release {
    /// The model for iteration `t + 1`.
    pub model: Vec<f64>,
    /// The loss of the model that entered iteration `t`.
    pub loss: f64,
    /// The kernel's stopping rule fired.
    pub converged: bool,
    /// Every worker stops after this iteration (converged or out of iterations).
    pub stop: bool,
}

/// Where a function enters a job, as the store knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinPoint {
    /// Iterations already released: the function's first iteration.
    pub iteration: u32,
    /// The release of `iteration - 1` (its model is the one to step), if any.
    pub last: Option<Release>,
    /// The release of `iteration - 2` (its model is the one to replay), if any.
    pub before: Option<Release>,
}

/// The outcome of arriving with a partial.
#[derive(Debug)]
pub enum Arrival {
    /// This worker completed the set: here are the parts to sum in order with
    /// [`crate::function::sum_in_order`] ([`tree::Tree::root_parts`] of every worker's
    /// partial; at the [`CENSUS`], every worker's entry in worker order).
    Reduce(Vec<Vec<f64>>),
    /// Others are still missing, or another worker reduces: wait for the release.
    Wait,
    /// The iteration was already released (a retried worker arriving late): here it is.
    Released(Release),
}

/// Sync failures. Each names the job, and where it applies the worker and iteration.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("job {job}: function {worker} timed out after {timeout:?} waiting for {} ({})", round_name(*.iteration), missing_text(.missing, *.merger, *.reducer))]
    Timeout {
        job: String,
        worker: u32,
        iteration: u32,
        timeout: Duration,
        /// The functions that never arrived.
        missing: Vec<u32>,
        /// When every function arrived: a group's merger that never passed the group's sum
        /// on (function, first and last member).
        merger: Option<StalledMerger>,
        /// When every function arrived: the one that completed the set and so reduces.
        reducer: Option<u32>,
    },
    #[error("job {job} aborted: {}: {reason}", aborted_by(*.worker))]
    Aborted {
        job: String,
        /// The function that failed ([`DRIVER`]: the driver stopped the job).
        worker: u32,
        reason: String,
    },
    /// Partials that cannot be summed (a kernel whose step returns varying lengths).
    #[error("job {job}: {source}")]
    Partials { job: String, source: crate::function::PartialsMismatch },
    #[error("job {job}: state store error: {message}")]
    Store { job: String, message: String },
    /// The job id is in use by a job with another plan or function count.
    #[error("job {job}: {message}")]
    Mismatch { job: String, message: String },
}

/// The "function" that aborts a job when the driver stops it (SIGINT, SIGTERM).
pub const DRIVER: u32 = u32::MAX;

fn aborted_by(worker: u32) -> String {
    match worker {
        DRIVER => "the driver stopped it".to_string(),
        w => format!("function {w} failed"),
    }
}

/// A group's merger that never passed the group's sum on: the function, and the group's
/// first and last member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StalledMerger {
    pub function: u32,
    pub first: u32,
    pub last: u32,
}

fn missing_text(missing: &[u32], merger: Option<StalledMerger>, reducer: Option<u32>) -> String {
    match (missing, reducer, merger) {
        ([], _, Some(StalledMerger { function, first, last })) => format!(
            "every function arrived; function {function}, which sums functions {first}..={last}, never passed their sum on: it died or stalled"
        ),
        ([], Some(r), None) => {
            format!("every function arrived; function {r}, which reduces it, never released it: it died or stalled")
        }
        ([], None, None) => "a function died or stalled".to_string(),
        (missing, _, _) => missing_functions(missing),
    }
}

fn missing_functions(missing: &[u32]) -> String {
    match missing {
        [] => "a function died or stalled".to_string(),
        [w] => format!("function {w} never arrived: it died or stalled"),
        ws => format!(
            "functions {} never arrived: they died or stalled",
            ws.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Counters a store keeps for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncStats {
    /// Requests sent to the store (round trips over the network for remote stores).
    pub round_trips: u64,
    /// Seconds spent blocked waiting for other workers.
    pub wait_s: f64,
    /// Bytes of partials (and, for a group's merger, group sums) sent to the store, as
    /// [`codec::encode_partial`] encodes them (the in-process store counts what a remote store
    /// would carry).
    #[serde(default)]
    pub partial_bytes: u64,
}

/// The state store the functions of one job synchronise through.
pub trait StateStore: Send {
    /// Finds where this function enters the job: iteration 0 for a fresh job, later for a
    /// function that was restarted (the in-process store always starts at 0).
    fn join(&mut self) -> Result<JoinPoint, SyncError> {
        Ok(JoinPoint::default())
    }
    /// Registers worker `w`'s partial for iteration `t`.
    fn arrive(&mut self, t: u32, w: u32, partial: &[f64]) -> Result<Arrival, SyncError>;
    /// Publishes the reduction of iteration `t` and wakes the others.
    fn release(&mut self, t: u32, release: &Release) -> Result<(), SyncError>;
    /// Blocks until iteration `t` is released.
    fn await_release(&mut self, t: u32, w: u32) -> Result<Release, SyncError>;
    /// Tells every other worker that worker `w` failed, so they stop waiting.
    fn abort(&mut self, w: u32, reason: &str);
    /// Counters so far.
    fn stats(&self) -> SyncStats;
    /// The same store running stale-synchronous rounds ([`stale`]), if it can.
    fn stale(&mut self) -> Option<&mut dyn stale::StaleStore> {
        None
    }
}
