//! `ifp run`'s arguments and what follows from them alone: the flags (grouped by algorithm,
//! backend and purpose in `--help`), their checks, and the kernel parameters they give.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use ifp_host::data::libsvm::LibsvmFormat;
use ifp_host::data::object::S3Connector;
use ifp_host::data::{read_table, CsvFormat, Data};
use ifp_host::task::sandbox_from;
use ifp_host::{KernelSource, Param};

use crate::backend::lambda::LambdaArgs;
use crate::backend::Platform;
use crate::gen::Kind;

/// The environment variable that carries the Redis URL to `ifp-worker` (kept off command
/// lines, where `ps` would show its password).
pub(super) const REDIS_URL_ENV: &str = "IFP_REDIS_URL";

/// The environment variable `ifp run` reads the Redis URL from (what `ifp sweep` uses).
pub const REDIS_ENV: &str = "IFP_REDIS";

/// Rows and columns of the embedded default data sets (used when `--data` is not given).
pub const DEFAULT_ROWS: u64 = 200_000;
pub const DEFAULT_COLS: u64 = 16;
pub const DEFAULT_K: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelColArg {
    Last,
    None,
}

/// How a CSV given as data is laid out (`ifp run`, `ifp predict`).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct CsvArgs {
    /// The CSV's first line is a header: skip it (rows in errors are counted after it).
    #[arg(help_heading = "Data", long)]
    pub header: bool,
    /// The CSV's field delimiter: one ASCII character, or `tab` (default `,`).
    #[arg(help_heading = "Data", long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
}

impl CsvArgs {
    pub fn format(&self) -> CsvFormat {
        let default = CsvFormat::default();
        CsvFormat { header: self.header, delimiter: self.delimiter.unwrap_or(default.delimiter) }
    }

    /// Refuses the options for data that is not a CSV (they would be silently ignored).
    pub fn check_for(&self, data: &Data, location: &str) -> Result<()> {
        if !data.is_csv() && (self.header || self.delimiter.is_some()) {
            bail!("--header and --delimiter apply to CSV data; {location} is not a .csv");
        }
        Ok(())
    }
}

/// How a LIBSVM file given as data is read (`.svm`, `.libsvm`, `.svmlight`).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct LibsvmArgs {
    /// LIBSVM data: the number of features (an index at or beyond it is an error). Default:
    /// one more than the largest index in the file, found by a pass over it.
    #[arg(help_heading = "Data", long, value_name = "N", alias = "cols", conflicts_with = "hash_features",
          value_parser = clap::value_parser!(u64).range(1..=1u64 << 32))]
    pub features: Option<u64>,
    /// LIBSVM data: hash unbounded feature indices into N = 2^k features (`2^20` or
    /// `1048576`); values that meet at one feature are added.
    #[arg(help_heading = "Data", long, value_name = "2^K", value_parser = parse_hash_features)]
    pub hash_features: Option<u32>,
    /// LIBSVM data: indices start at 0 (default: at 1, LIBSVM's convention).
    #[arg(help_heading = "Data", long)]
    pub zero_based: bool,
}

impl LibsvmArgs {
    pub fn format(&self) -> LibsvmFormat {
        LibsvmFormat { zero_based: self.zero_based, features: self.features, hash_bits: self.hash_features }
    }

    /// Refuses the options for data that is not LIBSVM (they would be silently ignored).
    pub fn check_for(&self, data: &Data, location: &str) -> Result<()> {
        if !matches!(data, Data::Libsvm(_)) && !self.format().is_default() {
            bail!(
                "--features, --hash-features and --zero-based apply to LIBSVM data (.svm, .libsvm, .svmlight); {location} is not one"
            );
        }
        Ok(())
    }
}

