//! `ifp bench`: our iterations side by side with what a user would run instead, on the same
//! data, the same machine and the same thread count, in one go.
//!
//! It generates a k-means data set (one Gaussian blob, so that Lloyd's algorithm keeps moving
//! for every timed iteration; the cost of an iteration does not depend on where the points
//! lie) and a labelled linear problem, writes both as `.npy` to a temporary directory, then:
//! - times our k-means Lloyd iterations (step on every inner worker + merge + update) with
//!   `--inner` workers and with one, from the first `k` rows as centroids, and our
//!   logistic-regression iterations;
//! - runs `bench.py` (embedded) under `--python`, which times scikit-learn's
//!   `KMeans(algorithm="lloyd")` per iteration (fits of 12 and 2 iterations from the same
//!   centroids, tol = 0) and a numpy full-batch gradient step, with every BLAS/OpenMP pool
//!   limited to `--inner` threads;
//! - runs k-means to convergence on `--k` Gaussian blobs (a second data set) from the same
//!   initial centroids (`--converge-init`: our k-means++ `init` on the first 10,000 rows, or
//!   the first k rows): ours with Hamerly's bounds and
//!   with plain Lloyd, scikit-learn's `lloyd` and `elkan` (`tol = 1e-4`, `max_iter = 300`),
//!   reporting times, iterations and how far the final centroids are apart;
//! - measures the peak resident memory of a child `ifp run kmeans` on the blobs (its
//!   `ru_maxrss`, read through Python's `resource.getrusage(RUSAGE_CHILDREN)`);
//! - prints medians and ratios (ours / theirs), the BLAS and thread pools Python used, and
//!   how far our centroids after two iterations are from scikit-learn's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use ifp_host::data::{Data, Rows};
use ifp_host::function::{Function, JobSpec};
use ifp_host::kernel::{DataShape, Sample};
use ifp_host::{KernelEngine, Param, Sandbox};

use crate::gen::{GenSpec, Kind};
use crate::output;

/// The Python side (scikit-learn and numpy timings).
const BENCH_PY: &str = include_str!("bench.py");
/// Pinned versions for `--setup-python` (the same pins as the reference fixtures).
const REQUIREMENTS: &str = include_str!("../tests/fixtures/requirements.txt");

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Rows of each data set.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: u64,
    /// Feature columns.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub cols: u64,
    /// Clusters (k-means).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub k: u64,
    /// Inner workers for our side and threads for the Python side.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub inner: u64,
    /// Timed iterations (ours) and fit pairs (scikit-learn); medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub repeats: u64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Python interpreter with numpy, scikit-learn and threadpoolctl.
    #[arg(long, default_value = "python3", conflicts_with = "setup_python")]
    pub python: PathBuf,
    /// Create (or reuse) a virtual environment in this directory with the pinned versions
    /// of driver/tests/fixtures/requirements.txt, and use its interpreter.
    #[arg(long)]
    pub setup_python: Option<PathBuf>,
    /// Skip the Python side (print our timings only).
    #[arg(long)]
    pub no_python: bool,
    /// Initial centroids of the runs to convergence: `kmeans++` (our init on the first 10,000
    /// rows, seed 0) or `first` (the first k rows, so that Lloyd takes more iterations).
    #[arg(long, default_value = "kmeans++", value_parser = ["kmeans++", "first"])]
    pub converge_init: String,
    /// Runs to convergence timed per algorithm (ours and scikit-learn's); medians reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub converge_repeats: u64,
}

/// `max_iter` of every run to convergence (scikit-learn's default).
const CONVERGE_MAX_ITER: u32 = 300;
/// `tol` of every run to convergence (scikit-learn's default).
const CONVERGE_TOL: &str = "1e-4";

/// One of our runs to convergence.
struct Converged {
    /// Median seconds over the runs (steps, merges and updates; loading excluded).
    secs: f64,
    iterations: u32,
    converged: bool,
    centroids: Vec<f64>,
}

