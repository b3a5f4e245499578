//! One function as a process (the `ifp-worker` binary): loads its share of the rows into its
//! inner workers, joins the job on Redis (at iteration 0, or where the job is if it is a
//! restarted worker), iterates, and writes one JSON line per iteration and its final
//! [`FunctionReport`] to its output.
//!
//! The kernel is a builtin (`--algorithm`) or a plugin (`--kernel FILE|s3://...`) under the
//! sandbox limits given; with `--kernel-sha256`, the worker refuses a component whose content
//! hash differs (so every function of a job runs the same bytes), and fails the job for all
//! workers. `--kernel-cache DIR` holds compiled kernels by content hash (the driver fills it
//! before starting the workers, so they deserialize instead of compiling).
//!
//! Output lines (JSON, one object each): `{"iteration": IterationReport}` after every
//! iteration, then `{"report": FunctionReport}`. Exit status: 0 done, 1 this worker failed,
//! [`EXIT_ABORTED`] another worker failed first (so a driver can tell root causes apart).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::data::LabelCol;
use crate::function::{Function, FunctionReport, JobSpec, Resume};
use crate::job::{initial_model, Data};
use crate::object::S3Connector;
use crate::redis_store::RedisStore;
use crate::sync::{StateStore, SyncError};
use crate::{KernelCache, KernelEngine, KernelSource, Param, Sandbox};

/// Exit status of a worker that stopped because another worker failed.
pub const EXIT_ABORTED: u8 = 3;

/// The environment variable that carries the Redis URL (kept off the command line, where
/// `ps` would show its password).
pub const REDIS_URL_ENV: &str = "IFP_REDIS_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelArg {
    Last,
    None,
}

/// The arguments of one function.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "ifp-worker", about = "Runs one ifp function (a shard, its inner workers, one Redis connection)")]
pub struct WorkerArgs {
    /// Job id (shared by all workers of the job).
    #[arg(long)]
    pub job: String,
    /// This worker's index, 0-based.
    #[arg(long)]
    pub worker: u32,
    /// Number of workers (functions) in the job.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: u32,
    /// Inner workers (wasm instances) in this function.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub inner: u64,
    /// The data file (.npy or .csv); this worker reads its share of the rows.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the label is.
    #[arg(long, value_enum, default_value_t = LabelArg::None)]
    pub label_col: LabelArg,
    /// Builtin kernel name (`kmeans`, `logreg`).
    #[arg(long, required_unless_present = "kernel", conflicts_with = "kernel")]
    pub algorithm: Option<String>,
    /// A plugin component: a file or `s3://bucket/key` (endpoint from AWS_ENDPOINT_URL_S3).
    #[arg(long, value_name = "FILE.wasm|s3://...")]
    pub kernel: Option<String>,
    /// The SHA-256 (hex) the kernel's component must have: the job's, as the driver read it.
    #[arg(long, value_name = "HEX")]
    pub kernel_sha256: Option<String>,
    /// Compiled kernels by content hash (read, and written after a compilation).
    #[arg(long, value_name = "DIR", env = "IFP_KERNEL_CACHE")]
    pub kernel_cache: Option<PathBuf>,
    /// Linear-memory cap per kernel instance, in MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub kernel_memory_mb: Option<u64>,
    /// Seconds one call into the kernel may run.
    #[arg(long, value_name = "SECONDS")]
    pub step_timeout: Option<f64>,
    /// Kernel parameter `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<Param>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_iter: u32,
    /// The initial model as raw little-endian f64 (written by the driver). Without it, the
    /// worker computes it from the data (deterministic: every worker gets the same).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Redis URL (`redis://` or `rediss://`, optionally with user and password).
    #[arg(long, env = REDIS_URL_ENV, hide_env_values = true)]
    pub redis: String,
    /// Seconds to wait for the other workers in one iteration.
    #[arg(long, default_value_t = 60.0)]
    pub sync_timeout: f64,
    /// Also report the per-row output of the final model (k-means labels).
    #[arg(long)]
    pub assignments: bool,
}

fn parse_param(s: &str) -> Result<Param, String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

/// The sandbox from `--kernel-memory-mb` and `--step-timeout`.
pub fn sandbox_from(memory_mb: Option<u64>, step_timeout: Option<f64>) -> Result<Sandbox> {
    let call_timeout = match step_timeout {
        None => None,
        Some(t) if t.is_finite() && t > 0.0 && t <= 1e6 => Some(Duration::from_secs_f64(t)),
        Some(t) => bail!("--step-timeout must be a positive number of seconds, got {t}"),
    };
    Ok(Sandbox { memory_limit: memory_mb.map(|m| (m as usize) << 20), call_timeout })
}

