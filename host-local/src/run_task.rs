//! The function lifecycle, written once: [`run_task`] takes a [`FunctionTask`] and runs it
//! to its [`FunctionReport`] or a typed [`FunctionFailure`]. Every host calls it: the
//! in-process threads ([`crate::job::Threads`]), `ifp-worker` (a task on stdin) and the
//! Lambda handler (the event is the task).
//!
//! The steps, in order:
//! 1. check the task ([`FunctionTask::validate`]);
//! 2. connect to the state store and find where the job is (iteration 0, or later for a
//!    restarted function);
//! 3. get the compiled kernel (in memory, precompiled on disk, or compiled; a plugin's bytes
//!    checked against the job's SHA-256) and open the data;
//! 4. load the function's share into its inner workers, counting its rows and collecting
//!    init-sample candidates;
//! 5. the census ([`crate::census`]): the row counts and samples meet, and the first model
//!    (the task's, or `init` on the merged sample) comes back with the job's row count;
//!    then the resume point;
//! 6. iterate ([`Function::run_from`]) and report.
//!
//! Once connected, a failure in any later step is announced to the other functions through
//! the store, so they stop at once instead of waiting out the sync timeout.

use std::sync::Arc;

use crate::census::{self, Offer};
use crate::data::object::S3Connector;
use crate::data::Data;
use crate::function::{failure, Classify, Function, JobSpec, Resume};
use crate::kernel::{KernelEngine, Kernels, Param, SamplePlan};
use crate::sync::redis::RedisStore;
use crate::sync::{InProcess, JoinPoint, StateStore};
use crate::task::{FailureKind, FunctionFailure, FunctionReport, FunctionTask, IterationReport};

/// What a host provides besides the task, shared by every task it runs.
pub struct TaskContext<'a> {
    /// Compiled kernels of this process.
    pub kernels: &'a Kernels,
    /// S3 for `s3://` data and kernels.
    pub s3: &'a S3Connector,
    /// The store of tasks that name no Redis: functions that are threads of this process.
    pub in_process: Option<&'a InProcess>,
    /// The data set, already open in this process (threads share one); `None`: each task
    /// opens `task.data`.
    pub data: Option<&'a Data>,
    /// Inner workers of tasks that give none.
    pub default_inner: u32,
    /// When the host stops this function (a Lambda invocation's time limit): it leaves at an
    /// iteration boundary before then, with a continuation report.
    pub deadline: Option<std::time::Instant>,
}

/// Runs one function of a job from its task to its report.
pub fn run_task(
    task: &FunctionTask,
    cx: &TaskContext<'_>,
    on_iteration: &mut dyn FnMut(&IterationReport),
) -> Result<FunctionReport, FunctionFailure> {
    task.validate()?;
    let f = task.function;
    if task.staleness > 0 && cx.deadline.is_some() {
        // A stale job cannot be left and rejoined at a time limit (a Lambda invocation's).
        let m = format!("staleness {} is not supported where functions have a time limit (Lambda)", task.staleness);
        return Err(FunctionFailure::new(FailureKind::BadInput, Some(f), None, m));
    }
    let (mut store, joined) = connect(task, cx)?;
    // The task's S3 endpoint, where it names one the host does not use.
    let own_s3 = match &task.s3_endpoint {
        Some(e) if Some(e.as_str()) != cx.s3.endpoint() => Some(S3Connector::new(Some(e.clone()))),
        _ => None,
    };
    let s3 = own_s3.as_ref().unwrap_or(cx.s3);
    let prepared = given_model(task).and_then(|model| {
        let (mut function, origin, kernel_s) = prepare(task, cx, s3, model.is_some())?;
        let (resume, census) = first_model(task, model.as_deref(), store.as_mut(), &mut function, &joined)?;
        Ok((function, resume, census, origin, kernel_s))
    });
    let (mut function, resume, census, origin, kernel_s) = match prepared {
        Ok(p) => p,
        Err(e) => {
            if e.kind != FailureKind::Aborted {
                store.abort(f, &e.message);
            }
            return Err(e);
        }
    };
    let mut report = function.run_from(store.as_mut(), resume, task.assignments, cx.deadline, on_iteration)?;
    // Written to the destination when the task names one (the report then carries none);
    // otherwise they travel in the report (an embedding program's in-memory labels).
    if let Some(dest) = &task.labels_out {
        if let Some(labels) = report.assignments.take() {
            let last = report.iterations.last().map(|i| i.iteration);
            crate::labels::write(dest, f, census.row_offset(f), census.total_rows, &labels, s3)
                .map_err(|e| failure(f, last, e))?;
        }
    }
    // A final model too large for a Lambda response goes through the job's keys.
    if let Some(url) = &task.redis {
        let last = report.iterations.last().map(|i| i.iteration);
        crate::sync::model_ref::report_by_reference(&mut report, url.as_str(), &task.job, task.sync_timeout())
            .map_err(|e| failure(f, last, e))?;
    }
    report.kernel_origin = origin;
    report.kernel_s = kernel_s;
    Ok(report)
}

