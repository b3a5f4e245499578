//! Our side of `ifp bench`: iterations through the wasm kernels and the native build, runs
//! to convergence, and the medians and spreads of repeated timings.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};

use ifp_host::data::{Data, Rows};
use ifp_host::function::{Function, JobSpec};
use ifp_host::kernel::{DataShape, Sample};
use ifp_host::{KernelEngine, Param, Sandbox};

use super::BenchArgs;

/// `max_iter` of every run to convergence (scikit-learn's default).
pub(super) const CONVERGE_MAX_ITER: u32 = 300;
/// `tol` of every run to convergence (scikit-learn's default).
pub(super) const CONVERGE_TOL: &str = "1e-4";

/// One of our timed k-means runs.
pub(super) struct Converged {
    /// Median seconds over the runs (steps, merges and updates; loading excluded).
    pub(super) secs: f64,
    /// Per iteration, its median seconds over the runs (with `--fastest`, its fastest).
    pub(super) steps: Vec<f64>,
    pub(super) iterations: u32,
    pub(super) converged: bool,
    pub(super) centroids: Vec<f64>,
}

/// Where a timed run stops: when the update says it converged at `tol`, or after `max_iter`
/// iterations.
#[derive(Clone, Copy)]
pub(super) struct Stop {
    pub(super) tol: &'static str,
    pub(super) max_iter: u32,
}

/// To convergence as scikit-learn's defaults have it.
pub(super) const TO_CONVERGENCE: Stop = Stop { tol: CONVERGE_TOL, max_iter: CONVERGE_MAX_ITER };

/// Runs k-means from `start` (centroids) until `stop` with Hamerly's bounds and with Lloyd's
/// plain step, `repeats` times each, alternately (so that a busy neighbour slows both alike:
/// the per-iteration ratios compare steps timed a second apart), each run on a fresh
/// function (so Hamerly starts without bounds as it would in a new job). `what` names the
/// runs in the spread report.
pub(super) fn hamerly_and_lloyd(
    what: &str,
    rows: &Arc<Rows>,
    k: u64,
    start: &[f64],
    stop: Stop,
    inner: usize,
    repeats: u64,
) -> Result<(Converged, Converged)> {
    let engine = KernelEngine::builtin("kmeans", Sandbox::default())?;
    let shape = DataShape { cols: rows.cols as u32, has_labels: false, total_rows: rows.len() as u64 };
    let data = Data::Memory(rows.clone());
    let algorithms = ["hamerly", "lloyd"];
    // Per algorithm: each run's per-iteration seconds, and the last run's result.
    let mut steps: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    let mut last = [None, None];
    for _ in 0..repeats {
        for (a, algorithm) in algorithms.iter().enumerate() {
            let params: Vec<Param> = vec![
                ("k".into(), k.to_string()),
                ("tol".into(), stop.tol.into()),
                ("algorithm".into(), (*algorithm).into()),
            ];
            let spec = Arc::new(JobSpec {
                job: "bench-converge".into(),
                params: params.clone(),
                shape,
                max_iter: stop.max_iter,
                functions: 1,
                staleness: 0,
            });
            let mut f = Function::load(&engine, spec, 0, inner as u32, &data, 0..shape.total_rows, None)?;
            let none = Sample { features: Vec::new(), labels: Vec::new() };
            let mut model = f.instance().init(&params, shape, &none, start)?;
            let mut times = Vec::new();
            let mut done = false;
            while (times.len() as u32) < stop.max_iter && !done {
                let t = Instant::now();
                let total = f.step(&model)?;
                let u = f.instance().update(&params, shape, &model, &total)?;
                times.push(t.elapsed().as_secs_f64());
                model = u.model;
                done = u.converged;
            }
            model.truncate(start.len());
            last[a] = Some((times.len() as u32, done, model));
            steps[a].push(times);
        }
    }
    let [ham, lloyd] = [0, 1].map(|a| {
        let (iterations, converged, centroids) = last[a].take().expect("at least one run");
        let mut totals: Vec<f64> = steps[a].iter().map(|run| run.iter().sum()).collect();
        Converged {
            secs: timed(&format!("our {} {what}", algorithms[a]), &mut totals),
            steps: per_iteration(&steps[a]),
            iterations,
            converged,
            centroids,
        }
    });
    Ok((ham, lloyd))
}

/// Per iteration, the median (with [`FASTEST`], the fastest) of its times over the runs that
/// got that far (runs of one algorithm from one start take the same iterations).
pub(super) fn per_iteration(runs: &[Vec<f64>]) -> Vec<f64> {
    let longest = runs.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|i| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(i).copied()).collect();
            pick(&mut v)
        })
        .collect()
}

