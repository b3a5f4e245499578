//! What one function is asked to do and what it answers: the [`FunctionTask`] every host
//! receives (the Lambda event, `ifp-worker`'s stdin, an in-process thread's argument), the
//! [`FunctionReport`] it returns, and the typed [`FunctionFailure`] it fails with.
//!
//! A task is plain JSON, so a function can also be invoked by hand (`aws lambda invoke`):
//!
//! ```json
//! { "job": "demo-1", "function": 0, "functions": 2, "data": "s3://bucket/blobs.npy",
//!   "kernel": "kmeans", "params": { "k": "8" }, "max_iter": 50 }
//! ```
//!
//! A plugin is named by its `s3://` URI (or a path the function can read), optionally with
//! the SHA-256 the component must have and its sandbox limits (`kernel_sha256`,
//! `kernel_memory_mb`, `step_timeout_s`). Model values that are not finite (a kernel's
//! bookkeeping NaN, an infinite loss) travel as the strings `"NaN"`, `"inf"` and `"-inf"`, so
//! every model crosses JSON bit for bit. The Redis URL's password never shows in `Debug`
//! output or logs ([`RedisUrl`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::libsvm::LibsvmFormat;
use crate::data::{CsvFormat, LabelCol};
use crate::kernel::{ClassCount, DataShape, KernelOrigin, Param, Sandbox};
use crate::sync::model_ref::ModelRef;
use crate::sync::redis::redact;
use crate::sync::SyncStats;

/// Memory that buys one vCPU of CPU time on AWS Lambda, in MB.
pub const MB_PER_VCPU: u64 = 1769;

/// The most vCPUs (and so inner workers) a Lambda function gets.
pub const MAX_VCPUS: u32 = 6;

/// Inner workers for a Lambda function with `memory_mb` of configured memory: its CPU share
/// in whole vCPUs (one per [`MB_PER_VCPU`], rounded), between 1 and [`MAX_VCPUS`]. Lambda's
/// `nproc` reports more cores than the CPU time a small function actually gets, so it is
/// not used.
pub fn inner_for_memory(memory_mb: u64) -> u32 {
    ((memory_mb as f64 / MB_PER_VCPU as f64).round() as u32).clamp(1, MAX_VCPUS)
}

/// The sync timeout of a task that gives none, in seconds.
pub const DEFAULT_SYNC_TIMEOUT_S: f64 = 60.0;

/// Everything one function of a job needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionTask {
    /// Job id, shared by every function of the job (letters, digits, `.`, `_`, `-`).
    pub job: String,
    /// This function's index, `0..functions`.
    #[serde(alias = "worker")]
    pub function: u32,
    /// Number of functions in the job.
    #[serde(alias = "workers")]
    pub functions: u32,
    /// Inner workers (wasm instances); `None`: the host decides (Lambda: from the configured
    /// memory; a local process: its available parallelism).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<u32>,
    /// The data set: `s3://bucket/key` or a path the function can read (`.npy` or `.csv`).
    pub data: String,
    /// The ETag of the S3 object `data` as the driver saw it: every read asks for this
    /// version (`If-Match`), so an object replaced during the job is refused, not mixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_etag: Option<String>,
    /// Where the label is (`last` or `none`, the default).
    #[serde(default)]
    pub label_col: LabelCol,
    /// A CSV's header line and delimiter (default: none, `,`).
    #[serde(default, skip_serializing_if = "CsvFormat::is_default")]
    pub csv: CsvFormat,
    /// How to read a LIBSVM file (`.svm`, `.libsvm`, `.svmlight`): index base, width, hashing.
    #[serde(default, skip_serializing_if = "LibsvmFormat::is_default")]
    pub libsvm: LibsvmFormat,
    /// An S3-compatible endpoint for `s3://` data and kernels (path-style addressing);
    /// `None`: the host's own (`AWS_ENDPOINT_URL_S3`, else AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
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
    /// Kernel parameters by name, in order; in JSON an object whose values may be strings,
    /// numbers or booleans.
    #[serde(default, with = "params_map")]
    pub params: Vec<Param>,
    /// The initial model (as the driver computed it); `None`: computed by the function from
    /// the data, which gives every function the same model.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "floats::option")]
    pub model: Option<Vec<f64>>,
    /// The initial model stored in the job's Redis keys instead, when too large for the task
    /// (a Lambda event is capped at 6 MB): its length and SHA-256 ([`crate::sync::model_ref`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ref: Option<ModelRef>,
    pub max_iter: u32,
    /// The state store: a Redis URL. `None`: the host's own (the Lambda function's
    /// `IFP_REDIS_URL`, or the in-process store of a run whose functions are threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrl>,
    /// Seconds to wait for the other functions in one iteration.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_s: f64,
    /// Also return the per-row output of the final model (k-means labels).
    #[serde(default)]
    pub assignments: bool,
    /// Where the function writes those per-row outputs itself instead of returning them (see
    /// [`crate::labels`]): a `.npy` or `.csv` path every function can write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_out: Option<String>,
    /// The job plan's fingerprint ([`crate::job::JobPlan::fingerprint`]): a function joins
    /// only a job of the same plan, so a reused job id cannot mix two jobs' models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    /// The run that owns the job id (unique per `ifp run`): a function of another run is
    /// refused at the join, unless [`FunctionTask::resume`] says to take the job over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// This run continues a job another run started (`ifp run --resume`): the plan must match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
    /// Stale-synchronous rounds: a function may run up to this many rounds ahead of the
    /// slowest ([`crate::sync::stale`]); 0 (the default, left out of the JSON) is synchronous.
    #[serde(default, skip_serializing_if = "crate::sync::stale::is_synchronous")]
    pub staleness: u32,
}

