//! A whole job: the [`JobPlan`] that becomes one [`FunctionTask`] per function, the
//! [`Backend`] trait every way of running functions implements (threads here; worker
//! processes and Lambda in the driver), and [`JobOutcome::collect`], the one place that turns
//! the functions' results into the job's outcome or its root-cause failure.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::data::libsvm::LibsvmFormat;
use crate::data::object::S3Connector;
use crate::data::CsvFormat;
use crate::data::Data;
use crate::kernel::{ClassCount, DataShape, KernelEngine, KernelError, Kernels, ModelField, Param};
use crate::merge::add_counts;
use crate::run_task::{run_task, TaskContext};
use crate::sync::InProcess;
use crate::task::{FailureKind, FunctionFailure, FunctionReport, FunctionTask, IterationReport, RedisUrl};
use crate::LabelCol;

/// Everything about a job the driver decided: what each function's task will hold.
#[derive(Clone, Debug)]
pub struct JobPlan {
    pub job: String,
    /// A builtin name, or a plugin's location as the functions can read it.
    pub kernel: String,
    /// A plugin's SHA-256: every function refuses other bytes.
    pub kernel_sha256: Option<String>,
    pub kernel_memory_mb: Option<u64>,
    pub step_timeout_s: Option<f64>,
    /// The data set's location as the functions can read it.
    pub data: String,
    /// The S3 object's ETag when the driver opened it (every function reads that version).
    pub data_etag: Option<String>,
    pub label_col: LabelCol,
    /// A CSV's header line and delimiter.
    pub csv: CsvFormat,
    /// How a LIBSVM file is read (its width fixed by the driver).
    pub libsvm: LibsvmFormat,
    /// The S3-compatible endpoint the functions use (`None`: their own).
    pub s3_endpoint: Option<String>,
    pub params: Vec<Param>,
    pub functions: u32,
    /// Inner workers per function; `None`: each host decides.
    pub inner: Option<u32>,
    pub max_iter: u32,
    pub sync_timeout: Duration,
    /// Return per-row outputs of the final model.
    pub assignments: bool,
    /// Where the functions write those outputs themselves ([`crate::labels`]).
    pub labels_out: Option<String>,
    /// The state store; `None`: the in-process store (threads) or the hosts' own.
    pub redis: Option<RedisUrl>,
    /// The first model, computed once by the driver; `None`: each function computes it.
    pub model: Option<Vec<f64>>,
    /// This run's id, unique per run: the job id belongs to the run that claimed it first.
    pub run: Option<String>,
    /// Take over a job id another run started (its plan must be this one).
    pub resume: bool,
    /// Stale-synchronous rounds: how far a function may run ahead of the slowest (0: none).
    pub staleness: u32,
}

impl JobPlan {
    /// SHA-256 (hex) of what decides the job's model: kernel, data, parameters, function
    /// count, iterations and the first model's bits. Functions of a job agree on it; the state
    /// store refuses a function of another plan under the same job id.
    pub fn fingerprint(&self) -> String {
        let model: Option<Vec<u64>> = self.model.as_ref().map(|m| m.iter().map(|v| v.to_bits()).collect());
        let mut what = serde_json::json!({
            "kernel": self.kernel, "kernel_sha256": self.kernel_sha256, "data": self.data,
            "label_col": self.label_col, "csv": self.csv, "libsvm": self.libsvm, "params": self.params, "functions": self.functions,
            "max_iter": self.max_iter, "model": model,
        });
        // The model of a stale run depends on it; synchronous plans keep their fingerprint.
        if self.staleness > 0 {
            what["staleness"] = self.staleness.into();
        }
        crate::kernel::sha256_hex(what.to_string().as_bytes())
    }

    /// The task of every function, in function order.
    pub fn tasks(&self) -> Vec<FunctionTask> {
        let plan = self.fingerprint();
        (0..self.functions)
            .map(|function| FunctionTask {
                job: self.job.clone(),
                function,
                functions: self.functions,
                inner: self.inner,
                data: self.data.clone(),
                data_etag: self.data_etag.clone(),
                label_col: self.label_col,
                csv: self.csv,
                libsvm: self.libsvm,
                s3_endpoint: self.s3_endpoint.clone(),
                kernel: self.kernel.clone(),
                kernel_sha256: self.kernel_sha256.clone(),
                kernel_memory_mb: self.kernel_memory_mb,
                step_timeout_s: self.step_timeout_s,
                params: self.params.clone(),
                model: self.model.clone(),
                model_ref: None,
                max_iter: self.max_iter,
                redis: self.redis.clone(),
                sync_timeout_s: self.sync_timeout.as_secs_f64(),
                assignments: self.assignments,
                labels_out: self.labels_out.clone(),
                plan_sha256: Some(plan.clone()),
                run: self.run.clone(),
                resume: self.resume,
                staleness: self.staleness,
            })
            .collect()
    }
}

/// Progress of one function: `(function, its iteration report)`.
pub type OnIteration<'a> = &'a (dyn Fn(u32, &IterationReport) + Sync);

