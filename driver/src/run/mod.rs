//! `ifp run`: one job, on an embedded default data set or a file, with W functions of M inner
//! workers each; prints progress and a summary, writes the result JSON and the labels.
//!
//! The kernel is a builtin (`ifp run kmeans`) or a plugin component (`ifp run --kernel
//! FILE.wasm|s3://bucket/key --param name=value ...`), sandboxed with `--kernel-memory-mb` and
//! `--step-timeout`. It is read and checked against the world before any data is read; the
//! worker processes and Lambda functions get its source, its SHA-256 (they refuse other bytes)
//! and the same sandbox limits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use ifp_host::data::object::{S3Connector, S3Url};
use ifp_host::data::{Data, LabelCol, Rows};
use ifp_host::job::{run_on_threads_until, Backend as _, JobOutcome, JobPlan};
use ifp_host::run_task::initial_model;
use ifp_host::sync::model_ref::{self, ModelRef};
use ifp_host::sync::redis::JobKeys;
use ifp_host::sync::CANCELLED;
use ifp_host::task::{sandbox_from, FunctionReport, FunctionTask, RedisUrl};
use ifp_host::{IterationReport, KernelCache, KernelEngine, KernelSource};

use crate::backend::lambda::{self, Lambda};
use crate::backend::processes::{worker_binary, Processes};
use crate::backend::retry::RetryPolicy;
use crate::backend::Platform;
use crate::gen::{GenSpec, Kind};
use crate::interrupt;
use crate::output;
use crate::predict::{test_accuracy, Accuracy, Model};
use crate::progress::Progress;
use crate::result::{print_summary, result_json, sync_json, Phases};

mod args;

pub use args::*;