fn default_sync_timeout() -> f64 {
    DEFAULT_SYNC_TIMEOUT_S
}

impl FunctionTask {
    /// Checks what serde cannot: ranges and consistency. Every message names the field and
    /// the offending value.
    pub fn validate(&self) -> Result<(), FunctionFailure> {
        let bad = |m: String| Err(FunctionFailure::new(FailureKind::BadInput, Some(self.function), None, m));
        if self.functions == 0 {
            return bad("functions must be at least 1, got 0".into());
        }
        if self.function >= self.functions {
            return bad(format!("function {} is out of range for functions = {}", self.function, self.functions));
        }
        if self.max_iter == 0 {
            return bad("max_iter must be at least 1, got 0".into());
        }
        if !(self.sync_timeout_s.is_finite() && self.sync_timeout_s > 0.0 && self.sync_timeout_s <= 1e6) {
            return bad(format!("sync_timeout_s must be a positive number of seconds, got {}", self.sync_timeout_s));
        }
        if self.inner == Some(0) {
            return bad("inner must be at least 1, got 0".into());
        }
        if self.data.is_empty() {
            return bad("data must name a data set (s3://bucket/key or a path), got an empty string".into());
        }
        if self.model.is_some() && self.model_ref.is_some() {
            return bad("model and model_ref are exclusive: give the model or its reference".into());
        }
        if let Err(e) = crate::sync::redis::check_job_id(&self.job) {
            return bad(e.to_string());
        }
        self.sandbox()
            .map(|_| ())
            .map_err(|e| FunctionFailure::new(FailureKind::BadInput, Some(self.function), None, e.to_string()))
    }

    /// The sandbox from `kernel_memory_mb` and `step_timeout_s`.
    pub fn sandbox(&self) -> Result<Sandbox, SandboxError> {
        sandbox_from(self.kernel_memory_mb, self.step_timeout_s)
    }

    /// The sync timeout as a duration (after [`FunctionTask::validate`]).
    pub fn sync_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.sync_timeout_s)
    }
}

/// The sandbox limits as the task and the command line give them: a memory cap in MiB
/// (1 to 4096) and seconds per call into the kernel.
pub fn sandbox_from(memory_mb: Option<u64>, step_timeout_s: Option<f64>) -> Result<Sandbox, SandboxError> {
    let memory_limit = match memory_mb {
        None => None,
        Some(m) if (1..=4096).contains(&m) => Some((m as usize) << 20),
        Some(m) => return Err(SandboxError::Memory(m)),
    };
    let call_timeout = match step_timeout_s {
        None => None,
        Some(t) if t.is_finite() && t > 0.0 && t <= 1e6 => Some(Duration::from_secs_f64(t)),
        Some(t) => return Err(SandboxError::StepTimeout(t)),
    };
    Ok(Sandbox { memory_limit, call_timeout })
}