/// Runs k-means with `algorithm` from `start` (centroids) to convergence `repeats` times
/// (each on a fresh function, so Hamerly starts without bounds as it would in a new job).
fn converge(rows: &Arc<Rows>, k: u64, start: &[f64], algorithm: &str, inner: usize, repeats: u64) -> Result<Converged> {
    let engine = KernelEngine::builtin("kmeans", Sandbox::default())?;
    let shape = DataShape { cols: rows.cols as u32, has_labels: false, total_rows: rows.len() as u64 };
    let params: Vec<Param> =
        vec![("k".into(), k.to_string()), ("tol".into(), CONVERGE_TOL.into()), ("algorithm".into(), algorithm.into())];
    let spec = Arc::new(JobSpec {
        job: "bench-converge".into(),
        params: params.clone(),
        shape,
        max_iter: CONVERGE_MAX_ITER,
        functions: 1,
    });
    let data = Data::Memory(rows.clone());
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let mut f = Function::load(&engine, spec.clone(), 0, inner as u32, &data, 0..shape.total_rows, None)?;
        let none = Sample { features: Vec::new(), labels: Vec::new() };
        let mut model = f.instance().init(&params, shape, &none, start)?;
        let t = Instant::now();
        let (mut it, mut done) = (0, false);
        while it < CONVERGE_MAX_ITER && !done {
            let total = f.step(&model)?;
            let u = f.instance().update(&params, shape, &model, &total)?;
            model = u.model;
            done = u.converged;
            it += 1;
        }
        times.push(t.elapsed().as_secs_f64());
        model.truncate(start.len());
        last = Some((it, done, model));
    }
    let (iterations, converged, centroids) = last.expect("at least one run");
    Ok(Converged {
        secs: timed(&format!("our {algorithm} to convergence"), &mut times),
        iterations,
        converged,
        centroids,
    })
}

/// The initial centroids `init` (our `init`, seed 0) from the first 10,000 rows of `rows`.
fn converge_start(rows: &Rows, k: u64, init: &str) -> Result<Vec<f64>> {
    use ifp_kernel_math::Algorithm as _;
    let d = rows.cols;
    let n = rows.len().min(10_000);
    let shape = ifp_kernel_math::DataShape { cols: d as u32, has_labels: false, total_rows: n as u64 };
    let params: Vec<Param> = vec![("k".into(), k.to_string()), ("init".into(), init.into())];
    let mut m =
        ifp_kernel_math::KMeans::init(&params, shape, &rows.features[..n * d], &[], &[]).map_err(anyhow::Error::msg)?;
    m.truncate(k as usize * d);
    Ok(m)
}

/// Largest `|a − b| / max(|b|, 1)` over two centroid lists of the same length.
fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}

/// Peak resident memory (bytes) of a child `ifp run kmeans` on `data` from `init`, read by
/// `python` as `ru_maxrss` of its finished child.
fn peak_rss(python: &Path, data: &Path, init: &Path, inner: u64) -> Result<u64> {
    let exe = std::env::current_exe().context("cannot find the ifp binary")?;
    let out_json = data.with_file_name("rss-run.json");
    let script = "import resource, subprocess, sys\n\
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
sys.stderr.write(r.stderr.decode(errors='replace')[-2000:])\n\
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)\n";
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .args(["run", "kmeans", "--quiet", "--workers", "1", "--inner"])
        .arg(inner.to_string())
        .arg("--data")
        .arg(data)
        .arg("--init-centroids")
        .arg(init)
        .args(["--tol", CONVERGE_TOL, "--out"])
        .arg(&out_json)
        .output()
        .with_context(|| format!("cannot run python '{}' to measure the peak memory", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kb: i64 = stdout.trim().parse().unwrap_or(-1);
    if kb < 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("the memory run of 'ifp run kmeans' failed: {}", err.lines().last().unwrap_or("no output"));
    }
    Ok(kb as u64 * 1024)
}

/// The widest spread (slowest / fastest repeat) of any one timed measure so far, and its name.
static WIDEST: std::sync::Mutex<(f64, String)> = std::sync::Mutex::new((1.0, String::new()));

/// Slowest over fastest of `v` (1 for fewer than two values).
fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if v.len() < 2 || lo <= 0.0 {
        1.0
    } else {
        hi / lo
    }
}

