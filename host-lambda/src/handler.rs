//! The invocation handler: one function of a job, from its event to its result.
//!
//! [`handle`] is a plain async function taking its dependencies ([`Deps`]: the compiled
//! kernels, how to reach the state store, the function's configuration) as a parameter, so
//! tests call it directly with a hand-built `LambdaEvent`. The work itself is blocking (wasm
//! instances on threads, a blocking Redis connection) and runs on tokio's blocking pool.
//!
//! The kernel (a builtin, or a plugin from S3 or a path) is read, checked against the event's
//! content hash and sandbox limits, and compiled or found compiled ([`Kernels`]) before any
//! data is read.
//!
//! A function enters its job where the state store says the job is: iteration 0 for a first
//! invocation, a later iteration for a retried one (Lambda retries failed invocations), which
//! then replays the previous model and arrives again; arrivals are idempotent, so a retry
//! never counts a partial twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use ifp_host::function::{Function, IterationReport, JobSpec, Resume};
use ifp_host::job::{initial_model, Data};
use ifp_host::sync::{Release, StateStore, SyncError};
use lambda_runtime::LambdaEvent;

use crate::event::{inner_for_memory, ErrorKind, FunctionError, FunctionResult, JobEvent, Shape};
use crate::kernels::{GetError, Kernels};

/// Where a function enters its job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    /// Iterations already released: the first iteration this function runs.
    pub iteration: u32,
    /// The release of `iteration - 1`, if any (its model is the one to step).
    pub last: Option<Release>,
    /// The release of `iteration - 2`, if any (its model is the one to replay).
    pub before: Option<Release>,
}

/// Opens a function's connection to its job's state.
pub trait Connect: Send + Sync {
    /// Connects worker `ev.worker` to job `ev.job` at `url` and finds where it enters the job.
    fn connect(
        &self,
        ev: &JobEvent,
        url: Option<&str>,
        timeout: Duration,
    ) -> Result<(Box<dyn StateStore>, Entry), FunctionError>;
}