/// Sandbox limits out of range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SandboxError {
    #[error("kernel memory must be between 1 and 4096 MiB, got {0}")]
    Memory(u64),
    #[error("the step timeout must be a positive number of seconds (at most 1e6), got {0}")]
    StepTimeout(f64),
}

/// A Redis URL whose password never shows in `Debug` or `Display` (it serializes in full:
/// the task is how it reaches the function).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(pub String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", redact(&self.0))
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// Timings of one iteration as seen by one function.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    pub iteration: u32,
    /// Seconds in the parallel step and the native merge.
    pub compute_s: f64,
    /// Seconds from the merged partial to the next model (arrival, reduction, release).
    pub sync_s: f64,
    #[serde(with = "floats::one")]
    pub loss: f64,
    /// Requests this function sent to the state store during the iteration.
    #[serde(default)]
    pub round_trips: u64,
    /// Bytes of partials this function sent to the store during the iteration (its own, and
    /// a group's sum when it merged one): see [`crate::sync::codec`].
    #[serde(default)]
    pub partial_bytes: u64,
    /// Stale-synchronous runs only: how old the partials the round summed were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<crate::sync::stale::Staleness>,
}

/// What the Lambda host adds about its invocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// First invocation of this execution environment.
    pub cold: bool,
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

/// What one function reports at the end of a job.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FunctionReport {
    #[serde(alias = "worker")]
    pub function: u32,
    pub inner: u32,
    pub rows: u64,
    /// The data set's shape as this function saw it.
    pub shape: DataShape,
    /// The iteration this function entered the job at (0, or later for a retried one).
    #[serde(default)]
    pub joined_at: u32,
    /// How the compiled kernel was had, and the seconds it took.
    #[serde(default)]
    pub kernel_origin: KernelOrigin,
    #[serde(default)]
    pub kernel_s: f64,
    pub load_s: f64,
    /// Bytes this function downloaded while loading (S3 data), and the bytes of its share.
    #[serde(default)]
    pub bytes_fetched: u64,
    #[serde(default)]
    pub share_bytes: u64,
    pub total_s: f64,
    pub iterations: Vec<IterationReport>,
    pub converged: bool,
    /// Empty when too large for the report: then in the job's Redis keys ([`Self::model_ref`]).
    #[serde(with = "floats")]
    pub model: Vec<f64>,
    /// The final model's reference, when it travels through Redis ([`crate::sync::model_ref`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ref: Option<ModelRef>,
    pub sync: SyncStats,
    /// Per-row output of the final model (k-means: the cluster of each row), if requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<u32>>,
    /// A classifier's final model on this function's rows: per class, the rows labelled with
    /// it and those predicted right (None: not a classifier, or the function left early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_counts: Option<Vec<ClassCount>>,
    /// Lambda only: the invocation's cold start and billing inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Invocation>,
    /// The function left at an iteration boundary because its time limit neared, before the
    /// job finished: invoke the same task again and it goes on where the job is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuation: bool,
    /// The earlier attempts of this function in this run, oldest first (filled by the backend
    /// that retried or continued it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// One attempt of a function that did not end it: it was lost (crashed, killed, timed out,
/// throttled, unreachable) and started again, or it left before its time limit (a
/// continuation). Either way the next attempt rejoins the job where the store says it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The iteration it entered the job at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<u32>,
    /// Iterations it completed (their reports are part of the function's history).
    pub iterations: u32,
    /// `continued` (left before its time limit) or `lost`.
    pub outcome: AttemptOutcome,
    /// Why it ended, in one line.
    pub reason: String,
    /// Seconds from the start of the job's functions to the end of this attempt.
    #[serde(default)]
    pub ended_s: f64,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// It left at an iteration boundary before its time limit.
    #[default]
    Continued,
    /// It crashed, was killed, timed out or could not be invoked, and was started again.
    Lost,
}

impl FunctionReport {
    /// This function's report of iteration `t`, if it ran it (its iterations run from
    /// `joined_at` on, one after the other).
    pub fn iteration(&self, t: u32) -> Option<&IterationReport> {
        self.iterations.get(t.checked_sub(self.joined_at)? as usize).filter(|i| i.iteration == t)
    }
}

