//! What goes into and comes out of one invocation: the [`JobEvent`] the driver sends to
//! worker `w` of `W`, the [`FunctionResult`] it gets back, and the function error format
//! ([`FunctionError`]) both sides agree on.
//!
//! Events are plain JSON, so a function can also be invoked by hand (`aws lambda invoke`):
//!
//! ```json
//! { "job": "demo-1", "worker": 0, "workers": 2, "data": "s3://bucket/blobs.npy",
//!   "kernel": "kmeans", "params": { "k": "8" }, "max_iter": 50 }
//! ```
//!
//! A plugin is named by its `s3://` URI (or a path the function can read), optionally with
//! the SHA-256 the component must have and its sandbox limits:
//!
//! ```json
//! { "kernel": "s3://bucket/linreg.wasm", "kernel_sha256": "3f…", "kernel_memory_mb": 256,
//!   "step_timeout_s": 30, "params": { "learning-rate": "0.3" }, … }
//! ```

use std::collections::BTreeMap;

use ifp_host::data::LabelCol;
use ifp_host::function::FunctionReport;
use serde::{Deserialize, Serialize};

/// The most inner workers a function uses: Lambda gives at most 6 vCPUs.
pub const MAX_INNER: usize = 6;

/// Memory that buys one vCPU of CPU time on Lambda, in MB.
pub const MB_PER_VCPU: u64 = 1769;

/// Inner workers for a function with `memory_mb` of configured memory: its CPU share in whole
/// vCPUs (one per 1,769 MB, rounded), between 1 and [`MAX_INNER`]. Lambda's `nproc` reports
/// more cores than the CPU time a small function actually gets, so it is not used.
pub fn inner_for_memory(memory_mb: u64) -> usize {
    (((memory_mb as f64) / MB_PER_VCPU as f64).round() as usize).clamp(1, MAX_INNER)
}

/// One function's share of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEvent {
    /// Job id, shared by every function of the job (letters, digits, `.`, `_`, `-`).
    pub job: String,
    /// This function's index, `0..workers`.
    pub worker: u32,
    /// Number of functions in the job.
    pub workers: u32,
    /// Inner workers (wasm instances); default: from the configured memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<usize>,
    /// The data set: `s3://bucket/key` or a path the function can read (`.npy` or `.csv`).
    pub data: String,
    /// Where the label is (`last` or `none`, the default).
    #[serde(default)]
    pub label_col: LabelCol,
    /// A builtin kernel name (`kmeans`, `logreg`), or a plugin: an `s3://bucket/key` URI or a
    /// path the function can read.
    pub kernel: String,
    /// The SHA-256 (hex) the kernel's component must have; a function that reads other bytes
    /// fails the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_sha256: Option<String>,
    /// Linear-memory cap per kernel instance, in MiB (default: wasm32's 4 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_memory_mb: Option<u64>,
    /// Seconds one call into the kernel may run (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_s: Option<f64>,
    /// Kernel parameters by name; values may be strings or numbers.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// The initial model (as the driver computed it); default: computed by the function from
    /// the data, which gives every function the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Vec<f64>>,
    pub max_iter: u32,
    /// Redis URL; default: the function's `IFP_REDIS_URL` environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Seconds to wait for the other functions in one iteration.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_s: f64,
    /// Also return the per-row output of the final model (k-means labels).
    #[serde(default)]
    pub assignments: bool,
}

fn default_sync_timeout() -> f64 {
    60.0
}

impl JobEvent {
    /// The sandbox from `kernel_memory_mb` and `step_timeout_s`.
    pub fn sandbox(&self) -> Result<ifp_host::Sandbox, String> {
        let memory_limit = match self.kernel_memory_mb {
            None => None,
            Some(m) if (1..=4096).contains(&m) => Some((m as usize) << 20),
            Some(m) => return Err(format!("kernel_memory_mb must be between 1 and 4096, got {m}")),
        };
        let call_timeout = match self.step_timeout_s {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t <= 1e6 => Some(std::time::Duration::from_secs_f64(t)),
            Some(t) => return Err(format!("step_timeout_s must be a positive number of seconds, got {t}")),
        };
        Ok(ifp_host::Sandbox { memory_limit, call_timeout })
    }