/// Reads, checks and compiles (or finds compiled) this worker's kernel.
fn load_kernel(a: &WorkerArgs, s3: &S3Connector) -> Result<KernelEngine> {
    let source = match (&a.algorithm, &a.kernel) {
        (_, Some(k)) => KernelSource::plugin(k),
        (Some(n), None) => KernelSource::Builtin(n.clone()),
        (None, None) => bail!("give --algorithm NAME or --kernel FILE.wasm"),
    };
    let bytes = source.read(Some(s3))?;
    bytes.check(a.kernel_sha256.as_deref())?;
    let sandbox = sandbox_from(a.kernel_memory_mb, a.step_timeout)?;
    Ok(KernelCache::new(a.kernel_cache.clone()).engine(&bytes, sandbox)?.0)
}

/// Reads raw little-endian f64 values.
pub fn read_model(path: &std::path::Path) -> Result<Vec<f64>> {
    let b = std::fs::read(path).with_context(|| format!("reading the initial model {}", path.display()))?;
    if !b.len().is_multiple_of(8) {
        bail!("initial model {}: {} bytes is not a whole number of f64 values", path.display(), b.len());
    }
    Ok(b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
}

/// Writes raw little-endian f64 values.
pub fn write_model(path: &std::path::Path, model: &[f64]) -> Result<()> {
    let b: Vec<u8> = model.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, b).with_context(|| format!("writing the initial model {}", path.display()))
}

/// Whether an error is only the echo of another worker's failure.
pub fn is_aborted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref(), Some(SyncError::Aborted { .. })))
}

/// Runs the function described by `a`, writing progress and the report to `out`.
pub fn run(a: &WorkerArgs, out: &mut dyn Write) -> Result<FunctionReport> {
    if a.worker >= a.workers {
        bail!("--worker {} is out of range for --workers {}", a.worker, a.workers);
    }
    if !(a.sync_timeout.is_finite() && a.sync_timeout > 0.0) {
        bail!("--sync-timeout must be a positive number of seconds, got {}", a.sync_timeout);
    }
    let timeout = Duration::from_secs_f64(a.sync_timeout);
    let label = match a.label_col {
        LabelArg::Last => LabelCol::Last,
        LabelArg::None => LabelCol::None,
    };
    // Kernel and data from files or S3 (the endpoint comes from AWS_ENDPOINT_URL_S3, as for
    // every SDK client).
    let s3 = S3Connector::new(std::env::var("AWS_ENDPOINT_URL_S3").ok());
    let mut store = RedisStore::connect(&a.redis, &a.job, a.worker, a.workers, timeout)?;
    // A kernel this worker cannot load (or whose bytes differ from the job's) fails the whole
    // job at once, rather than leaving the other workers to time out.
    let engine = match load_kernel(a, &s3) {
        Ok(e) => e,
        Err(e) => {
            store.abort(a.worker, &format!("{e:#}"));
            return Err(e);
        }
    };
    let data = Data::open(&a.data.to_string_lossy(), label, &s3)?;
    let shape = data.shape()?;
    let joined = store.join()?;
    let model0 = match &a.model {
        Some(p) => read_model(p)?,
        None => initial_model(&engine, &data, &a.params, &[])?,
    };
    let resume = match joined.iteration {
        0 => Resume { iteration: 0, model: model0, previous: None },
        t => {
            let last = joined.last.expect("join checks the last release");
            if last.stop {
                bail!("job {}: already finished after iteration {}", a.job, t - 1);
            }
            let previous = if t == 1 { model0 } else { joined.before.expect("join checks the release before").model };
            tracing::info!(job = %a.job, worker = a.worker, iteration = t, "rejoining the job");
            Resume { iteration: t, model: last.model, previous: Some(previous) }
        }
    };
    let spec = Arc::new(JobSpec {
        job: a.job.clone(),
        params: a.params.clone(),
        shape,
        max_iter: a.max_iter,
        workers: a.workers,
    });
    let mut f = match Function::load_share(&engine, spec, a.worker, a.inner as usize, &data.source()) {
        Ok(f) => f,
        Err(e) => {
            store.abort(a.worker, &format!("{e:#}"));
            return Err(e);
        }
    };
    let mut write_err = None;
    let mut on_iteration = |it: &crate::function::IterationReport| {
        let line = serde_json::json!({ "iteration": it });
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            write_err.get_or_insert(e);
        }
    };
    let report = f.run_from(&mut store, resume, a.assignments, &mut on_iteration)?;
    if let Some(e) = write_err {
        return Err(anyhow::Error::from(e).context("writing progress"));
    }
    writeln!(out, "{}", serde_json::json!({ "report": &report })).context("writing the report")?;
    out.flush()?;
    Ok(report)
}