/// What a program embedding the driver (the Python package) adds to `ifp run`'s arguments.
#[derive(Default)]
pub struct Embedding {
    /// The data set, already in the caller's memory, and the name the result gives it (in
    /// place of --data).
    pub data: Option<(Data, String)>,
    /// Return every row's assignment under the final model, without a --labels-out file.
    pub assignments: bool,
    /// Set by the caller to stop the job between iterations (functions as threads, or through
    /// Redis). With it, the driver installs no signal handlers: the caller keeps its own.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A finished job: the result JSON exactly as `--out` writes it, the per-row assignments
/// (with --labels-out or [`Embedding::assignments`]), the outcome and the phases' times.
pub struct RunOutput {
    pub result: Value,
    pub labels: Option<Vec<u32>>,
    /// The --labels-out file the functions wrote, to move into place once the result is out.
    pub labels_out: Option<output::LabelsOut>,
    pub outcome: JobOutcome,
    pub phases: Phases,
    /// When the job had finished (the rest is describing it and writing the outputs).
    pub finished: Instant,
}

pub fn run_cmd(a: RunArgs) -> Result<()> {
    // The kernel phase counts from here (with the checks of the arguments and outputs).
    let kernel_started = Instant::now();
    check_args(&a, a.data.is_some())?;
    // Every output is claimed now, before any work: a wrong path fails here, not at the end.
    let labels_out = match &a.labels_out {
        Some(p) => Some({
            output::TableFormat::of(p).context("--labels-out")?;
            let p = p.to_string_lossy();
            // An object store's errors name the object already; a local one's its directory.
            let flag = if S3Url::is_s3(&p) { "--labels-out".to_string() } else { format!("--labels-out {p}") };
            output::LabelsOut::reserve(&p, a.s3_endpoint.as_deref(), a.functions).context(flag)?
        }),
        None => None,
    };
    let reserve = |flag: &str, p: &Option<PathBuf>| -> Result<Option<output::Reserved>> {
        p.as_deref().map(|p| output::Reserved::new(p).with_context(|| format!("{flag} {}", p.display()))).transpose()
    };
    let out_file = reserve("--out", &a.out)?;
    let RunOutput { result, labels_out, outcome, mut phases, finished, .. } =
        run_job_from(&a, Embedding::default(), labels_out, kernel_started)?;
    if let Some(f) = out_file {
        f.write(|w| Ok(serde_json::to_writer_pretty(&mut *w, &result)?))?;
    }
    if let Some(l) = labels_out {
        l.finish(outcome.shape.total_rows, result["algorithm"].as_str().unwrap_or("the kernel"))?;
    }
    if !a.quiet {
        phases.write_s = finished.elapsed().as_secs_f64();
        print_summary(&result, &outcome, &phases);
        for (key, on) in [("train", " on the training data"), ("test", " on --test-data")] {
            if let Some(acc) = result["accuracy"].get(key).and_then(Accuracy::of_json) {
                acc.print(on);
            }
        }
        if let Some(k) = &a.kernel {
            println!("kernel: {k} implements {}", result["kernel_contract"].as_str().unwrap_or("?"));
        }
        if result.get("lambda").is_some() {
            lambda::print_cost(&result["lambda"]);
        }
    }
    Ok(())
}

/// Runs the job `a` describes (with what `embed` adds) to its result; writes no file.
pub fn run_job(a: &RunArgs, embed: Embedding) -> Result<RunOutput> {
    check_args(a, a.data.is_some() || embed.data.is_some())?;
    run_job_from(a, embed, None, Instant::now())
}

/// [`run_job`] with the arguments checked, its kernel phase counted from `kernel_started`.
fn run_job_from(
    a: &RunArgs,
    embed: Embedding,
    labels_out: Option<output::LabelsOut>,
    kernel_started: Instant,
) -> Result<RunOutput> {
    let Embedding { data: embedded, assignments, cancel } = embed;
    // `kind` is None for a plugin.
    let (kind, source) = match (&a.algorithm, &a.kernel) {
        (_, Some(k)) => (None, KernelSource::plugin(k)),
        (Some(name), None) => (Some(builtin_kind(name)?), KernelSource::Builtin(name.clone())),
        (None, None) => bail!("give an algorithm (kmeans, logreg) or --kernel FILE.wasm"),
    };
    let sandbox = sandbox_from(a.kernel_memory_mb, a.step_timeout)?;
    let label = match (a.label_col, kind) {
        (Some(LabelColArg::Last), _) => LabelCol::Last,
        (Some(LabelColArg::None), _) => LabelCol::None,
        (None, Some(Kind::Logreg)) => LabelCol::Last,
        (None, _) => LabelCol::None,
    };
    let s3 = S3Connector::new(a.s3_endpoint.clone());
    let progress = Progress::new(a.quiet, a.functions, a.max_iter.unwrap_or(0));
    // Read, hash and check the kernel before any data is read.
    progress.phase(&format!("kernel: reading and compiling {}", source.label()));
    let kernel = source.read(Some(&s3))?;
    let engine = Arc::new(KernelEngine::compile(&kernel, sandbox.clone())?);
    let kernel_s = kernel_started.elapsed().as_secs_f64();
    progress.phase(&format!("data: opening {}", a.data.as_deref().unwrap_or("the default data set (generating it)")));
    let (data, data_name) = match (&a.data, embedded) {
        (Some(_), Some(_)) => bail!("--data and data in memory are exclusive: give one"),
        (None, Some(given)) => given,
        (Some(p), None) => {
            let data = Data::open_with(p, label, a.csv.format(), a.libsvm.format(), &s3, None)?;
            a.csv.check_for(&data, p)?;
            a.libsvm.check_for(&data, p)?;
            if matches!(data, Data::Libsvm(_)) && a.label_col.is_some() {
                bail!("--label-col applies to .npy and .csv data; in LIBSVM data ({p}) the label is the first field of every line");
            }
            (data, p.clone())
        }
        (None, None) => {
            if a.label_col.is_some() {
                bail!("--label-col needs --data");
            }
            let kind = kind.context("plugins need --data")?;
            if a.k == Some(0) {
                bail!("--k must be at least 1, got 0");
            }
            let spec =
                GenSpec { kind, rows: DEFAULT_ROWS, cols: DEFAULT_COLS, k: a.k.unwrap_or(DEFAULT_K), seed: a.seed };
            let name = format!("generated {kind:?} {DEFAULT_ROWS}x{DEFAULT_COLS} seed {}", a.seed).to_lowercase();
            (Data::Memory(Arc::new(spec.rows())), name)
        }
    };
    let shape = data.shape()?;
    let (k, start) = match (&a.init_centroids, kind) {
        (Some(p), Some(Kind::Kmeans)) => {
            let (k, c) = read_centroids(p, &s3, shape.cols, a.k)?;
            (Some(k), c)
        }
        _ => (a.k, Vec::new()),
    };
    let mut params = match kind {
        Some(kind) => kernel_params(kind, a, k)?,
        None => Vec::new(),
    };
    params.extend(a.params.iter().cloned());
    // Held-out data is checked now (its columns), and read once the model is trained.
    let test_data = match &a.test_data {
        Some(p) => Some((crate::predict::open_test_data(p, shape.cols, a.csv.format(), a.libsvm.format(), &s3)?, p)),
        None => None,
    };
    let algorithm = match kind {
        Some(_) => source.label(),
        None => engine.instantiate()?.name()?,
    };
    // Parameters are checked here against what the data's header tells (a CSV object's row
    // count is known only at the functions' census). The first model is made by the
    // functions at their census from their own rows, unless initial centroids give it.
    let started = Instant::now();
    let data_s = (started - kernel_started).as_secs_f64() - kernel_s;
    engine.instantiate()?.validate(&params, shape)?;
    let model0 = if start.is_empty() {
        None
    } else {
        progress.phase("init: the first model (the initial centroids)");
        Some(initial_model(&engine, &data, &params, &start)?)
    };
    let init_s = started.elapsed().as_secs_f64();
    let mut plan = JobPlan {
        job: a.job.clone().unwrap_or_else(new_job_id),
        kernel: match kind {
            Some(_) => algorithm.clone(),
            None => plugin_location(&source)?,
        },
        // Builtins too: a function built from another commit (a stale `bootstrap`) would
        // run other kernel bytes than the driver's `init` did, so it refuses the job.
        kernel_sha256: Some(kernel.sha256.clone()),
        kernel_memory_mb: a.kernel_memory_mb,
        step_timeout_s: a.step_timeout,
        data: data_name.clone(),
        data_etag: data.etag().map(str::to_string),
        label_col: label,
        csv: a.csv.format(),
        libsvm: match &data {
            Data::Libsvm(file) => file.format(),
            _ => Default::default(),
        },
        s3_endpoint: a.s3_endpoint.clone(),
        params,
        functions: a.functions,
        inner: a.inner,
        max_iter: match (a.epochs, a.batch_size) {
            // The kernel has accepted the batch size (1..=rows) in `initial_model`.
            (Some(_), Some(_)) if shape.total_rows == ifp_host::census::ROWS_UNKNOWN => bail!(
                "--epochs needs the row count, which a CSV gives only once the functions have read it: give --max-iter (batches) instead, or the data as .npy"
            ),
            (Some(e), Some(b)) => {
                let iterations = e as u64 * ifp_kernel_math::batch::batches_per_epoch(shape.total_rows, b);
                u32::try_from(iterations)
                    .map_err(|_| anyhow::anyhow!("--epochs {e}: {iterations} iterations is too many"))?
            }
            _ => a.max_iter.unwrap_or(if kind == Some(Kind::Kmeans) { 300 } else { 100 }),
        },
        sync_timeout: Duration::from_secs_f64(a.sync_timeout),
        assignments: assignments || labels_out.is_some(),
        labels_out: None,
        redis: a.redis.clone().map(RedisUrl),
        model: model0,
        run: Some(new_job_id()),
        resume: a.resume,
        staleness: a.staleness,
    };
    if a.resume && a.redis.is_none() && a.backend == Platform::Local {
        bail!("--resume continues a job kept in Redis: give --redis URL (or --backend lambda)");
    }
    // The binary's signals. A program embedding the driver keeps its own handlers (Python's
    // Ctrl-C) and stops the job through its cancel flag instead.
    if cancel.is_none() {
        interrupt::install();
    }

    // The functions write the labels themselves, to the temporary destination reserved for
    // --labels-out ([`output::LabelsOut`]).
    plan.labels_out = labels_out.as_ref().map(output::LabelsOut::tmp);
    progress.set_max_iter(plan.max_iter);
    progress.start_iterations(&format!("loading {} function share(s)", plan.functions));
    let on_iteration = |f: u32, it: &IterationReport| progress.iteration(f, it);
    let mut lambda_report = None;
    let results = match (a.backend, &a.redis) {
        (Platform::Lambda, _) => {
            plan.data = match &a.data {
                Some(p) if p.starts_with("s3://") => p.clone(),
                Some(p) => std::path::absolute(p).with_context(|| format!("--data {p}"))?.display().to_string(),
                None => bail!(
                    "--backend lambda needs --data: a data set the functions can read (s3://bucket/key or a path)"
                ),
            };
            let mut lambda = Lambda::new(&a.lambda, a.quiet)?;
            lambda.retry = RetryPolicy::new(a.max_attempts);
            let tasks = tasks_for_redis(&plan, a.redis.as_deref())?;
            let mut results =
                until_cancelled(a.redis.as_deref(), &plan, cancel.as_deref(), || lambda.run(tasks, &|_, _| {}));
            if let Some(url) = &a.redis {
                resolve_models(&mut results, url, &plan)?;
            }
            if let (Some(sig), Some(url)) = (interrupt::received(), &a.redis) {
                stop_in_redis(url, &plan, sig);
            }
            // A finished job's keys go now, when the driver can reach Redis (else they expire).
            if let (true, Some(url)) = (results.iter().all(Result::is_ok), &a.redis) {
                if let Err(e) = JobKeys::open(url, &plan.job).and_then(JobKeys::remove) {
                    tracing::warn!("removing the job's keys: {e}");
                }
            }
            // The functions report their iterations at the end.
            results
                .iter()
                .flatten()
                .for_each(|r| r.iterations.iter().for_each(|it| progress.iteration(r.function, it)));
            lambda_report = Some(lambda.report());
            results
        }
        (Platform::Local, Some(url)) => {
            let dir = tempfile::tempdir().context("creating a temporary directory for the workers")?;
            let backend = processes_backend(a, &mut plan, &engine, &data, dir.path())?;
            // Fails here, before any function starts, on a wrong address or password, or a
            // job id in use; the plan is final now (its fingerprint goes into the claim).
            let run = plan.run.clone().unwrap_or_default();
            let fingerprint = plan.fingerprint();
            let (mut keys, at) =
                JobKeys::create(url, &plan.job, plan.functions, Some(&fingerprint), &run, a.resume, plan.sync_timeout)?;
            if a.resume && !a.quiet {
                eprintln!("resuming job {} at iteration {}", plan.job, at + 1);
            }
            let tasks = tasks_for_redis(&plan, Some(url))?;
            let mut results =
                until_cancelled(Some(url), &plan, cancel.as_deref(), || backend.run(tasks, &on_iteration));
            resolve_models(&mut results, url, &plan)?;
            if let Some(sig) = interrupt::received() {
                let _ = keys.abort(&format!("the driver received {sig}"));
            }
            // A finished job's keys go now; an unfinished one's stay (they expire by
            // themselves) so that `--resume` can continue it.
            if results.iter().all(Result::is_ok) {
                if let Err(e) = keys.remove() {
                    tracing::warn!("removing the job's keys: {e}");
                }
            }
            results
        }
        (Platform::Local, None) => {
            let default_inner = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            run_on_threads_until(&engine, &plan, &s3, &data, default_inner, cancel, &on_iteration)
        }
    };
    progress.finish();
    if let Some(sig) = interrupt::received() {
        bail!("job {}: stopped on {sig}: every function it started was stopped{}", plan.job, resume_hint(a, &plan));
    }
    let mut outcome = JobOutcome::collect(&plan.job, results, init_s, started.elapsed().as_secs_f64())
        .map_err(|e| anyhow::anyhow!("{e}{}", resume_hint(a, &plan)))?;
    // From here to the summary: the model's description, the result and the output files.
    let write_started = Instant::now();
    outcome.describe(&plan.job, &engine, &plan.params)?;

    // In memory only for an embedding program that asked (a --labels-out file is written by
    // the functions themselves).
    let labels = if assignments && plan.labels_out.is_none() {
        let mut all = Vec::with_capacity(shape.total_rows as usize);
        for r in &outcome.reports {
            all.extend(r.assignments.as_deref().unwrap_or_default());
        }
        if all.len() as u64 != shape.total_rows {
            bail!("--labels-out: {algorithm} produced no per-row assignment");
        }
        Some(all)
    } else {
        None
    };
    let mut result = result_json(&algorithm, &data_name, &plan, &outcome);
    let mut accuracy = serde_json::Map::new();
    if let Some(counts) = &outcome.class_counts {
        accuracy.insert("train".into(), Accuracy::of_counts(counts).json());
    }
    if let Some((data, path)) = &test_data {
        progress.phase(&format!("accuracy: reading --test-data {path}"));
        let mut held_out = test_accuracy(&Model::of_result(&result)?, data, path)?.json();
        held_out["data"] = json!(path);
        accuracy.insert("test".into(), held_out);
        progress.finish();
    }
    if !accuracy.is_empty() {
        result["accuracy"] = Value::Object(accuracy);
    }
    let store = if a.redis.is_some() || a.backend == Platform::Lambda { "redis" } else { "in-process" };
    result["sync"] = sync_json(store, a.redis.as_deref(), &outcome);
    result["kernel_contract"] = json!(engine.version().to_string());
    if let Some(k) = &a.kernel {
        result["kernel"] = json!(k);
        result["kernel_sha256"] = json!(kernel.sha256);
    }
    result["timing"]["kernel_s"] = json!(kernel_s);
    let phases = Phases::of(kernel_s, data_s, &outcome);
    result["timing"]["phases"] = phases.json();
    result["timing"]["wall_s"] = json!(phases.total_s());
    if let Some(l) = a.target_loss {
        result["time_to_target"] = crate::result::time_to_target(&result, l);
    }
    if let Some(r) = lambda_report {
        result["lambda"] = r;
    }
    Ok(RunOutput { result, labels, labels_out, outcome, phases, finished: write_started })
}

/// The tasks of a job whose functions synchronise through the Redis at `url` (`None`: the
/// functions' own): a first model too large for the tasks is stored once under the job's
/// keys, and the tasks carry only its reference ([`model_ref`]).
fn tasks_for_redis(plan: &JobPlan, url: Option<&str>) -> Result<Vec<FunctionTask>> {
    let mut tasks = plan.tasks();
    if let (Some(model), Some(url)) = (&plan.model, url) {
        if ModelRef::needed_for(model) {
            let r = model_ref::store(url, &plan.job, model, plan.sync_timeout).context("storing the first model")?;
            model_ref::by_reference(&mut tasks, &r);
        }
    }
    Ok(tasks)
}

/// Puts back the final models that the functions reported by reference (too large for a
/// Lambda response), from the job's keys, before they are removed.
fn resolve_models<E>(results: &mut [Result<FunctionReport, E>], url: &str, plan: &JobPlan) -> Result<()> {
    let reports = results.iter_mut().flatten();
    model_ref::resolve_reports(reports, url, &plan.job, plan.sync_timeout).context("fetching the final model")
}

/// Runs `job`, a job whose functions synchronise through the Redis at `url`; once `cancel`
/// is set, announces an abort through the job's keys, which every function sees at its next
/// arrival or wait, so the job stops between iterations (the threads backend does the same
/// through its in-process store).
fn until_cancelled<R>(url: Option<&str>, plan: &JobPlan, cancel: Option<&AtomicBool>, job: impl FnOnce() -> R) -> R {
    let (Some(url), Some(cancel)) = (url, cancel) else { return job() };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    let stopped = JobKeys::open(url, &plan.job).and_then(|mut k| k.abort(CANCELLED));
                    if let Err(e) = stopped {
                        tracing::warn!("cancelling job {}: {e}", plan.job);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let r = job();
        done.store(true, Ordering::Relaxed);
        r
    })
}