    /// The parameters as kernels take them, `(name, value)`.
    pub fn kernel_params(&self) -> Result<Vec<(String, String)>, String> {
        self.params
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
                serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
                other => Err(format!("parameter '{k}' must be a string or a number, got {other}")),
            })
            .collect()
    }
}

/// How the function got its compiled kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelSource {
    /// Already in memory: a warm invocation.
    Memory,
    /// Loaded from the precompiled cache on disk (`/tmp`).
    Precompiled,
    /// Compiled from the component (and written to the cache).
    Compiled,
}

/// The data set's shape as the function saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub cols: u32,
    pub has_labels: bool,
    pub total_rows: u64,
}

/// What one invocation returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionResult {
    /// Rows, inner workers, load time, per-iteration compute/sync/round trips, the final model.
    pub report: FunctionReport,
    pub shape: Shape,
    /// The iteration this invocation entered the job at (0, or later for a retry).
    pub joined_at: u32,
    /// First invocation of this execution environment.
    pub cold: bool,
    pub kernel_source: KernelSource,
    /// Seconds to get the compiled kernel (0 when warm).
    pub kernel_s: f64,
    /// Cold invocations: seconds from process start to the handler (runtime init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_s: Option<f64>,
    /// Cold invocations: seconds from process start to the end of the first iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_iteration_s: Option<f64>,
    /// Billed-duration inputs: the handler's wall time and the configured memory.
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

/// Kinds of function errors (the Lambda `errorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The event is malformed or inconsistent: retrying the same event cannot help.
    BadEvent,
    /// The job cannot succeed as given (data, kernel, parameters, another worker failed).
    Failed,
    /// A transient failure (the state store was unreachable): a retry may succeed.
    Transient,
}

impl ErrorKind {
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorKind::BadEvent => "ifp.BadEvent",
            ErrorKind::Failed => "ifp.Failed",
            ErrorKind::Transient => "ifp.Transient",
        }
    }
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }
}

/// A function error as Lambda reports it: `errorType` is one of [`ErrorKind::error_type`], and
/// `errorMessage` starts with `retryable: true|false` then names the worker and the cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("retryable: {}; worker {worker}: {message}", kind.retryable())]
pub struct FunctionError {
    pub kind: ErrorKind,
    /// The worker index (`?` when the event could not be read).
    pub worker: String,
    pub message: String,
}

impl FunctionError {
    pub fn new(kind: ErrorKind, worker: impl ToString, message: impl Into<String>) -> Self {
        Self { kind, worker: worker.to_string(), message: message.into() }
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        lambda_runtime::Diagnostic { error_type: e.kind.error_type().to_string(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_workers_follow_memory_not_nproc() {
        assert_eq!(inner_for_memory(128), 1);
        assert_eq!(inner_for_memory(1769), 1);
        assert_eq!(inner_for_memory(3538), 2);
        assert_eq!(inner_for_memory(7076), 4);
        assert_eq!(inner_for_memory(10240), 6);
        assert_eq!(inner_for_memory(1_000_000), 6);
    }

    #[test]
    fn numbers_and_strings_are_parameters_and_unknown_fields_are_refused() {
        let ev: JobEvent = serde_json::from_str(
            r#"{"job":"j","worker":0,"workers":1,"data":"d.npy","kernel":"kmeans","params":{"k":8,"init":"first","tol":0.5},"max_iter":3}"#,
        )
        .unwrap();
        assert_eq!(
            ev.kernel_params().unwrap(),
            vec![("init".into(), "first".into()), ("k".into(), "8".into()), ("tol".into(), "0.5".into())]
        );
        assert_eq!(ev.sync_timeout_s, 60.0);
        let e = serde_json::from_str::<JobEvent>(
            r#"{"job":"j","worker":0,"workers":1,"data":"d","kernel":"k","max_iter":3,"maxiter":4}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `maxiter`"), "{e}");
    }

    #[test]
    fn errors_say_whether_a_retry_can_help() {
        let e = FunctionError::new(ErrorKind::Failed, 2, "cannot read /x.npy");
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "ifp.Failed");
        assert_eq!(d.error_message, "retryable: false; worker 2: cannot read /x.npy");
    }
}
