//! The invocation handler: the event is the function's task, the response its report.
//!
//! [`handle`] is a plain async function taking its dependencies ([`Deps`], built once per
//! execution environment) as a parameter, so tests call it directly with a hand-built
//! `LambdaEvent`. The work itself is blocking (wasm instances on threads, a blocking Redis
//! connection) and runs on tokio's blocking pool. A retried invocation rejoins its job where
//! the state store says it is (see [`ifp_host::run_task`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ifp_host::data::object::S3Connector;
use ifp_host::kernel::Kernels;
use ifp_host::run_task::{run_task, TaskContext};
use ifp_host::sync::InProcess;
use ifp_host::task::{inner_for_memory, Invocation, RedisUrl};
use ifp_host::{FailureKind, FunctionFailure, FunctionReport, FunctionTask};
use lambda_runtime::{Diagnostic, LambdaEvent};

/// Everything a function needs besides its event, built once per execution environment.
pub struct Deps {
    pub kernels: Kernels,
    pub s3: S3Connector,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`: sizes the inner workers and goes into the report.
    pub memory_mb: Option<u64>,
    /// `IFP_REDIS_URL`: the state store when the event names none.
    pub redis_url: Option<String>,
    /// Tests only: an in-process store for events that name no Redis.
    pub in_process: Option<InProcess>,
    /// When this process started (for cold-start timings).
    pub process_start: Instant,
    /// Invocations served by this process so far.
    pub invocations: AtomicU64,
}

impl Deps {
    pub fn new(kernels: Kernels, memory_mb: Option<u64>, redis_url: Option<String>, process_start: Instant) -> Self {
        Self {
            kernels,
            // Endpoint from AWS_ENDPOINT_URL_S3, as for every SDK client.
            s3: S3Connector::new(std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|e| !e.is_empty())),
            memory_mb,
            redis_url,
            in_process: None,
            process_start,
            invocations: AtomicU64::new(0),
        }
    }
}

/// A function failure as Lambda reports it: `errorType` is `ifp.<Kind>` (see
/// [`FailureKind::name`]; only `ifp.StoreUnreachable` is worth a retry), `errorMessage` the
/// [`FunctionFailure`] as JSON (function, iteration, kind, one-line message), which the
/// driver reads back typed.
pub fn diagnostic(f: &FunctionFailure) -> Diagnostic {
    let error_message = serde_json::to_string(f).unwrap_or_else(|_| f.to_string());
    Diagnostic { error_type: format!("ifp.{}", f.kind.name()), error_message }
}

/// Handles one invocation. The payload is parsed here so that a malformed event gets a clear
/// `ifp.BadInput` rather than the runtime's generic error.
pub async fn handle(event: LambdaEvent<serde_json::Value>, deps: Arc<Deps>) -> Result<FunctionReport, Diagnostic> {
    let started = Instant::now();
    let function = ["function", "worker"].iter().find_map(|k| event.payload.get(k)?.as_u64()).map(|f| f as u32);
    let mut task: FunctionTask = serde_json::from_value(event.payload).map_err(|e| {
        diagnostic(&FunctionFailure::new(FailureKind::BadInput, function, None, format!("invalid event: {e}")))
    })?;
    let cold = deps.invocations.fetch_add(1, Ordering::SeqCst) == 0;
    tracing::info!(job = %task.job, function = task.function, functions = task.functions, cold, request = %event.context.request_id, "invocation");
    if task.redis.is_none() {
        task.redis = deps.redis_url.clone().map(RedisUrl);
    }
    let deadline = deadline_of(&event.context, started);
    let d = deps.clone();
    tokio::task::spawn_blocking(move || invoke(&task, &d, cold, started, deadline))
        .await
        .unwrap_or_else(|e| {
            Err(FunctionFailure::new(FailureKind::Host, function, None, format!("the function panicked: {e}")))
        })
        .map_err(|f| diagnostic(&f))
}

/// The invocation's time limit as an instant of this process's clock: Lambda gives it in
/// milliseconds since the epoch (`Lambda-Runtime-Deadline-Ms`); `None` if it gave none.
fn deadline_of(context: &lambda_runtime::Context, now: Instant) -> Option<Instant> {
    let deadline_ms = context.deadline;
    if deadline_ms == 0 {
        return None;
    }
    let epoch_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(now + Duration::from_millis(deadline_ms.saturating_sub(epoch_ms)))
}

fn invoke(
    task: &FunctionTask,
    deps: &Deps,
    cold: bool,
    started: Instant,
    deadline: Option<Instant>,
) -> Result<FunctionReport, FunctionFailure> {
    let cx = TaskContext {
        kernels: &deps.kernels,
        s3: &deps.s3,
        in_process: deps.in_process.as_ref(),
        data: None,
        default_inner: deps.memory_mb.map_or(1, inner_for_memory),
        deadline,
    };
    let mut first_iteration_s = None;
    let mut report = run_task(task, &cx, &mut |it| {
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
    })?;
    report.invocation = Some(Invocation {
        cold,
        init_s: cold.then(|| (started - deps.process_start).as_secs_f64()),
        first_iteration_s,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        memory_mb: deps.memory_mb,
    });
    Ok(report)
}