/// Everything a function needs besides its event, built once per execution environment.
pub struct Deps {
    pub kernels: Kernels,
    pub connect: Box<dyn Connect>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`: sizes the inner workers and goes into the result.
    pub memory_mb: Option<u64>,
    /// `IFP_REDIS_URL`: the state store when the event names none.
    pub redis_url: Option<String>,
    /// When this process started (for cold-start timings).
    pub process_start: Instant,
    /// Invocations served by this process so far.
    pub invocations: AtomicU64,
    /// S3, connected on first use (endpoint from `AWS_ENDPOINT_URL_S3`, as every SDK client).
    pub s3: ifp_host::object::S3Connector,
}

impl Deps {
    pub fn new(
        kernels: Kernels,
        connect: Box<dyn Connect>,
        memory_mb: Option<u64>,
        redis_url: Option<String>,
        process_start: Instant,
    ) -> Self {
        let s3 = ifp_host::object::S3Connector::new(std::env::var("AWS_ENDPOINT_URL_S3").ok());
        Self { kernels, connect, memory_mb, redis_url, process_start, invocations: AtomicU64::new(0), s3 }
    }

    /// Opens the data set named by an event.
    fn open_data(&self, ev: &JobEvent) -> anyhow::Result<Data> {
        Data::open(&ev.data, ev.label_col, &self.s3)
    }
}

/// Handles one invocation; the payload is parsed here so a malformed event gets a clear,
/// non-retryable error rather than the runtime's generic one.
pub async fn handle(event: LambdaEvent<serde_json::Value>, deps: Arc<Deps>) -> Result<FunctionResult, FunctionError> {
    let started = Instant::now();
    let worker = event.payload.get("worker").and_then(|w| w.as_u64()).map_or("?".to_string(), |w| w.to_string());
    let ev: JobEvent = serde_json::from_value(event.payload)
        .map_err(|e| FunctionError::new(ErrorKind::BadEvent, &worker, format!("invalid event: {e}")))?;
    let cold = deps.invocations.fetch_add(1, Ordering::SeqCst) == 0;
    tracing::info!(job = %ev.job, worker = ev.worker, workers = ev.workers, cold, request = %event.context.request_id, "invocation");
    let d = deps.clone();
    tokio::task::spawn_blocking(move || run_function(&ev, &d, cold, started))
        .await
        .unwrap_or_else(|e| Err(FunctionError::new(ErrorKind::Failed, &worker, format!("the function panicked: {e}"))))
}

fn bad(ev: &JobEvent, message: String) -> FunctionError {
    FunctionError::new(ErrorKind::BadEvent, ev.worker, message)
}

/// Classifies a failure of the job itself: a lost state store is worth a retry, anything
/// else (data, kernel, parameters, another worker's failure, a timeout) is not.
fn failed(ev: &JobEvent, e: anyhow::Error) -> FunctionError {
    let transient = e.chain().any(|c| matches!(c.downcast_ref(), Some(SyncError::Store { .. })));
    let kind = if transient { ErrorKind::Transient } else { ErrorKind::Failed };
    FunctionError::new(kind, ev.worker, format!("{e:#}"))
}

/// Checks what serde cannot: ranges and consistency.
fn validate(ev: &JobEvent) -> Result<(), FunctionError> {
    if ev.workers == 0 {
        return Err(bad(ev, "workers must be at least 1, got 0".into()));
    }
    if ev.worker >= ev.workers {
        return Err(bad(ev, format!("worker {} is out of range for workers = {}", ev.worker, ev.workers)));
    }
    if ev.max_iter == 0 {
        return Err(bad(ev, "max_iter must be at least 1, got 0".into()));
    }
    if !(ev.sync_timeout_s.is_finite() && ev.sync_timeout_s > 0.0) {
        return Err(bad(ev, format!("sync_timeout_s must be a positive number of seconds, got {}", ev.sync_timeout_s)));
    }
    if ev.inner == Some(0) {
        return Err(bad(ev, "inner must be at least 1, got 0".into()));
    }
    if ev.data.is_empty() {
        return Err(bad(ev, "data must name a data set (s3://bucket/key or a path), got an empty string".into()));
    }
    Ok(())
}

fn run_function(ev: &JobEvent, deps: &Deps, cold: bool, started: Instant) -> Result<FunctionResult, FunctionError> {
    validate(ev)?;
    let params = ev.kernel_params().map_err(|m| bad(ev, m))?;
    let inner = ev.inner.unwrap_or_else(|| deps.memory_mb.map_or(1, inner_for_memory));
    let sandbox = ev.sandbox().map_err(|m| bad(ev, m))?;
    let sandbox = deps.kernels.sandbox(sandbox.memory_limit, sandbox.call_timeout);
    let timeout = Duration::from_secs_f64(ev.sync_timeout_s);
    let url = ev.redis.as_deref().or(deps.redis_url.as_deref());
    // Connected first, so that a kernel or data set this function cannot load stops the
    // other functions at once instead of leaving them to wait for the sync timeout.
    let (mut store, entry) = deps.connect.connect(ev, url, timeout)?;
    let loaded = (|| {
        let (engine, kernel_source, kernel_s) = deps
            .kernels
            .get(&ev.kernel, ev.kernel_sha256.as_deref(), &sandbox, Some(&deps.s3))
            .map_err(|e| match e {
                GetError::Unknown { .. } => bad(ev, e.to_string()),
                GetError::Load(e) => failed(ev, e),
            })?;
        let data = deps.open_data(ev).map_err(|e| failed(ev, e))?;
        let shape = data.shape().map_err(|e| failed(ev, e))?;
        Ok::<_, FunctionError>((engine, kernel_source, kernel_s, data, shape))
    })();
    let (engine, kernel_source, kernel_s, data, shape) = match loaded {
        Ok(x) => x,
        Err(e) => {
            store.abort(ev.worker, &e.message);
            return Err(e);
        }
    };

    let setup = (|| -> anyhow::Result<(Resume, Function)> {
        let model0 = match &ev.model {
            Some(m) => m.clone(),
            None => initial_model(&engine, &data, &params, &[])?,
        };
        let resume = match entry.iteration {
            0 => Resume { iteration: 0, model: model0, previous: None },
            t => {
                let last = entry.last.clone().context("the state store lost the last release")?;
                if last.stop {
                    anyhow::bail!("job {}: already finished after iteration {}", ev.job, t - 1);
                }
                let previous = match t {
                    1 => model0,
                    _ => entry.before.clone().context("the state store lost the release before the last")?.model,
                };
                tracing::info!(job = %ev.job, worker = ev.worker, iteration = t, "rejoining the job");
                Resume { iteration: t, model: last.model, previous: Some(previous) }
            }
        };
        let spec = Arc::new(JobSpec {
            job: ev.job.clone(),
            params: params.clone(),
            shape,
            max_iter: ev.max_iter,
            workers: ev.workers,
        });
        let f = Function::load_share(&engine, spec, ev.worker, inner, &data.source())?;
        Ok((resume, f))
    })();
    let (resume, mut f) = match setup {
        Ok(x) => x,
        Err(e) => {
            store.abort(ev.worker, &format!("{e:#}"));
            return Err(failed(ev, e));
        }
    };
    let mut first_iteration_s = None;
    let mut on_iteration = |it: &IterationReport| {
        if cold && first_iteration_s.is_none() {
            first_iteration_s = Some(deps.process_start.elapsed().as_secs_f64());
        }
        tracing::debug!(
            iteration = it.iteration,
            loss = it.loss,
            compute_s = it.compute_s,
            sync_s = it.sync_s,
            "iteration"
        );
    };
    let joined_at = resume.iteration;
    let report = f.run_from(store.as_mut(), resume, ev.assignments, &mut on_iteration).map_err(|e| failed(ev, e))?;
    Ok(FunctionResult {
        report,
        shape: Shape { cols: shape.cols, has_labels: shape.has_labels, total_rows: shape.total_rows },
        joined_at,
        cold,
        kernel_source,
        kernel_s,
        init_s: cold.then(|| (started - deps.process_start).as_secs_f64()),
        first_iteration_s,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        memory_mb: deps.memory_mb,
    })
}