/// `2^k` or the power of two itself, for k in 1..=31: returns k.
fn parse_hash_features(s: &str) -> Result<u32, String> {
    let k = match s.strip_prefix("2^") {
        Some(k) => k.parse::<u32>().map_err(|_| format!("expected 2^K or a power of two, got {s:?}"))?,
        None => {
            let n: u64 = s.parse().map_err(|_| format!("expected 2^K or a power of two, got {s:?}"))?;
            if !n.is_power_of_two() {
                return Err(format!("{n} is not a power of two (give 2^K)"));
            }
            n.trailing_zeros()
        }
    };
    if !(1..=31).contains(&k) {
        return Err(format!("2^{k} features: K must be between 1 and 31"));
    }
    Ok(k)
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match s.as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'\n' | b'\r' | b'"') => Ok(*b),
            _ => Err(format!("expected one ASCII character other than a quote or newline, or `tab`; got {s:?}")),
        },
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The algorithm: a builtin kernel (`kmeans`, `logreg`); omit it with --kernel.
    #[arg(required_unless_present = "kernel", conflicts_with = "kernel")]
    pub algorithm: Option<String>,
    /// A plugin: any component of the `ifp:kernel@0.1.0` world, from a file or
    /// `s3://bucket/key`. It runs without WASI capabilities; its parameters come from --param.
    #[arg(help_heading = "Plugins", long, value_name = "FILE.wasm|s3://...")]
    pub kernel: Option<String>,
    /// A kernel parameter `NAME=VALUE`, passed to the kernel as is (repeatable); for plugins,
    /// the only way to set parameters.
    #[arg(help_heading = "Plugins", long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<Param>,
    /// Linear-memory cap per kernel instance, in MiB (default: wasm32's 4 GiB).
    #[arg(help_heading = "Plugins", long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub kernel_memory_mb: Option<u64>,
    /// Seconds one call into the kernel (e.g. one step over a shard) may run before the job
    /// fails (default: no limit).
    #[arg(help_heading = "Plugins", long, value_name = "SECONDS")]
    pub step_timeout: Option<f64>,
    /// Data file or `s3://bucket/key` (.npy float32/float64 2-D, or .csv: see --header and
    /// --delimiter). Without
    /// it, a default data set (200,000 × 16, seeded) is generated in memory.
    #[arg(help_heading = "Data", long)]
    pub data: Option<String>,
    /// Where the label is: `last` column or `none` (default: `last` for logreg, else `none`).
    #[arg(help_heading = "Data", long, value_enum)]
    pub label_col: Option<LabelColArg>,
    #[command(flatten)]
    pub csv: CsvArgs,
    #[command(flatten)]
    pub libsvm: LibsvmArgs,
    /// Number of clusters (kmeans; default: the rows of --init-centroids, or 8).
    #[arg(help_heading = "K-means (kmeans)", long, value_parser = crate::whole_number)]
    pub k: Option<u64>,
    /// K-means initialisation: `first` k rows, `random` (seeded sample) or `kmeans++` (default).
    #[arg(help_heading = "K-means (kmeans)", long, value_parser = ["first", "random", "kmeans++"], conflicts_with = "init_centroids")]
    pub init: Option<String>,
    /// K-means iteration: `hamerly` (default; distance bounds skip rows whose cluster cannot
    /// change, with exactly Lloyd's result) or `lloyd` (every distance, every iteration).
    #[arg(help_heading = "K-means (kmeans)", long, value_parser = ["hamerly", "lloyd"])]
    pub kmeans_algorithm: Option<String>,
    /// Initial centroids (k × cols) from a .npy or .csv file or `s3://bucket/key`.
    #[arg(help_heading = "K-means (kmeans)", long)]
    pub init_centroids: Option<String>,
    /// Maximum iterations (default: 300 for kmeans, 100 for logreg).
    #[arg(help_heading = "Iterations (every algorithm)", long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_iter: Option<u32>,
    /// Convergence tolerance (kmeans: relative to the mean feature variance, default 1e-4;
    /// logreg: change of the loss, default 1e-6).
    #[arg(help_heading = "Iterations (every algorithm)", long, allow_negative_numbers = true)]
    pub tol: Option<f64>,
    /// Gradient-descent step (logreg, default 0.1).
    #[arg(help_heading = "Logistic regression (logreg)", long, allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// L2 regularisation strength (logreg, default 0).
    #[arg(help_heading = "Logistic regression (logreg)", long, allow_negative_numbers = true)]
    pub l2: Option<f64>,
    /// Classes of a logreg label (labels 0..C-1; default 2: binary). From 3 on, the model is
    /// multinomial (softmax) regression.
    #[arg(help_heading = "Logistic regression (logreg)", long, value_parser = clap::value_parser!(u64).range(2..=10_000))]
    pub classes: Option<u64>,
    /// Mini-batch training (logreg): rows per iteration, drawn without replacement from a
    /// seeded permutation (`--seed`) of the global rows, the same for every configuration.
    /// Default: full batch.
    #[arg(help_heading = "Logistic regression (logreg)", long)]
    pub batch_size: Option<u64>,
    /// Passes over the data with --batch-size (sets the iterations to epochs × batches per
    /// epoch; default: --max-iter iterations).
    #[arg(help_heading = "Logistic regression (logreg)", long, requires = "batch_size", conflicts_with = "max_iter", value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: Option<u32>,
    /// Optimiser (logreg): `sgd` (default), `momentum`, `nesterov` or `adam`; their settings
    /// (`momentum`, `beta1`, `beta2`, `epsilon`, `lr-schedule`, `power-t`, `step-size`,
    /// `gamma`, `l1`) go in --param NAME=VALUE.
    #[arg(help_heading = "Logistic regression (logreg)", long)]
    pub optimizer: Option<String>,
    /// Held-out labelled data (logreg; a file or `s3://bucket/key`, .npy or .csv like --data,
    /// read with its --header and --delimiter; the label in the last column): the trained
    /// model's accuracy on it, overall and per class, goes into the summary and the result,
    /// next to the accuracy on the training data.
    #[arg(help_heading = "Logistic regression (logreg)", long, value_name = "FILE|s3://...")]
    pub test_data: Option<String>,
    /// Functions, each with its own share of the data (`--workers` is the same).
    #[arg(help_heading = "Functions", long, visible_alias = "workers", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub functions: u32,
    /// Inner workers (wasm instances) per function (default: the available parallelism).
    #[arg(help_heading = "Functions", long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub inner: Option<u32>,
    /// Seed for the default data and for random/kmeans++ initialisation.
    #[arg(help_heading = "Data", long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result (model, iterations, timings) as JSON.
    #[arg(help_heading = "Output", long)]
    pub out: Option<PathBuf>,
    /// Write the final assignment of every row (kmeans) as .npy (int32) or .csv.
    #[arg(help_heading = "K-means (kmeans)", long)]
    pub labels_out: Option<PathBuf>,
    /// Seconds a function waits for the others in one iteration before failing the job.
    #[arg(help_heading = "Functions", long, default_value_t = 60.0)]
    pub sync_timeout: f64,
    /// Also report when the loss first was at most this value (`time_to_target` in the
    /// result: the iteration, and the seconds of iterations until then), to compare runs
    /// (e.g. --staleness) by time to a target loss.
    #[arg(help_heading = "Output", long, value_name = "LOSS", allow_negative_numbers = true, value_parser = parse_target_loss)]
    pub target_loss: Option<f64>,
    /// Stale-synchronous parallel: a function may run up to S rounds ahead of the slowest,
    /// whose newest partial is reused meanwhile (at most S rounds old). 0 (the default) is
    /// synchronous, bit for bit; with S > 0 the model depends on timing. Full-batch kernels,
    /// at most 16 functions, not with --backend lambda.
    #[arg(help_heading = "Functions", long, value_name = "S", default_value_t = 0, value_parser = parse_staleness)]
    pub staleness: u32,
    /// Job id (default: generated). An id in use is refused, unless --resume is given.
    #[arg(help_heading = "Functions", long)]
    pub job: Option<String>,
    /// Continue the job --job ID that another run started and did not finish (killed, or
    /// failed for good): the data, kernel, parameters and first model must be the same; the
    /// functions rejoin at the iteration the job's state in Redis is at.
    #[arg(long, requires = "job")]
    pub resume: bool,
    /// Attempts per function, the first included: a function that is lost (its process
    /// killed or crashed; its invocation timed out, crashed, was throttled or not reached)
    /// is started again after a capped exponential backoff and rejoins the job (with
    /// --redis or --backend lambda).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Run the functions as `ifp-worker` processes synchronising through this Redis
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS; a private CA's PEM
    /// file in IFP_REDIS_CA). Also read from IFP_REDIS, which keeps a password off the command line.
    #[arg(help_heading = "Functions", long, value_name = "URL", env = REDIS_ENV, hide_env_values = true)]
    pub redis: Option<String>,
    /// Where the functions run: `local` (this machine) or `lambda` (AWS Lambda: needs
    /// --function; with --redis the functions use that Redis, else their IFP_REDIS_URL).
    #[arg(help_heading = "Functions", long, value_enum, default_value_t = Platform::Local)]
    pub backend: Platform,
    #[command(flatten)]
    pub lambda: LambdaArgs,
    /// No progress or summary on stderr/stdout.
    #[arg(help_heading = "Output", long)]
    pub quiet: bool,
    /// An S3-compatible endpoint for `s3://` data (path-style addressing; default: AWS, or
    /// `AWS_ENDPOINT_URL_S3`).
    #[arg(help_heading = "Data", long)]
    pub s3_endpoint: Option<String>,
}