/// The median of the repeats of measure `what`, noting their spread (see [`WIDEST`]): on a
/// shared machine a busy neighbour shows up as repeats far apart.
fn timed(what: &str, v: &mut [f64]) -> f64 {
    let s = spread(v);
    let mut w = WIDEST.lock().unwrap_or_else(|e| e.into_inner());
    if s > w.0 {
        *w = (s, what.to_string());
    }
    median(v)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Our timings, in seconds per iteration (each a median).
struct Ours {
    kmeans_iter: f64,
    kmeans_iter_1: f64,
    logreg_iter: f64,
    ready: f64,
    /// One native (this binary's build of the same source) step on one thread.
    kmeans_native: f64,
    logreg_native: f64,
    /// One wasm step of the logistic regression with one inner worker.
    logreg_iter_1: f64,
    /// Centroids after two iterations from the initial ones.
    centers_2: Vec<f64>,
}

/// Runs `1 + repeats` iterations of `kernel` with `inner` inner workers from `model`; returns
/// the median time of the last `repeats` and the model after `keep_after` iterations.
#[allow(clippy::too_many_arguments)] // four calls, each one line that reads as the row it measures
fn iterate(
    what: &str,
    kernel: &str,
    rows: &Arc<Rows>,
    params: &[Param],
    mut model: Vec<f64>,
    inner: usize,
    repeats: u64,
    keep_after: usize,
) -> Result<(f64, Vec<f64>)> {
    let engine = KernelEngine::builtin(kernel, Sandbox::default())?;
    let shape = DataShape { cols: rows.cols as u32, has_labels: rows.has_labels(), total_rows: rows.len() as u64 };
    let spec =
        Arc::new(JobSpec { job: "bench".into(), params: params.to_vec(), shape, max_iter: u32::MAX, functions: 1 });
    let mut f = Function::load(&engine, spec, 0, inner as u32, &Data::Memory(rows.clone()), 0..shape.total_rows, None)?;
    f.instance().validate(params, shape)?;
    let mut times = Vec::new();
    let mut kept = Vec::new();
    for i in 0..=repeats as usize {
        let t = Instant::now();
        let total = f.step(&model)?;
        let u = f.instance().update(params, shape, &model, &total)?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        model = u.model;
        if i + 1 == keep_after {
            kept = model.clone();
        }
    }
    Ok((timed(what, &mut times), kept))
}

/// Precompiled k-means kernel to `inner` ready instances, median of five.
fn ready_time(inner: usize) -> Result<f64> {
    let pre = KernelEngine::precompile(ifp_kernels_kmeans()?, &Sandbox::default())?;
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let e = KernelEngine::new("kmeans", &pre, Sandbox::default())?;
        let insts = (0..inner).map(|_| e.instantiate()).collect::<Result<Vec<_>, _>>()?;
        v.push(t.elapsed().as_secs_f64());
        drop(insts);
    }
    Ok(median(&mut v))
}

fn ifp_kernels_kmeans() -> Result<&'static [u8]> {
    ifp_kernels::builtin("kmeans").context("the kmeans kernel is not builtin")
}