/// The iteration where Hamerly's step costs most against Lloyd's same iteration (the issue's
/// "never slower than Lloyd by more than 5 % per iteration"): its index and both times.
pub(super) fn costliest_iteration(hamerly: &[f64], lloyd: &[f64]) -> Option<(usize, f64, f64)> {
    hamerly
        .iter()
        .zip(lloyd)
        .enumerate()
        .filter(|(_, (_, &l))| l > 0.0)
        .max_by(|(_, (h1, l1)), (_, (h2, l2))| (*h1 / *l1).total_cmp(&(*h2 / *l2)))
        .map(|(i, (&h, &l))| (i, h, l))
}

/// The initial centroids `init` (our `init`, seed 0) from the first 10,000 rows of `rows`.
pub(super) fn converge_start(rows: &Rows, k: u64, init: &str) -> Result<Vec<f64>> {
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
pub(super) fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}

/// The widest spread (slowest / fastest repeat) of any one timed measure so far, and its name.
pub(super) static WIDEST: std::sync::Mutex<(f64, String)> = std::sync::Mutex::new((1.0, String::new()));

/// Slowest over fastest of `v` (1 for fewer than two values).
pub(super) fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if v.len() < 2 || lo <= 0.0 {
        1.0
    } else {
        hi / lo
    }
}

/// Whether [`timed`] reports the fastest repeat instead of the median (`ifp bench --fastest`).
pub(super) static FASTEST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Held by the tests that call [`timed`]: [`FASTEST`] and [`WIDEST`] are process-wide, and a test
/// setting `FASTEST` while another read it made the reader take the fastest repeat instead of
/// the median (a flaky failure of `peer_runs_take_the_median_of_each_peer`).
#[cfg(test)]
pub(super) fn timing_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The median (with [`FASTEST`] set, the fastest) of the repeats of measure `what`, noting
/// their spread (see [`WIDEST`]): on a shared machine a busy neighbour shows up as repeats far
/// apart.
pub(super) fn timed(what: &str, v: &mut [f64]) -> f64 {
    let s = spread(v);
    let mut w = WIDEST.lock().unwrap_or_else(|e| e.into_inner());
    if s > w.0 {
        *w = (s, what.to_string());
    }
    pick(v)
}

/// The median of `v`, or with [`FASTEST`] set its smallest value.
fn pick(v: &mut [f64]) -> f64 {
    if FASTEST.load(std::sync::atomic::Ordering::Relaxed) {
        v.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        median(v)
    }
}

pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Our timings, in seconds per iteration (each a median).
pub(super) struct Ours {
    pub(super) kmeans_iter: f64,
    pub(super) kmeans_iter_1: f64,
    pub(super) logreg_iter: f64,
    pub(super) ready: f64,
    /// One native (this binary's build of the same source) step on one thread.
    pub(super) kmeans_native: f64,
    pub(super) logreg_native: f64,
    /// One wasm step of the logistic regression with one inner worker.
    pub(super) logreg_iter_1: f64,
    /// Centroids after two iterations from the initial ones.
    pub(super) centers_2: Vec<f64>,
}

/// Runs `1 + repeats` iterations of `kernel` with `inner` inner workers from `model`; returns
/// the median time of the last `repeats` and the model after `keep_after` iterations.
#[allow(clippy::too_many_arguments)] // four calls, each one line that reads as the row it measures
pub(super) fn iterate(
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
    let spec = Arc::new(JobSpec {
        job: "bench".into(),
        params: params.to_vec(),
        shape,
        max_iter: u32::MAX,
        functions: 1,
        staleness: 0,
    });
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
pub(super) fn ready_time(inner: usize) -> Result<f64> {
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

pub(super) fn ifp_kernels_kmeans() -> Result<&'static [u8]> {
    ifp_kernels::builtin("kmeans").context("the kmeans kernel is not builtin")
}

pub(super) fn run_ours(a: &BenchArgs, km: &Arc<Rows>, init: &[f64], lr: &Arc<Rows>) -> Result<Ours> {
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
pub(super) fn native_step<A: ifp_kernel_math::Algorithm>(
    what: &str,
    rows: &Rows,
    model: &[f64],
    repeats: u64,
) -> Result<f64> {
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
pub(super) fn logreg_start(d: usize) -> Vec<f64> {
    let mut m: Vec<f64> = (0..d).map(|j| (0.01 * (j as f64 - d as f64 / 2.0)) as f32 as f64).collect();
    m.extend([0.1f32 as f64, f64::NAN]);
    m
}