/// The first model the task gives: in the task, or stored in the job's Redis keys.
fn given_model(task: &FunctionTask) -> Result<Option<Vec<f64>>, FunctionFailure> {
    match (&task.model_ref, &task.redis) {
        (Some(r), Some(url)) => crate::sync::model_ref::fetch(url.as_str(), &task.job, r, task.sync_timeout())
            .map(Some)
            .map_err(|e| failure(task.function, None, e)),
        (Some(_), None) => Err(FunctionFailure::new(
            FailureKind::BadInput,
            Some(task.function),
            None,
            "the task's model is in Redis (model_ref) but the task names no Redis",
        )),
        (None, _) => Ok(task.model.clone()),
    }
}

/// Step 5: the census gives the job's row count and the first model (`model`, when the task
/// gives it); then where this function enters the job.
fn first_model(
    task: &FunctionTask,
    model: Option<&[f64]>,
    store: &mut dyn StateStore,
    function: &mut Function,
    joined: &JoinPoint,
) -> Result<(Resume, census::Census), FunctionFailure> {
    let offer = Offer {
        function: task.function,
        functions: task.functions,
        rows: function.rows(),
        sample: function.take_sample(),
        model,
        shape: function.shape(),
        params: &task.params,
    };
    let census = census::meet(store, function.instance(), offer)?;
    function.set_total_rows(census.total_rows);
    function.place_rows(census.row_offset(task.function));
    let resume = resume_point(task, joined, census.model.clone())?;
    Ok((resume, census))
}

/// Connects to the task's store and joins the job.
fn connect(task: &FunctionTask, cx: &TaskContext<'_>) -> Result<(Box<dyn StateStore>, JoinPoint), FunctionFailure> {
    let f = task.function;
    let mut store: Box<dyn StateStore> = match (&task.redis, cx.in_process) {
        (Some(url), _) => Box::new(
            RedisStore::connect(url.as_str(), &task.job, f, task.functions, task.sync_timeout())
                .map_err(|e| failure(f, None, e))?
                .for_plan(task.plan_sha256.as_deref())
                .for_run(task.run.as_deref(), task.resume),
        ),
        (None, Some(store)) => Box::new(store.clone()),
        (None, None) => {
            return Err(FunctionFailure::new(
                FailureKind::BadInput,
                Some(f),
                None,
                "no state store: give the task a Redis URL (\"redis\"), or set the host's IFP_REDIS_URL",
            ))
        }
    };
    let joined = store.join().map_err(|e| failure(f, None, e))?;
    Ok((store, joined))
}