fn run_ours(a: &BenchArgs, km: &Arc<Rows>, init: &[f64], lr: &Arc<Rows>) -> Result<Ours> {
    let inner = a.inner as usize;
    // Plain Lloyd (algorithm code 0 after the centroids): every distance computed.
    let kp: Vec<Param> = vec![
        ("k".into(), a.k.to_string()),
        ("init".into(), "first".into()),
        ("tol".into(), "0".into()),
        ("algorithm".into(), "lloyd".into()),
    ];
    let model: Vec<f64> = init.iter().copied().chain([0.0]).collect();
    eprintln!("timing our k-means Lloyd iterations ({inner} inner workers, then 1)");
    let (kmeans_iter, mut centers_2) =
        iterate("our k-means iteration", "kmeans", km, &kp, model.clone(), inner, a.repeats, 2)?;
    centers_2.truncate(init.len());
    let (kmeans_iter_1, _) = if inner == 1 {
        (kmeans_iter, Vec::new())
    } else {
        iterate("our 1-worker k-means iteration", "kmeans", km, &kp, model.clone(), 1, a.repeats, 0)?
    };
    eprintln!("timing our logistic-regression iterations ({inner} inner workers)");
    let lp: Vec<Param> = vec![("learning-rate".into(), "0.1".into()), ("tol".into(), "0".into())];
    let start = logreg_start(a.cols as usize);
    let (logreg_iter, _) =
        iterate("our logreg iteration", "logreg", lr, &lp, start.clone(), inner, a.repeats.max(5), 0)?;
    let (logreg_iter_1, _) = if inner == 1 {
        (logreg_iter, Vec::new())
    } else {
        iterate("our 1-worker logreg iteration", "logreg", lr, &lp, start.clone(), 1, a.repeats.max(5), 0)?
    };
    let ready = ready_time(inner)?;
    eprintln!("timing the native build of the same kernels (one thread)");
    let kmeans_native = native_step::<ifp_kernel_math::KMeans>("the native k-means step", km, &model, a.repeats)?;
    let logreg_native = native_step::<ifp_kernel_math::LogReg>("the native logreg step", lr, &start, a.repeats.max(5))?;
    Ok(Ours { kmeans_iter, kmeans_iter_1, logreg_iter, ready, kmeans_native, logreg_native, logreg_iter_1, centers_2 })
}

/// Median time of one `step` of the native build of algorithm `A` (this binary's target CPU
/// settings) over every row, on this thread, after one warm-up step.
fn native_step<A: ifp_kernel_math::Algorithm>(what: &str, rows: &Rows, model: &[f64], repeats: u64) -> Result<f64> {
    use ifp_kernel_math::Shard as _;
    let shape = ifp_kernel_math::DataShape {
        cols: rows.cols as u32,
        has_labels: rows.has_labels(),
        total_rows: rows.len() as u64,
    };
    let mut s = A::new_shard(shape);
    s.append(&rows.features, &rows.labels).map_err(anyhow::Error::msg)?;
    s.step(model).map_err(anyhow::Error::msg)?;
    let mut v = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        std::hint::black_box(s.step(model).map_err(anyhow::Error::msg)?);
        v.push(t.elapsed().as_secs_f64());
    }
    Ok(timed(what, &mut v))
}

/// The starting logistic-regression model, the same as `bench.py`'s: `w_j = 0.01 (j − d/2)`,
/// `b = 0.1` (rounded to f32 as numpy holds them).
fn logreg_start(d: usize) -> Vec<f64> {
    let mut m: Vec<f64> = (0..d).map(|j| (0.01 * (j as f64 - d as f64 / 2.0)) as f32 as f64).collect();
    m.extend([0.1f32 as f64, f64::NAN]);
    m
}

/// Creates (or reuses) a venv in `dir` with the pinned packages; returns its interpreter.
fn setup_python(dir: &Path) -> Result<PathBuf> {
    let py = dir.join("bin").join("python");
    if !py.exists() {
        eprintln!("creating a Python virtual environment in {}", dir.display());
        let st = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(dir)
            .status()
            .context("cannot run python3 to create the virtual environment")?;
        ensure!(st.success(), "python3 -m venv {} failed ({st})", dir.display());
    }
    let req = tempfile::Builder::new().prefix("ifp-requirements-").suffix(".txt").tempfile()?;
    std::fs::write(req.path(), REQUIREMENTS)?;
    eprintln!("installing the pinned packages (numpy, scikit-learn, threadpoolctl, ...)");
    let st = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(req.path())
        .status()
        .with_context(|| format!("cannot run {}", py.display()))?;
    ensure!(st.success(), "pip install into {} failed ({st})", dir.display());
    Ok(py)
}

/// The last non-empty line of a failed Python's stderr (its exception), for a one-line error.
fn last_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").to_string()
}

/// Fails early, in one line, when `python` cannot run or lacks a package the script needs.
fn check_python(python: &Path) -> Result<()> {
    let out =
        Command::new(python).args(["-c", "import numpy, sklearn, threadpoolctl"]).output().with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let last = last_line(&out.stderr);
        bail!(
            "python '{}' cannot import numpy, scikit-learn and threadpoolctl: {last} (try --setup-python DIR)",
            python.display()
        );
    }
    Ok(())
}