/// A way of running a job's functions: launches one task per function, waits for all of
/// them, and returns each one's result in function order. A backend never decides what a
/// failure means; [`JobOutcome::collect`] does.
pub trait Backend {
    fn run(
        &self,
        tasks: Vec<FunctionTask>,
        on_iteration: OnIteration<'_>,
    ) -> Vec<Result<FunctionReport, FunctionFailure>>;
}

/// Every function as a thread of this process, synchronising through the in-process store.
pub struct Threads<'a> {
    pub kernels: &'a Kernels,
    pub s3: &'a S3Connector,
    /// The data set, already open (every thread reads its share of it).
    pub data: Option<&'a Data>,
    /// Inner workers of tasks that give none.
    pub default_inner: u32,
    /// Stops the job between iterations once set (see [`InProcess::cancelled_by`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Backend for Threads<'_> {
    fn run(
        &self,
        tasks: Vec<FunctionTask>,
        on_iteration: OnIteration<'_>,
    ) -> Vec<Result<FunctionReport, FunctionFailure>> {
        let Some(first) = tasks.first() else { return Vec::new() };
        let mut store = InProcess::new(&first.job, first.functions as usize, first.sync_timeout());
        if let Some(c) = &self.cancel {
            store = store.cancelled_by(c.clone());
        }
        let cx = TaskContext {
            kernels: self.kernels,
            s3: self.s3,
            in_process: Some(&store),
            data: self.data,
            default_inner: self.default_inner,
            deadline: None,
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = tasks
                .iter()
                .map(|task| {
                    let cx = &cx;
                    s.spawn(move || run_task(task, cx, &mut |it| on_iteration(task.function, it)))
                })
                .collect();
            handles
                .into_iter()
                .zip(&tasks)
                .map(|(h, task)| {
                    h.join().unwrap_or_else(|_| {
                        Err(FunctionFailure::new(FailureKind::Host, Some(task.function), None, "the function panicked"))
                    })
                })
                .collect()
        })
    }
}

/// A job's failure: its root cause, and how many functions failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error("job {job}: {root}{}", others_text(.others))]
    Function { job: String, root: FunctionFailure, others: Vec<FunctionFailure> },
    #[error("job {job}: functions disagree on the final model: function {function} returned a model different from function 0's ({len} values)")]
    Disagree { job: String, function: u32, len: usize },
    #[error("job {job}: {0}", job = .1)]
    Describe(KernelError, String),
}

impl JobFailure {
    /// The root cause's kind (what a retry of the job could change).
    pub fn kind(&self) -> FailureKind {
        match self {
            JobFailure::Function { root, .. } => root.kind,
            JobFailure::Disagree { .. } | JobFailure::Describe(..) => FailureKind::Host,
        }
    }
}

fn others_text(others: &[FunctionFailure]) -> String {
    others.iter().map(|o| format!("; also {o}")).collect()
}

/// The result of a whole job.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    pub shape: DataShape,
    pub model: Vec<f64>,
    /// The model as named fields (the kernel's `describe`), once [`JobOutcome::describe`] ran.
    pub fields: Vec<ModelField>,
    pub iterations: u32,
    pub converged: bool,
    /// Loss per iteration (of the model entering it).
    pub losses: Vec<f64>,
    /// A classifier's final model on the training data: per class, the rows labelled with it
    /// and those predicted right, summed over every function's own rows (None: not a
    /// classifier).
    pub class_counts: Option<Vec<ClassCount>>,
    pub reports: Vec<FunctionReport>,
    /// Seconds for the initial model (validation, sample, init).
    pub init_s: f64,
    pub total_s: f64,
}

impl JobOutcome {
    /// The one rule for a job's outcome. If any function failed, the root cause is the first
    /// failure (in function order) that is not only the echo of another's ("aborted"); the
    /// other root causes follow it. Otherwise every function must hold the same final model
    /// (bit for bit); the iterations are those of the function with the longest history (a
    /// function that was restarted reports only the iterations since it rejoined).
    pub fn collect(
        job: &str,
        results: Vec<Result<FunctionReport, FunctionFailure>>,
        init_s: f64,
        total_s: f64,
    ) -> Result<JobOutcome, JobFailure> {
        let mut reports = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok(r) => reports.push(r),
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            let pos = failures.iter().position(|e| e.kind != FailureKind::Aborted).unwrap_or(0);
            let root = failures.remove(pos);
            let others = failures.into_iter().filter(|e| e.kind != FailureKind::Aborted).collect();
            return Err(JobFailure::Function { job: job.to_string(), root, others });
        }
        let Some(first) = reports.first() else {
            return Err(JobFailure::Function {
                job: job.to_string(),
                root: FunctionFailure::new(FailureKind::BadInput, None, None, "a job needs at least one function"),
                others: Vec::new(),
            });
        };
        let bits = |m: &[f64]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        if let Some(r) = reports.iter().find(|r| bits(&r.model) != bits(&first.model)) {
            return Err(JobFailure::Disagree { job: job.to_string(), function: r.function, len: r.model.len() });
        }
        let full = reports.iter().max_by_key(|r| r.iterations.len()).expect("at least one report");
        // Every function counts its own rows: the job's counts are their sum, or none at all.
        let class_counts = reports.iter().try_fold(Vec::new(), |mut total, r| {
            add_counts(&mut total, r.class_counts.as_deref()?);
            Some(total)
        });
        Ok(JobOutcome {
            shape: first.shape,
            model: first.model.clone(),
            fields: Vec::new(),
            iterations: full.iterations.last().map_or(0, |i| i.iteration + 1),
            converged: full.converged,
            losses: full.iterations.iter().map(|i| i.loss).collect(),
            class_counts,
            reports,
            init_s,
            total_s,
        })
    }

    /// Names the model's parts with the kernel's `describe`.
    pub fn describe(&mut self, job: &str, engine: &KernelEngine, params: &[Param]) -> Result<(), JobFailure> {
        let wrap = |e: KernelError| JobFailure::Describe(e, job.to_string());
        let mut inst = engine.instantiate().map_err(wrap)?;
        self.fields = inst.describe(params, self.shape, &self.model).map_err(wrap)?;
        Ok(())
    }
}

