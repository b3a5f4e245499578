//! `ifp run`: one job, on an embedded default data set or a file, with W functions of M inner
//! workers each; prints progress and a summary, writes the result JSON and the labels.
//!
//! The kernel is a builtin (`ifp run kmeans`) or a plugin component (`ifp run --kernel
//! FILE.wasm|s3://bucket/key --param name=value ...`), sandboxed with `--kernel-memory-mb` and
//! `--step-timeout`. It is read and checked against the world before any data is read; the
//! worker processes and Lambda functions get its source, its SHA-256 (they refuse other bytes)
//! and the same sandbox limits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use ifp_host::data::LabelCol;
use ifp_host::function::IterationReport;
use ifp_host::job::{read_table, run_in_process, Data, JobConfig, JobOutcome};
use ifp_host::kernel::ModelField;
use ifp_host::object::S3Connector;
use ifp_host::{KernelEngine, KernelSource, Param, Sandbox};

use crate::gen::{GenSpec, Kind};
use crate::lambda::{self, Backend, LambdaArgs, LambdaJob};
use crate::output;
use crate::workers;

/// Rows and columns of the embedded default data sets (used when `--data` is not given).
pub const DEFAULT_ROWS: u64 = 200_000;
pub const DEFAULT_COLS: u64 = 16;
pub const DEFAULT_K: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelColArg {
    Last,
    None,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The algorithm: a builtin kernel (`kmeans`, `logreg`); omit it with --kernel.
    #[arg(required_unless_present = "kernel", conflicts_with = "kernel")]
    pub algorithm: Option<String>,
    /// A plugin: any component of the `ifp:kernel@0.1.0` world, from a file or
    /// `s3://bucket/key`. It runs without WASI capabilities; its parameters come from --param.
    #[arg(long, value_name = "FILE.wasm|s3://...")]
    pub kernel: Option<String>,
    /// A kernel parameter `NAME=VALUE`, passed to the kernel as is (repeatable); for plugins,
    /// the only way to set parameters.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<Param>,
    /// Linear-memory cap per kernel instance, in MiB (default: wasm32's 4 GiB).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub kernel_memory_mb: Option<u64>,
    /// Seconds one call into the kernel (e.g. one step over a shard) may run before the job
    /// fails (default: no limit).
    #[arg(long, value_name = "SECONDS")]
    pub step_timeout: Option<f64>,
    /// Data file or `s3://bucket/key` (.npy float32/float64 2-D, or headerless .csv). Without
    /// it, a default data set (200,000 × 16, seeded) is generated in memory.
    #[arg(long)]
    pub data: Option<String>,
    /// Where the label is: `last` column or `none` (default: `last` for logreg, else `none`).
    #[arg(long, value_enum)]
    pub label_col: Option<LabelColArg>,
    /// Number of clusters (kmeans; default: the rows of --init-centroids, or 8).
    #[arg(long)]
    pub k: Option<u64>,
    /// K-means initialisation: `first` k rows, `random` (seeded sample) or `kmeans++` (default).
    #[arg(long, value_parser = ["first", "random", "kmeans++"], conflicts_with = "init_centroids")]
    pub init: Option<String>,
    /// K-means iteration: `hamerly` (default; distance bounds skip rows whose cluster cannot
    /// change, with exactly Lloyd's result) or `lloyd` (every distance, every iteration).
    #[arg(long, value_parser = ["hamerly", "lloyd"])]
    pub kmeans_algorithm: Option<String>,
    /// Initial centroids (k × cols) from a .npy or .csv file or `s3://bucket/key`.
    #[arg(long)]
    pub init_centroids: Option<String>,
    /// Maximum iterations (default: 300 for kmeans, 100 for logreg).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_iter: Option<u32>,
    /// Convergence tolerance (kmeans: relative to the mean feature variance, default 1e-4;
    /// logreg: change of the loss, default 1e-6).
    #[arg(long, allow_negative_numbers = true)]
    pub tol: Option<f64>,
    /// Gradient-descent step (logreg, default 0.1).
    #[arg(long, allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// L2 regularisation strength (logreg, default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub l2: Option<f64>,
    /// Functions (workers), each with its own shard.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: u32,
    /// Inner workers (wasm instances) per function (default: the available parallelism).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub inner: Option<u64>,
    /// Seed for the default data and for random/kmeans++ initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result (model, iterations, timings) as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the final assignment of every row (kmeans) as .npy (int32) or .csv.
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
    /// Seconds a function waits for the others in one iteration before failing the job.
    #[arg(long, default_value_t = 60.0)]
    pub sync_timeout: f64,
    /// Job id (default: generated).
    #[arg(long)]
    pub job: Option<String>,
    /// Run the functions as `ifp-worker` processes synchronising through this Redis
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Where the functions run: `local` (this machine) or `lambda` (AWS Lambda: needs
    /// --function; with --redis the functions use that Redis, else their IFP_REDIS_URL).
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    #[command(flatten)]
    pub lambda: LambdaArgs,
    /// No progress or summary on stderr/stdout.
    #[arg(long)]
    pub quiet: bool,
    /// An S3-compatible endpoint for `s3://` data (path-style addressing; default: AWS, or
    /// `AWS_ENDPOINT_URL_S3`).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
}

/// `NAME=VALUE` as a kernel parameter.
fn parse_param(s: &str) -> Result<Param, String> {
    match s.split_once('=') {
        Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

/// The sandbox from `--kernel-memory-mb` and `--step-timeout`.
fn sandbox(a: &RunArgs) -> Result<Sandbox> {
    ifp_host::worker::sandbox_from(a.kernel_memory_mb, a.step_timeout)
}

/// How the functions find a plugin: an `s3://` URI as given, a file by its absolute path.
fn plugin_location(source: &KernelSource) -> Result<String> {
    Ok(match source {
        KernelSource::File(p) => {
            std::path::absolute(p).with_context(|| format!("--kernel {}", p.display()))?.display().to_string()
        }
        other => other.label(),
    })
}

/// Refuses the builtin kernels' own flags with a plugin.
fn plugin_flags(a: &RunArgs) -> Result<()> {
    let builtin_only = [
        ("--k", a.k.is_some()),
        ("--init", a.init.is_some()),
        ("--init-centroids", a.init_centroids.is_some()),
        ("--kmeans-algorithm", a.kmeans_algorithm.is_some()),
        ("--tol", a.tol.is_some()),
        ("--learning-rate", a.learning_rate.is_some()),
        ("--l2", a.l2.is_some()),
    ];
    if let Some((flag, _)) = builtin_only.iter().find(|(_, given)| *given) {
        bail!("{flag} applies to the builtin kernels; give a plugin its parameters with --param NAME=VALUE");
    }
    if a.data.is_none() {
        bail!("--kernel needs --data (the default data sets are for the builtin kernels)");
    }
    Ok(())
}

fn builtin_kind(algorithm: &str) -> Result<Kind> {
    match algorithm {
        "kmeans" => Ok(Kind::Kmeans),
        "logreg" => Ok(Kind::Logreg),
        other => bail!("unknown algorithm '{other}' (builtin: kmeans, logreg)"),
    }
}

/// The kernel parameters for `args`, refusing flags that do not apply to the algorithm.
fn kernel_params(kind: Kind, a: &RunArgs, k: Option<u64>) -> Result<Vec<Param>> {
    let mut p: Vec<Param> = Vec::new();
    let mut put = |n: &str, v: String| p.push((n.to_string(), v));
    let misplaced = |flag: &str, given: bool| -> Result<()> {
        if given {
            bail!("{flag} does not apply to {}", a.algorithm.as_deref().unwrap_or_default());
        }
        Ok(())
    };
    match kind {
        Kind::Kmeans => {
            misplaced("--learning-rate", a.learning_rate.is_some())?;
            misplaced("--l2", a.l2.is_some())?;
            put("k", k.unwrap_or(DEFAULT_K).to_string());
            if let Some(i) = &a.init {
                put("init", i.clone());
            }
            if let Some(m) = &a.kmeans_algorithm {
                put("algorithm", m.clone());
            }
            put("seed", a.seed.to_string());
        }
        Kind::Logreg => {
            misplaced("--k", a.k.is_some())?;
            misplaced("--init", a.init.is_some())?;
            misplaced("--init-centroids", a.init_centroids.is_some())?;
            misplaced("--kmeans-algorithm", a.kmeans_algorithm.is_some())?;
            misplaced("--labels-out", a.labels_out.is_some())?;
            if let Some(v) = a.learning_rate {
                put("learning-rate", v.to_string());
            }
            if let Some(v) = a.l2 {
                put("l2", v.to_string());
            }
        }
    }
    if let Some(t) = a.tol {
        put("tol", t.to_string());
    }
    Ok(p)
}

/// Reads `--init-centroids`: a k × cols table, row-major.
fn read_centroids(path: &str, s3: &S3Connector, cols: u32, k: Option<u64>) -> Result<(u64, Vec<f64>)> {
    let (rows, file_cols, raw) = read_table(path, s3).context("--init-centroids")?;
    if file_cols != cols as u64 {
        bail!("--init-centroids {path} has {file_cols} columns but the data has {cols} features");
    }
    if let Some(k) = k {
        if rows != k {
            bail!("--init-centroids {path} has {rows} rows, expected k = {k}");
        }
    }
    Ok((rows, raw.into_iter().map(f64::from).collect()))
}

pub fn run_cmd(a: RunArgs) -> Result<()> {
    // `kind` is None for a plugin.
    let (kind, source) = match (&a.algorithm, &a.kernel) {
        (_, Some(k)) => {
            plugin_flags(&a)?;
            (None, KernelSource::plugin(k))
        }
        (Some(name), None) => (Some(builtin_kind(name)?), KernelSource::Builtin(name.clone())),
        (None, None) => bail!("give an algorithm (kmeans, logreg) or --kernel FILE.wasm"),
    };
    let sandbox = sandbox(&a)?;
    if a.kernel.is_some() && a.data.is_none() {
        bail!("--kernel plugins need --data (the default data set is for the builtin kernels)");
    }
    if !(a.sync_timeout.is_finite() && a.sync_timeout > 0.0) {
        bail!("--sync-timeout must be a positive number of seconds, got {}", a.sync_timeout);
    }
    for (flag, p) in [("--out", &a.out), ("--labels-out", &a.labels_out)] {
        if let Some(p) = p {
            if p.is_dir() {
                bail!("{flag} {} is a directory", p.display());
            }
            if flag == "--labels-out" {
                output::TableFormat::of(p).context("--labels-out")?;
            }
        }
    }
    let label = match (a.label_col, kind) {
        (Some(LabelColArg::Last), _) => LabelCol::Last,
        (Some(LabelColArg::None), _) => LabelCol::None,
        (None, Some(Kind::Logreg)) => LabelCol::Last,
        (None, _) => LabelCol::None,
    };
    let s3 = S3Connector::new(a.s3_endpoint.clone());
    // Read, hash and check the kernel before any data is read.
    let kernel_started = Instant::now();
    let kernel = source.read(Some(&s3))?;
    let engine = KernelEngine::compile(&kernel, sandbox.clone())?;
    let kernel_s = kernel_started.elapsed().as_secs_f64();
    let (data, data_name) = match &a.data {
        Some(p) => (Data::open(p, label, &s3)?, p.clone()),
        None => {
            if a.label_col.is_some() {
                bail!("--label-col needs --data");
            }
            let kind = kind.context("plugins need --data")?;
            let spec =
                GenSpec { kind, rows: DEFAULT_ROWS, cols: DEFAULT_COLS, k: a.k.unwrap_or(DEFAULT_K), seed: a.seed };
            let name = format!("generated {kind:?} {DEFAULT_ROWS}x{DEFAULT_COLS} seed {}", a.seed).to_lowercase();
            (Data::Memory(spec.rows()), name)
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
        Some(kind) => kernel_params(kind, &a, k)?,
        None => Vec::new(),
    };
    params.extend(a.params.iter().cloned());
    let algorithm = match kind {
        Some(_) => source.label(),
        None => engine.instantiate()?.name()?,
    };
    let inner =
        a.inner.map(|m| m as usize).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cfg = JobConfig {
        job: a.job.clone().unwrap_or_else(new_job_id),
        params,
        max_iter: a.max_iter.unwrap_or(if kind == Some(Kind::Kmeans) { 300 } else { 100 }),
        workers: a.workers,
        inner,
        sync_timeout: Duration::from_secs_f64(a.sync_timeout),
        want_assignments: a.labels_out.is_some(),
        start,
    };

    let progress = Progress::new(a.quiet, cfg.max_iter);
    let mut lambda_report = None;
    let outcome = match (a.backend, &a.redis) {
        (Backend::Lambda, _) => {
            let location = match &a.data {
                Some(p) if p.starts_with("s3://") => p.clone(),
                Some(p) => std::path::absolute(p).with_context(|| format!("--data {p}"))?.display().to_string(),
                None => bail!(
                    "--backend lambda needs --data: a data set the functions can read (s3://bucket/key or a path)"
                ),
            };
            let kernel_location = match kind {
                Some(_) => algorithm.clone(),
                None => plugin_location(&source)?,
            };
            let job = LambdaJob {
                kernel: &kernel_location,
                kernel_sha256: kind.is_none().then_some(kernel.sha256.as_str()),
                sandbox: &sandbox,
                data: &location,
                label,
                inner: a.inner.map(|m| m as usize),
                redis: a.redis.as_deref(),
                quiet: a.quiet,
            };
            lambda::run_job(&a.lambda, &job, &engine, &cfg, &data).map(|(o, report)| {
                o.reports
                    .iter()
                    .filter(|r| r.worker == 0)
                    .flat_map(|r| &r.iterations)
                    .for_each(|it| progress.iteration(it));
                lambda_report = Some(report);
                o
            })
        }
        (Backend::Local, Some(url)) => {
            let plugin = match kind {
                Some(_) => None,
                None => Some(plugin_location(&source)?),
            };
            let r = workers::RedisJob {
                url,
                algorithm: &algorithm,
                plugin: plugin.as_deref(),
                sandbox: &sandbox,
                data_path: a.data.as_deref().map(std::path::Path::new),
                label,
                s3_endpoint: a.s3_endpoint.as_deref(),
            };
            workers::run_workers(&engine, &cfg, &data, &r, &|it| progress.iteration(it))
        }
        (Backend::Local, None) => run_in_process(&engine, &cfg, &data, &|it| progress.iteration(it)),
    };
    progress.finish();
    let outcome = outcome?;

    // Everything is computed: now write the outputs, each all-or-nothing.
    let labels = if a.labels_out.is_some() {
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
    let mut result = result_json(&algorithm, &data_name, &cfg, &outcome);
    let store = if a.redis.is_some() || a.backend == Backend::Lambda { "redis" } else { "in-process" };
    result["sync"] = workers::sync_json(store, a.redis.as_deref(), &outcome);
    if let Some(k) = &a.kernel {
        result["kernel"] = json!(k);
        result["kernel_sha256"] = json!(kernel.sha256);
    }
    result["timing"]["kernel_s"] = json!(kernel_s);
    if let Some(r) = &lambda_report {
        result["lambda"] = r.clone();
    }
    if let Some(p) = &a.out {
        output::write_atomic(p, |w| Ok(serde_json::to_writer_pretty(&mut *w, &result)?))?;
    }
    if let (Some(p), Some(l)) = (&a.labels_out, &labels) {
        output::write_labels(p, l)?;
    }
    if !a.quiet {
        print_summary(&result, &outcome);
        if let Some(r) = &lambda_report {
            lambda::print_cost(r);
        }
    }
    Ok(())
}

fn new_job_id() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{:x}", t.as_secs(), std::process::id() ^ t.subsec_nanos())
}

/// A model field as JSON: a number, a list, or a list of rows.
fn field_json(f: &ModelField) -> Value {
    match f.shape.as_slice() {
        [] => json!(f.values.first().copied().unwrap_or(f64::NAN)),
        [_] => json!(f.values),
        [_, c, ..] => json!(f.values.chunks((*c).max(1) as usize).collect::<Vec<_>>()),
    }
}

/// Per iteration: the slowest function's compute, and the rest of worker 0's iteration time.
pub fn iteration_timings(outcome: &JobOutcome) -> Vec<Value> {
    (0..outcome.iterations as usize)
        .map(|t| {
            let compute = outcome.reports.iter().map(|r| r.iterations[t].compute_s).fold(0.0, f64::max);
            let r0 = &outcome.reports[0].iterations[t];
            let sync = (r0.compute_s + r0.sync_s - compute).max(0.0);
            json!({ "iteration": t, "compute_s": compute, "sync_s": sync, "loss": r0.loss })
        })
        .collect()
}

pub fn result_json(algorithm: &str, data_name: &str, cfg: &JobConfig, o: &JobOutcome) -> Value {
    let model: Map<String, Value> = o.fields.iter().map(|f| (f.name.clone(), field_json(f))).collect();
    let params: Map<String, Value> = cfg.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let load_s = o.reports.iter().map(|r| r.load_s).fold(0.0, f64::max);
    json!({
        "algorithm": algorithm,
        "job": cfg.job,
        "data": data_name,
        "iterations": o.iterations,
        "converged": o.converged,
        "loss": o.losses.last().copied().unwrap_or(f64::NAN),
        "losses": o.losses,
        "model": model,
        "config": {
            "workers": cfg.workers,
            "inner": o.reports[0].inner,
            "rows": o.shape.total_rows,
            "cols": o.shape.cols,
            "labelled": o.shape.has_labels,
            "max_iter": cfg.max_iter,
            "params": params,
        },
        "timing": {
            "init_s": o.init_s,
            "load_s": load_s,
            "total_s": o.total_s,
            "iterations": iteration_timings(o),
        },
        "workers": o.reports.iter().map(|r| json!({
            "worker": r.worker, "rows": r.rows, "inner": r.inner, "load_s": r.load_s, "total_s": r.total_s,
            "round_trips": r.sync.round_trips, "wait_s": r.sync.wait_s,
            "bytes_fetched": r.bytes_fetched, "share_bytes": r.share_bytes,
        })).collect::<Vec<_>>(),
    })
}

fn print_summary(result: &Value, o: &JobOutcome) {
    let it = &result["timing"]["iterations"];
    let n = it.as_array().map_or(0, |a| a.len()).max(1) as f64;
    let sum = |key: &str| it.as_array().map_or(0.0, |a| a.iter().map(|v| v[key].as_f64().unwrap_or(0.0)).sum::<f64>());
    println!(
        "{}: {} iterations ({}), loss {:.6e}; {} workers x {} inner, {} rows x {} cols",
        result["algorithm"].as_str().unwrap_or("?"),
        o.iterations,
        if o.converged { "converged" } else { "max-iter reached" },
        result["loss"].as_f64().unwrap_or(f64::NAN),
        result["config"]["workers"],
        result["config"]["inner"],
        o.shape.total_rows,
        o.shape.cols,
    );
    println!(
        "time: load {:.3} s, total {:.3} s; per iteration: compute {:.2} ms, sync {:.3} ms",
        result["timing"]["load_s"].as_f64().unwrap_or(0.0),
        o.total_s,
        sum("compute_s") / n * 1e3,
        sum("sync_s") / n * 1e3,
    );
    let s = &result["sync"];
    if let Some(ws) = s["workers"].as_array() {
        let mean = |key: &str| ws.iter().map(|w| w[key].as_f64().unwrap_or(0.0)).sum::<f64>() / ws.len().max(1) as f64;
        let max_trips = ws.iter().map(|w| w["round_trips_per_iteration"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
        println!(
            "sync ({}{}): {:.3} ms per iteration (mean over workers), {:.2} round trips per worker per iteration (max)",
            s["store"].as_str().unwrap_or("?"),
            s["url"].as_str().map(|u| format!(" {u}")).unwrap_or_default(),
            mean("sync_s_per_iteration") * 1e3,
            max_trips,
        );
    }
}

/// A progress bar on a terminal, plain lines otherwise, nothing with `--quiet`.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
}

impl Progress {
    fn new(quiet: bool, max_iter: u32) -> Self {
        if quiet {
            return Self { bar: None, plain: false };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(max_iter as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} iter {pos}/{len} [{bar:30}] {msg} ({elapsed})")
                    .unwrap()
                    .progress_chars("=> "),
            );
            Self { bar: Some(bar), plain: false }
        } else {
            Self { bar: None, plain: true }
        }
    }
    fn iteration(&self, it: &IterationReport) {
        if let Some(b) = &self.bar {
            b.set_position(it.iteration as u64 + 1);
            b.set_message(format!("loss {:.6e}", it.loss));
        } else if self.plain {
            eprintln!(
                "iteration {}: loss {:.6e}, compute {:.2} ms, sync {:.3} ms",
                it.iteration + 1,
                it.loss,
                it.compute_s * 1e3,
                it.sync_s * 1e3
            );
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