fn run_python(python: &Path, dir: &Path, threads: u64, repeats: u64, converge_repeats: u64) -> Result<Value> {
    let script = dir.join("bench.py");
    std::fs::write(&script, BENCH_PY)?;
    let n = threads.to_string();
    eprintln!("timing scikit-learn and numpy with {} ({threads} threads)", python.display());
    let out = Command::new(python)
        .arg(&script)
        .arg(dir)
        .arg(&n)
        .arg(repeats.to_string())
        .arg(converge_repeats.to_string())
        .envs(
            ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"].map(|v| (v, n.as_str())),
        )
        .output()
        .with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let last = last_line(&out.stderr);
        bail!(
            "the Python benchmark failed under '{}' ({}): {last} (it needs numpy, scikit-learn and threadpoolctl: try --setup-python DIR)",
            python.display(),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).context("the Python benchmark printed no JSON result")?;
    serde_json::from_str(line).context("the Python benchmark printed malformed JSON")
}

fn secs(v: &Value, key: &str) -> Result<f64> {
    let mut xs: Vec<f64> = v[key]
        .as_array()
        .with_context(|| format!("python result lacks '{key}'"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ensure!(!xs.is_empty(), "python result '{key}' is empty");
    Ok(timed(&format!("python's {key}"), &mut xs))
}

/// Above this spread between the repeats of one measure, `ifp bench` says the machine was busy.
const BUSY_SPREAD: f64 = 1.25;

pub fn bench_cmd(a: BenchArgs) -> Result<()> {
    ensure!(a.k <= a.rows, "--k is {}, more than the {} rows", a.k, a.rows);
    let dir = tempfile::Builder::new().prefix("ifp-bench-").tempdir().context("cannot create a temporary directory")?;
    let (n, d) = (a.rows, a.cols);
    let python = match &a.setup_python {
        Some(venv) if !a.no_python => Some(setup_python(venv)?),
        _ if a.no_python => None,
        _ => Some(a.python.clone()),
    };
    if let Some(py) = &python {
        check_python(py)?;
    }
    eprintln!("generating {n} x {d} k-means rows and {n} x {d} logistic-regression rows (seed {})", a.seed);
    let km = Arc::new(GenSpec { kind: Kind::Kmeans, rows: n, cols: d, k: 1, seed: a.seed }.rows());
    let lr = Arc::new(GenSpec { kind: Kind::Logreg, rows: n, cols: d, k: 0, seed: a.seed }.rows());
    let k = a.k as usize;
    let init: Vec<f64> = km.features[..k * d as usize].iter().map(|&v| v as f64).collect();
    if python.is_some() {
        output::write_npy_f32(&dir.path().join("kmeans_x.npy"), n, d, km.features.iter().copied())?;
        output::write_npy_f32(
            &dir.path().join("kmeans_init.npy"),
            a.k,
            d,
            km.features[..k * d as usize].iter().copied(),
        )?;
        output::write_npy_f32(&dir.path().join("logreg_x.npy"), n, d, lr.features.iter().copied())?;
        output::write_npy_f32(&dir.path().join("logreg_y.npy"), n, 1, lr.labels.iter().copied())?;
    }
    let ours = run_ours(&a, &km, &init, &lr)?;
    drop((km, lr));

    eprintln!("generating {n} x {d} rows of {} Gaussian blobs (seed {}) for the runs to convergence", a.k, a.seed + 1);
    let blobs = Arc::new(GenSpec { kind: Kind::Kmeans, rows: n, cols: d, k: a.k, seed: a.seed + 1 }.rows());
    let start = converge_start(&blobs, a.k, &a.converge_init)?;
    let (blobs_x, blobs_init) = (dir.path().join("blobs_x.npy"), dir.path().join("blobs_init.npy"));
    if python.is_some() {
        output::write_npy_f32(&blobs_x, n, d, blobs.features.iter().copied())?;
        output::write_npy_f32(&blobs_init, a.k, d, start.iter().map(|&v| v as f32))?;
    }
    let inner = a.inner as usize;
    eprintln!("our k-means to convergence: Hamerly, then Lloyd ({inner} inner workers)");
    let ham = converge(&blobs, a.k, &start, "hamerly", inner, a.converge_repeats)?;
    let lloyd = converge(&blobs, a.k, &start, "lloyd", inner, a.converge_repeats)?;
    drop(blobs);

    let theirs = match &python {
        Some(py) => Some(run_python(py, dir.path(), a.inner, a.repeats, a.converge_repeats)?),
        None => None,
    };
    let rss = match &python {
        Some(py) => {
            eprintln!("peak memory of 'ifp run kmeans' on the blobs ({} inner workers)", a.inner);
            Some(peak_rss(py, &blobs_x, &blobs_init, a.inner)?)
        }
        None => None,
    };

    let ms = |s: f64| format!("{:.2}", s * 1e3);
    println!(
        "ifp bench: {n} x {d} f32, k = {}, {} inner workers / threads, medians of {} (ifp {})",
        a.k,
        a.inner,
        a.repeats,
        env!("CARGO_PKG_VERSION")
    );
    println!("{:<44} {:>10} {:>12} {:>8} {:>8}", "measure", "ours ms", "theirs ms", "ratio", "target");
    let row = |what: &str, o: f64, t: Option<f64>, target: &str| match t {
        Some(t) => println!("{what:<44} {:>10} {:>12} {:>8.3} {target:>8}", ms(o), ms(t), o / t),
        None => println!("{what:<44} {:>10} {:>12} {:>8} {target:>8}", ms(o), "-", "-"),
    };
    let (sk, np) = match &theirs {
        Some(v) => (Some(secs(v, "kmeans_iter_s")?), Some(secs(v, "logreg_step_s")?)),
        None => (None, None),
    };
    row("k-means Lloyd iteration vs scikit-learn", ours.kmeans_iter, sk, "<= 1.0");
    row("logreg iteration vs numpy gradient step", ours.logreg_iter, np, "<= 0.4");
    let speedup = |what: &str, many: f64, one: f64| {
        if a.inner > 1 {
            let name = format!("{what} speed-up 1 -> {} inner workers", a.inner);
            println!("{name:<44} {:>10} {:>12} {:>8.3} {:>8}", ms(many), ms(one), one / many, ">= 1.8");
        }
    };
    speedup("k-means", ours.kmeans_iter, ours.kmeans_iter_1);
    row("k-means step, 1 wasm worker vs native (1 thread)", ours.kmeans_iter_1, Some(ours.kmeans_native), "<= 1.0");
    row("logreg step, 1 wasm worker vs native (1 thread)", ours.logreg_iter_1, Some(ours.logreg_native), "<= 1.0");
    speedup("logreg", ours.logreg_iter, ours.logreg_iter_1);
    println!(
        "{:<44} {:>10} {:>12} {:>8} {:>8}",
        format!("precompiled kernel + {} instances ready", a.inner),
        ms(ours.ready),
        "-",
        "-",
        "<= 50ms"
    );
    let (sk_lloyd, sk_elkan) = match &theirs {
        Some(v) => (Some(secs(v, "converge_lloyd_s")?), Some(secs(v, "converge_elkan_s")?)),
        None => (None, None),
    };
    let sk_best = match (sk_lloyd, sk_elkan) {
        (Some(l), Some(e)) => Some(l.min(e)),
        _ => None,
    };
    row("k-means converge: Hamerly vs best scikit-learn", ham.secs, sk_best, "<= 0.5");
    row("k-means converge: Lloyd vs scikit-learn lloyd", lloyd.secs, sk_lloyd, "-");
    row("k-means converge: Hamerly vs our Lloyd", ham.secs, Some(lloyd.secs), "-");
    if let Some(e) = sk_elkan {
        row("k-means converge: Hamerly vs scikit-learn elkan", ham.secs, Some(e), "-");
    }
    let data_bytes = n * d * 4;
    let rss_target = data_bytes as f64 * 1.5 + 64.0 * 1048576.0;
    match rss {
        Some(b) => println!(
            "{:<44} {:>10} {:>12} {:>8.3} {:>8}",
            "peak RSS of 'ifp run kmeans' (MiB)",
            format!("{:.1}", b as f64 / 1048576.0),
            format!("{:.1}", rss_target / 1048576.0),
            b as f64 / rss_target,
            "<= 1.0"
        ),
        None => println!("{:<44} {:>10}", "peak RSS of 'ifp run kmeans' (MiB)", "- (needs python)"),
    }
    let (widest, what) = WIDEST.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "repeats: the slowest repeat of one measure took {widest:.2}x its fastest ({}){}",
        if what.is_empty() { "-" } else { &what },
        if widest > BUSY_SPREAD {
            format!("; over {BUSY_SPREAD}x the machine was busy while measuring: rerun before trusting the ratios")
        } else {
            String::new()
        }
    );
    println!();
    println!(
        "converge ({} blobs, tol {CONVERGE_TOL}, from the same {} centroids): iterations ours Hamerly {}{}, ours Lloyd {}{}",
        a.k,
        a.converge_init,
        ham.iterations,
        if ham.converged { "" } else { " (not converged)" },
        lloyd.iterations,
        if lloyd.converged { "" } else { " (not converged)" },
    );
    let same = ham.centroids.len() == lloyd.centroids.len()
        && ham.centroids.iter().zip(&lloyd.centroids).all(|(a, b)| a.to_bits() == b.to_bits());
    println!(
        "check: Hamerly's final centroids are {} Lloyd's",
        if same { "bit-identical to" } else { "DIFFERENT from" }
    );
    if let Some(v) = &theirs {
        for alg in ["lloyd", "elkan"] {
            let c: Vec<f64> = v[format!("converge_{alg}_centers")]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            let it = v[format!("converge_{alg}_n_iter")].as_u64().unwrap_or(0);
            if c.len() == ham.centroids.len() {
                let diff = max_rel_diff(&ham.centroids, &c);
                println!(
                    "check: scikit-learn {alg}: {it} iterations; final centroids differ from ours by at most {diff:.1e} relative ({})",
                    if diff <= 1e-6 { "ok, <= 1e-6" } else { "MORE than 1e-6" }
                );
            }
        }
    }
    if let Some(v) = &theirs {
        println!();
        println!(
            "python {}, numpy {}, scikit-learn {}, BLAS: {}",
            v["python"].as_str().unwrap_or("?"),
            v["numpy"].as_str().unwrap_or("?"),
            v["sklearn"].as_str().unwrap_or("?"),
            v["blas"].as_str().unwrap_or("?")
        );
        for p in v["threadpools"].as_array().into_iter().flatten() {
            println!(
                "  thread pool: {} ({}, {}) with {} threads",
                p["internal_api"].as_str().unwrap_or("?"),
                p["user_api"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["num_threads"]
            );
        }
        if let Some(it) = v["kmeans_n_iter_12"].as_u64() {
            if it != 12 {
                println!(
                    "warning: scikit-learn stopped after {it} of 12 iterations; its per-iteration time is unreliable"
                );
            }
        }
        if let Some(c) = v["kmeans_centers_2"].as_array() {
            let c: Vec<f64> = c.iter().filter_map(Value::as_f64).collect();
            if c.len() == ours.centers_2.len() {
                let diff =
                    c.iter().zip(&ours.centers_2).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
                println!("check: centroids after 2 iterations differ from scikit-learn's by at most {diff:.1e} (relative; scikit-learn accumulates in f32, we in f64)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_slowest_over_fastest_and_the_widest_is_kept() {
        assert_eq!(spread(&[2.0, 3.0, 1.5]), 2.0);
        assert_eq!(spread(&[4.0]), 1.0);
        assert_eq!(spread(&[]), 1.0);
        assert_eq!(timed("a", &mut [1.0, 1.1, 1.2]), 1.1);
        assert_eq!(timed("b", &mut [3.0, 1.0, 2.0, 2.5]), 2.25);
        assert_eq!(timed("c", &mut [1.0, 1.5]), 1.25);
        let (w, what) = WIDEST.lock().unwrap().clone();
        assert_eq!((w, what.as_str()), (3.0, "b"));
    }
}