/// Runs `plan` with every function as a thread of this process over `data` (already open),
/// with `engine`, compiled in this process: the tasks name its hash, so the threads take it
/// from memory instead of compiling it again. Returns each function's result.
pub fn run_on_threads(
    engine: &Arc<KernelEngine>,
    plan: &JobPlan,
    s3: &S3Connector,
    data: &Data,
    default_inner: u32,
    on_iteration: OnIteration<'_>,
) -> Vec<Result<FunctionReport, FunctionFailure>> {
    run_on_threads_until(engine, plan, s3, data, default_inner, None, on_iteration)
}

/// [`run_on_threads`], stopping between iterations once `cancel` is set.
pub fn run_on_threads_until(
    engine: &Arc<KernelEngine>,
    plan: &JobPlan,
    s3: &S3Connector,
    data: &Data,
    default_inner: u32,
    cancel: Option<Arc<AtomicBool>>,
    on_iteration: OnIteration<'_>,
) -> Vec<Result<FunctionReport, FunctionFailure>> {
    let kernels = Kernels::new(None, crate::Sandbox::default());
    kernels.insert(engine.clone());
    let mut plan = plan.clone();
    plan.kernel_sha256 = engine.sha256().map(str::to_string);
    Threads { kernels: &kernels, s3, data: Some(data), default_inner, cancel }.run(plan.tasks(), on_iteration)
}

/// Runs `plan` with every function as a thread of this process over `data` (already open),
/// with the compiled `engine`; the outcome is described. For tests, benchmarks and embedding.
pub fn run_in_process(
    engine: Arc<KernelEngine>,
    plan: &JobPlan,
    data: &Data,
    on_iteration: OnIteration<'_>,
) -> Result<JobOutcome, JobFailure> {
    let started = std::time::Instant::now();
    let results = run_on_threads(&engine, plan, &S3Connector::new(None), data, 1, on_iteration);
    let mut o = JobOutcome::collect(&plan.job, results, 0.0, started.elapsed().as_secs_f64())?;
    o.describe(&plan.job, &engine, &plan.params)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> JobPlan {
        JobPlan {
            job: "j".into(),
            kernel: "kmeans".into(),
            kernel_sha256: None,
            kernel_memory_mb: None,
            step_timeout_s: None,
            data: "d.npy".into(),
            data_etag: None,
            label_col: LabelCol::None,
            csv: CsvFormat::default(),
            libsvm: Default::default(),
            s3_endpoint: None,
            params: vec![("k".into(), "4".into())],
            functions: 3,
            inner: None,
            max_iter: 10,
            sync_timeout: Duration::from_secs(5),
            assignments: false,
            labels_out: None,
            redis: None,
            model: Some(vec![1.0, f64::NAN]),
            run: None,
            resume: false,
            staleness: 0,
        }
    }

    #[test]
    fn every_task_carries_the_plan_fingerprint_which_changes_with_what_decides_the_model() {
        let p = plan();
        let tasks = p.tasks();
        assert_eq!(tasks.len(), 3);
        assert!(tasks.iter().all(|t| t.plan_sha256.as_deref() == Some(p.fingerprint().as_str())));
        assert_eq!(tasks.iter().map(|t| t.function).collect::<Vec<_>>(), vec![0, 1, 2]);
        // What does not decide the model does not change it.
        let mut same = plan();
        (same.inner, same.assignments, same.sync_timeout) = (Some(4), true, Duration::from_secs(60));
        assert_eq!(same.fingerprint(), p.fingerprint());
        let changes: [fn(&mut JobPlan); 5] = [
            |p| p.data = "other.npy".into(),
            |p| p.params[0].1 = "5".into(),
            |p| p.functions = 4,
            |p| p.model = Some(vec![1.0, 0.0]),
            |p| p.kernel_sha256 = Some("ab".into()),
        ];
        for change in changes {
            let mut q = plan();
            change(&mut q);
            assert_ne!(q.fingerprint(), p.fingerprint(), "{q:?}");
        }
    }
}
