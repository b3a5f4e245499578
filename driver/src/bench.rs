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
//! - prints medians and ratios (ours / theirs), the BLAS and thread pools Python used, and
//!   how far our centroids after two iterations are from scikit-learn's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use ifp_host::data::Rows;
use ifp_host::function::{Function, JobSpec, RowSource};
use ifp_host::kernel::DataShape;
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
    /// Centroids after two iterations from the initial ones.
    centers_2: Vec<f64>,
}

/// Runs `1 + repeats` iterations of `kernel` with `inner` inner workers from `model`; returns
/// the median time of the last `repeats` and the model after `keep_after` iterations.
fn iterate(
    kernel: &str,
    rows: &Rows,
    params: &[Param],
    mut model: Vec<f64>,
    inner: usize,
    repeats: u64,
    keep_after: usize,
) -> Result<(f64, Vec<f64>)> {
    let engine = KernelEngine::builtin(kernel, Sandbox::default())?;
    let shape = DataShape { cols: rows.cols as u32, has_labels: rows.has_labels(), total_rows: rows.len() as u64 };
    let spec =
        Arc::new(JobSpec { job: "bench".into(), params: params.to_vec(), shape, max_iter: u32::MAX, workers: 1 });
    let mut f = Function::load(&engine, spec, 0, inner, &RowSource::Memory(rows), 0..shape.total_rows)?;
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
    Ok((median(&mut times), kept))
}

/// Precompiled k-means kernel to `inner` ready instances, median of five.
fn ready_time(inner: usize) -> Result<f64> {
    let pre = KernelEngine::precompile(ifp_kernels_kmeans()?, &Sandbox::default())?;
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let e = KernelEngine::new("kmeans", &pre, Sandbox::default())?;
        let insts = (0..inner).map(|_| e.instantiate()).collect::<Result<Vec<_>>>()?;
        v.push(t.elapsed().as_secs_f64());
        drop(insts);
    }
    Ok(median(&mut v))
}

fn ifp_kernels_kmeans() -> Result<&'static [u8]> {
    ifp_kernels::builtin("kmeans").context("the kmeans kernel is not builtin")
}

fn run_ours(a: &BenchArgs, km: &Rows, init: &[f64], lr: &Rows) -> Result<Ours> {
    let inner = a.inner as usize;
    let kp: Vec<Param> =
        vec![("k".into(), a.k.to_string()), ("init".into(), "first".into()), ("tol".into(), "0".into())];
    eprintln!("timing our k-means iterations ({inner} inner workers, then 1)");
    let (kmeans_iter, centers_2) = iterate("kmeans", km, &kp, init.to_vec(), inner, a.repeats, 2)?;
    let (kmeans_iter_1, _) = if inner == 1 {
        (kmeans_iter, Vec::new())
    } else {
        iterate("kmeans", km, &kp, init.to_vec(), 1, a.repeats, 0)?
    };
    eprintln!("timing our logistic-regression iterations ({inner} inner workers)");
    let lp: Vec<Param> = vec![("learning-rate".into(), "0.1".into()), ("tol".into(), "0".into())];
    let (logreg_iter, _) = iterate("logreg", lr, &lp, logreg_start(a.cols as usize), inner, a.repeats.max(5), 0)?;
    let ready = ready_time(inner)?;
    Ok(Ours { kmeans_iter, kmeans_iter_1, logreg_iter, ready, centers_2 })
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

/// Fails early, in one line, when `python` cannot run or lacks a package the script needs.
fn check_python(python: &Path) -> Result<()> {
    let out =
        Command::new(python).args(["-c", "import numpy, sklearn, threadpoolctl"]).output().with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        bail!(
            "python '{}' cannot import numpy, scikit-learn and threadpoolctl: {last} (try --setup-python DIR)",
            python.display()
        );
    }
    Ok(())
}

fn run_python(python: &Path, dir: &Path, threads: u64, repeats: u64) -> Result<Value> {
    let script = dir.join("bench.py");
    std::fs::write(&script, BENCH_PY)?;
    let n = threads.to_string();
    eprintln!("timing scikit-learn and numpy with {} ({threads} threads)", python.display());
    let out = Command::new(python)
        .arg(&script)
        .arg(dir)
        .arg(&n)
        .arg(repeats.to_string())
        .envs(
            ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"].map(|v| (v, n.as_str())),
        )
        .output()
        .with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
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
    Ok(median(&mut xs))
}

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
    let km = GenSpec { kind: Kind::Kmeans, rows: n, cols: d, k: 1, seed: a.seed }.rows();
    let lr = GenSpec { kind: Kind::Logreg, rows: n, cols: d, k: 0, seed: a.seed }.rows();
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
    let theirs = match &python {
        Some(py) => Some(run_python(py, dir.path(), a.inner, a.repeats)?),
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
    if a.inner > 1 {
        println!(
            "{:<44} {:>10} {:>12} {:>8.3} {:>8}",
            format!("k-means speed-up 1 -> {} inner workers", a.inner),
            ms(ours.kmeans_iter),
            ms(ours.kmeans_iter_1),
            ours.kmeans_iter_1 / ours.kmeans_iter,
            ">= 1.8"
        );
    }
    println!(
        "{:<44} {:>10} {:>12} {:>8} {:>8}",
        format!("precompiled kernel + {} instances ready", a.inner),
        ms(ours.ready),
        "-",
        "-",
        "<= 50ms"
    );
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