/// Refuses a Redis address without its scheme (`127.0.0.1:6379`), which the Redis client
/// reports only as "InvalidClientConfig".
pub fn check_redis_url(url: &str) -> Result<()> {
    if !url.contains("://") {
        bail!("--redis {url}: a Redis URL needs its scheme: redis://{url} (or rediss://{url} for TLS)");
    }
    Ok(())
}

/// `NAME=VALUE` as a kernel parameter.
fn parse_param(s: &str) -> Result<Param, String> {
    match s.split_once('=') {
        Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

/// How the functions find a plugin: an `s3://` URI as given, a file by its absolute path.
pub(super) fn plugin_location(source: &KernelSource) -> Result<String> {
    Ok(match source {
        KernelSource::File(p) => {
            std::path::absolute(p).with_context(|| format!("--kernel {}", p.display()))?.display().to_string()
        }
        other => other.label(),
    })
}

/// Refuses the builtin kernels' own flags with a plugin.
fn plugin_flags(a: &RunArgs, has_data: bool) -> Result<()> {
    let builtin_only = [
        ("--k", a.k.is_some()),
        ("--init", a.init.is_some()),
        ("--init-centroids", a.init_centroids.is_some()),
        ("--kmeans-algorithm", a.kmeans_algorithm.is_some()),
        ("--tol", a.tol.is_some()),
        ("--learning-rate", a.learning_rate.is_some()),
        ("--l2", a.l2.is_some()),
        ("--classes", a.classes.is_some()),
        ("--batch-size", a.batch_size.is_some()),
        ("--optimizer", a.optimizer.is_some()),
        ("--test-data", a.test_data.is_some()),
    ];
    if let Some((flag, _)) = builtin_only.iter().find(|(_, given)| *given) {
        bail!("{flag} applies to the builtin kernels; give a plugin its parameters with --param NAME=VALUE");
    }
    if !has_data {
        bail!("--kernel needs --data (the default data sets are for the builtin kernels)");
    }
    Ok(())
}

pub(super) fn builtin_kind(algorithm: &str) -> Result<Kind> {
    match algorithm {
        "kmeans" => Ok(Kind::Kmeans),
        "logreg" => Ok(Kind::Logreg),
        other => bail!("unknown algorithm '{other}' (builtin: kmeans, logreg)"),
    }
}

/// The kernel parameters for `args`, refusing flags that do not apply to the algorithm.
pub(super) fn kernel_params(kind: Kind, a: &RunArgs, k: Option<u64>) -> Result<Vec<Param>> {
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
            misplaced("--classes", a.classes.is_some())?;
            misplaced("--batch-size", a.batch_size.is_some())?;
            misplaced("--optimizer", a.optimizer.is_some())?;
            misplaced("--test-data", a.test_data.is_some())?;
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
            if let Some(c) = a.classes {
                put("classes", c.to_string());
            }
            if let Some(b) = a.batch_size {
                put("batch-size", b.to_string());
                put("seed", a.seed.to_string());
            }
            if let Some(o) = &a.optimizer {
                put("optimizer", o.clone());
            }
        }
    }
    if let Some(t) = a.tol {
        put("tol", t.to_string());
    }
    Ok(p)
}