/// Why a function failed; decides whether a retry can help and which failure of a job is
/// its root cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The task or its parameters are wrong: the same task fails again.
    BadInput,
    /// The data could not be read or parsed.
    DataSource,
    /// The kernel could not be loaded, returned an error, trapped or hit a sandbox limit.
    Kernel,
    /// Another function did not arrive within the sync timeout.
    SyncTimeout,
    /// Another function failed first; this one only stopped.
    Aborted,
    /// The state store could not be reached or lost the job's state: a retry may succeed.
    StoreUnreachable,
    /// The host itself failed (a panic, an output that could not be written).
    Host,
}

impl FailureKind {
    /// Whether running the same task again may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, FailureKind::StoreUnreachable)
    }

    /// The name in Lambda's `errorType` (`ifp.<Name>`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::BadInput => "BadInput",
            FailureKind::DataSource => "DataSource",
            FailureKind::Kernel => "Kernel",
            FailureKind::SyncTimeout => "SyncTimeout",
            FailureKind::Aborted => "Aborted",
            FailureKind::StoreUnreachable => "StoreUnreachable",
            FailureKind::Host => "Host",
        }
    }

    /// The kind named by [`FailureKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            FailureKind::BadInput,
            FailureKind::DataSource,
            FailureKind::Kernel,
            FailureKind::SyncTimeout,
            FailureKind::Aborted,
            FailureKind::StoreUnreachable,
            FailureKind::Host,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// A function's failure: which function, during which iteration, of which kind, and the
/// message (one line, naming the offending value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct FunctionFailure {
    /// `None` when the task could not even be read.
    pub function: Option<u32>,
    /// The iteration the function was in, if it had reached the loop.
    pub iteration: Option<u32>,
    pub kind: FailureKind,
    pub message: String,
}

impl FunctionFailure {
    pub fn new(kind: FailureKind, function: Option<u32>, iteration: Option<u32>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self { function, iteration, kind, message: message.split_whitespace().collect::<Vec<_>>().join(" ") }
    }

    fn describe(&self) -> String {
        let who = self.function.map_or("a function".to_string(), |f| format!("function {f}"));
        let when = match self.iteration {
            // 0-based, as in every report and sync error.
            Some(t) => format!(" during iteration {t}"),
            None => String::new(),
        };
        format!("{who} failed{when}: {}", self.message)
    }
}

/// `Vec<Param>` as a JSON object, in order; values may be strings, numbers or booleans.
mod params_map {
    use super::*;
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap as _;

    pub fn serialize<S: Serializer>(params: &[Param], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(params.len()))?;
        for (k, v) in params {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Param>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Param>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of parameters (name: string, number or boolean)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Param>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "parameter '{k}' must be a string, a number or a boolean, got {other}"
                            )))
                        }
                    };
                    out.push((k, v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// f64 values through JSON bit for bit, the non-finite ones included: NaN and the infinities
/// as the strings `"NaN"`, `"inf"`, `"-inf"` (JSON has no literal for them; serde_json would
/// write `null` and refuse to read it back).
pub mod floats {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum F {
        Finite(f64),
        Special(String),
    }

    fn to(v: f64) -> F {
        if v.is_finite() {
            F::Finite(v)
        } else if v.is_nan() {
            F::Special("NaN".into())
        } else if v > 0.0 {
            F::Special("inf".into())
        } else {
            F::Special("-inf".into())
        }
    }

    fn from<E: serde::de::Error>(f: F) -> Result<f64, E> {
        match f {
            F::Finite(v) => Ok(v),
            F::Special(s) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "inf" | "Infinity" => Ok(f64::INFINITY),
                "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("expected a number, \"NaN\", \"inf\" or \"-inf\", got \"{other}\""))),
            },
        }
    }

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&x| to(x)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<F>::deserialize(d)?.into_iter().map(from).collect()
    }

    /// One value.
    pub mod one {
        use super::*;
        pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
            to(*v).serialize(s)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            from(F::deserialize(d)?)
        }
    }

    /// An optional vector.
    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.collect_seq(v.iter().map(|&x| to(x))),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
            Option::<Vec<F>>::deserialize(d)?.map(|v| v.into_iter().map(from).collect()).transpose()
        }
    }
}

#[cfg(test)]
mod tests;