/// The processes backend for `plan`: the workers read the data where it is (in-memory data
/// is written to `dir` as `.npy` first), get the compiled kernel from `dir` (a plugin's, so
/// they deserialize instead of compiling), the Redis URL and the S3 endpoint from their
/// environment (never a command line).
fn processes_backend(
    a: &RunArgs,
    plan: &mut JobPlan,
    engine: &KernelEngine,
    data: &Data,
    dir: &std::path::Path,
) -> Result<Processes> {
    let bin = worker_binary()?;
    if let Data::Memory(_) | Data::External(_) = data {
        let p = dir.join("data.npy");
        write_rows(&p, data)?;
        plan.data = p.display().to_string();
    }
    let url = plan.redis.take().context("the processes backend needs a Redis URL")?;
    let mut env = vec![(REDIS_URL_ENV.to_string(), url.0)];
    if plan.kernel_sha256.is_some() {
        let cache = KernelCache::new(Some(dir.join("kernels")));
        cache.store(engine).context("writing the compiled kernel for the workers")?;
        env.push(("IFP_KERNEL_CACHE".into(), dir.join("kernels").display().to_string()));
    }
    if let Some(e) = &a.s3_endpoint {
        env.push(("AWS_ENDPOINT_URL_S3".into(), e.clone()));
    }
    Ok(Processes { bin, env, dir: dir.to_path_buf(), retry: RetryPolicy::new(a.max_attempts) })
}