/// Reads `--init-centroids`: a k × cols table, row-major.
pub(super) fn read_centroids(path: &str, s3: &S3Connector, cols: u32, k: Option<u64>) -> Result<(u64, Vec<f64>)> {
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

/// `ifp run`'s arguments from a list without the program name and `run`: the embedding
/// programs' way to get the command line's options, defaults and errors.
pub fn parse_run_args<I, T>(args: I) -> Result<RunArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    #[command(name = "ifp run", no_binary_name = true)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }
    <Run as clap::Parser>::try_parse_from(args).map(|r| r.run)
}

/// The checks of the arguments that need no file, kernel or data.
pub(super) fn check_args(a: &RunArgs, has_data: bool) -> Result<()> {
    if a.kernel.is_some() {
        plugin_flags(a, has_data)?;
    }
    sandbox_from(a.kernel_memory_mb, a.step_timeout)?;
    if let Some(url) = &a.redis {
        check_redis_url(url)?;
    }
    if !(a.sync_timeout.is_finite() && a.sync_timeout > 0.0) {
        bail!("--sync-timeout must be a positive number of seconds, got {}", a.sync_timeout);
    }
    if a.staleness > 0 {
        let flat = ifp_host::sync::tree::FLAT;
        if a.backend == Platform::Lambda {
            bail!("--staleness {} is not supported with --backend lambda (its functions leave and come back at their time limit)", a.staleness);
        }
        if a.functions > flat {
            bail!("--staleness {} needs at most {flat} functions, got --functions {}", a.staleness, a.functions);
        }
        if a.batch_size.is_some() {
            bail!(
                "--staleness {} needs full-batch iterations: mini-batch runs (--batch-size) are synchronous",
                a.staleness
            );
        }
        if a.resume {
            bail!(
                "--staleness {} cannot --resume: a function cannot rejoin a stale-synchronous job mid-way",
                a.staleness
            );
        }
    }
    Ok(())
}

/// `--target-loss`: a finite number.
fn parse_target_loss(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("expected a finite number".into()),
    }
}

/// `--staleness`: a whole number of rounds, at most 1000.
fn parse_staleness(s: &str) -> Result<u32, String> {
    match crate::whole_number(s)? {
        n if n <= 1000 => Ok(n as u32),
        n => Err(format!("at most 1000 rounds, got {n}")),
    }
}