/// Steps 3 and 4: kernel, data, shards (with the init-sample candidates).
fn prepare(
    task: &FunctionTask,
    cx: &TaskContext<'_>,
    s3: &S3Connector,
    model_given: bool,
) -> Result<(Function, crate::kernel::KernelOrigin, f64), FunctionFailure> {
    let f = task.function;
    let sandbox =
        task.sandbox().map_err(|e| FunctionFailure::new(FailureKind::BadInput, Some(f), None, e.to_string()))?;
    let sandbox = cx.kernels.sandbox(sandbox.memory_limit, sandbox.call_timeout);
    let (engine, origin, kernel_s) = cx
        .kernels
        .get(&task.kernel, task.kernel_sha256.as_deref(), &sandbox, Some(s3))
        .map_err(|e| failure(f, None, e))?;
    let opened;
    let data = match cx.data {
        Some(d) => d,
        None => {
            opened = Data::open_with(&task.data, task.label_col, task.csv, task.libsvm, s3, task.data_etag.as_deref())
                .map_err(|e| failure(f, None, e))?;
            &opened
        }
    };
    // The shape as far as the header tells: a CSV object's row count comes with the census.
    let shape = data.shape().map_err(|e| failure(f, None, e))?;
    let sample = match model_given {
        true => None,
        false => {
            let mut inst = engine.instantiate().map_err(|e| failure(f, None, e))?;
            inst.validate(&task.params, shape).map_err(|e| failure(f, None, e))?;
            Some(inst.plan_sample(&task.params, shape).map_err(|e| failure(f, None, e))?)
        }
    };
    let spec = Arc::new(JobSpec {
        job: task.job.clone(),
        params: task.params.clone(),
        shape,
        max_iter: task.max_iter,
        functions: task.functions,
        staleness: task.staleness,
    });
    let inner = task.inner.unwrap_or(cx.default_inner);
    let function = Function::load_share(&engine, spec, f, inner, data, sample)?;
    Ok((function, origin, kernel_s))
}

/// Where the function enters: iteration 0 with the first model, or (restarted) the
/// iteration the job is at, with the previous model to replay.
fn resume_point(task: &FunctionTask, joined: &JoinPoint, model0: Vec<f64>) -> Result<Resume, FunctionFailure> {
    let f = task.function;
    let t = joined.iteration;
    if t == 0 {
        return Ok(Resume { iteration: 0, model: model0, previous: None });
    }
    let lost = |which: &str| {
        FunctionFailure::new(
            FailureKind::StoreUnreachable,
            Some(f),
            None,
            format!("job {}: the state store lost the {which}", task.job),
        )
    };
    let last = joined.last.clone().ok_or_else(|| lost("last release"))?;
    if last.stop {
        return Err(FunctionFailure::new(
            FailureKind::BadInput,
            Some(f),
            None,
            format!("job {}: already finished after iteration {} (choose another job id)", task.job, t),
        ));
    }
    let previous = match t {
        1 => model0,
        _ => joined.before.clone().ok_or_else(|| lost("release before the last"))?.model,
    };
    tracing::info!(job = %task.job, function = f, iteration = t, "rejoining the job");
    Ok(Resume { iteration: t, model: last.model, previous: Some(previous) })
}

/// Why the first model could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    // Not a `source`: the message already carries the cause, which would print twice.
    #[error("reading the initialisation sample: {0}")]
    Data(crate::data::DataError),
}

impl From<crate::data::DataError> for InitError {
    fn from(e: crate::data::DataError) -> Self {
        InitError::Data(e)
    }
}

impl Classify for InitError {
    fn kind(&self) -> FailureKind {
        match self {
            InitError::Kernel(e) => e.kind(),
            InitError::Data(_) => FailureKind::DataSource,
        }
    }
}

impl InitError {
    /// As function `function`'s failure.
    pub fn at(self, function: u32) -> FunctionFailure {
        failure(function, None, self)
    }
}

/// The initial model: validates the parameters, gathers the sample the kernel asks for and
/// calls its `init`. `start` is a user-supplied starting model (e.g. initial centroids), or
/// empty.
pub fn initial_model(
    engine: &KernelEngine,
    data: &Data,
    params: &[Param],
    start: &[f64],
) -> Result<Vec<f64>, InitError> {
    let shape = data.shape()?;
    let mut inst = engine.instantiate()?;
    inst.validate(params, shape)?;
    let plan = if start.is_empty() { inst.plan_sample(params, shape)? } else { SamplePlan::Head(0) };
    let sample = data.sample(plan)?;
    Ok(inst.init(params, shape, &sample, start)?)
}