/// Writes in-memory rows as a float32 .npy (label last) for the workers to read, a chunk of
/// rows at a time.
fn write_rows(path: &std::path::Path, data: &Data) -> Result<()> {
    const CHUNK: u64 = 1 << 15;
    let shape = data.shape()?;
    let (n, labelled) = (shape.total_rows, shape.has_labels);
    let mut failed = None;
    let chunks = (0..n.div_ceil(CHUNK)).map_while(|c| match data.read(c * CHUNK..((c + 1) * CHUNK).min(n)) {
        Ok(rows) => Some(rows),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let values = chunks.flat_map(|rows: Rows| {
        let mut v = Vec::with_capacity(rows.features.len() + rows.labels.len());
        for i in 0..rows.len() {
            let (f, l) = rows.slice(i..i + 1);
            v.extend_from_slice(f);
            v.extend(l.first().filter(|_| labelled));
        }
        v
    });
    output::write_f32(path, n, (shape.cols as u64) + labelled as u64, values)?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// How to go on with a job that did not finish, when its state is kept in Redis.
fn resume_hint(a: &RunArgs, plan: &JobPlan) -> String {
    match &a.redis {
        Some(_) => {
            format!(" (its state stays in Redis for a while: rerun with --job {} --resume to continue it)", plan.job)
        }
        None => String::new(),
    }
}

/// Marks the job aborted in Redis, so that functions the driver cannot stop itself (Lambda
/// invocations) leave at their next synchronisation.
fn stop_in_redis(url: &str, plan: &JobPlan, sig: &str) {
    let stopped = JobKeys::open(url, &plan.job).and_then(|mut k| k.abort(&format!("the driver received {sig}")));
    if let Err(e) = stopped {
        eprintln!(
            "warning: could not mark job {} aborted in Redis ({e}); its functions stop at their sync timeout",
            plan.job
        );
    }
}

fn new_job_id() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{:x}", t.as_secs(), std::process::id() ^ t.subsec_nanos())
}
