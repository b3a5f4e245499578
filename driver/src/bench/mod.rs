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
//! - runs k-means to convergence on `--k` Gaussian blobs (a second data set) from each of the
//!   same initial centroids (`--converge-init`: our k-means++ `init` on the first 10,000 rows,
//!   and the first k rows): ours with Hamerly's bounds and with plain Lloyd, scikit-learn's
//!   `lloyd` and `elkan` (`tol = 1e-4`, `max_iter = 300`), reporting times, iterations and how
//!   far the final centroids are apart, against how far scikit-learn's float32 and float64
//!   runs are; ours alternate Hamerly and Lloyd runs and time every iteration, and report
//!   Hamerly's worst iteration against Lloyd's same one (target ≤ 1.05x), here and over 20
//!   iterations on the one blob, where the bounds help least;
//! - times the strongest CPU peers when the interpreter has them (`peers-requirements.txt`,
//!   installed by `--setup-python`): scikit-learn-intelex (oneDAL) per Lloyd iteration and to
//!   convergence, faiss-cpu per full Lloyd pass (no subsampling) and for as many iterations as
//!   our Lloyd needed;
//! - prints the CPU model and its SIMD extensions first (ratios compare within one machine);
//! - measures the peak resident memory of a child `ifp run kmeans` on the blobs (its
//!   `ru_maxrss`, read through Python's `resource.getrusage(RUSAGE_CHILDREN)`);
//! - prints medians and ratios (ours / theirs), the BLAS and thread pools Python used, and
//!   how far our centroids after two iterations are from scikit-learn's.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;

use crate::gen::{GenSpec, Kind};
use crate::output;

mod measure;
mod python;

use measure::*;
use python::*;

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
    /// Initial centroids of the runs to convergence, one run each: `kmeans++` (our init on
    /// the first 10,000 rows, seed 0) and `first` (the first k rows, so that Lloyd takes more
    /// iterations).
    #[arg(long, default_value = "kmeans++,first", value_delimiter = ',', value_parser = ["kmeans++", "first"])]
    pub converge_init: Vec<String>,
    /// Runs to convergence timed per algorithm (ours and scikit-learn's); medians reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub converge_repeats: u64,
    /// Report each measure's fastest repeat instead of the median, on both sides: on a shared
    /// machine a neighbour's load only ever slows a repeat down, so the fastest is the least
    /// disturbed (use more repeats with it).
    #[arg(long)]
    pub fastest: bool,
}

/// Above this spread between the repeats of one measure, `ifp bench` says the machine was busy.
const BUSY_SPREAD: f64 = 1.25;

pub fn bench_cmd(a: BenchArgs) -> Result<()> {
    measure::FASTEST.store(a.fastest, std::sync::atomic::Ordering::Relaxed);
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
    let inner = a.inner as usize;
    // One blob is where Hamerly's bounds help least: per iteration against Lloyd's.
    eprintln!("Hamerly and Lloyd per iteration on the one blob ({ONE_BLOB_ITERATIONS} iterations from the first rows, {inner} inner workers)");
    let one_blob = Stop { tol: "0", max_iter: ONE_BLOB_ITERATIONS };
    let one_blob = hamerly_and_lloyd("on one blob", &km, a.k, &init, one_blob, inner, a.converge_repeats)?;
    drop((km, lr));

    eprintln!("generating {n} x {d} rows of {} Gaussian blobs (seed {}) for the runs to convergence", a.k, a.seed + 1);
    let blobs = Arc::new(GenSpec { kind: Kind::Kmeans, rows: n, cols: d, k: a.k, seed: a.seed + 1 }.rows());
    let blobs_x = dir.path().join("blobs_x.npy");
    if python.is_some() {
        output::write_npy_f32(&blobs_x, n, d, blobs.features.iter().copied())?;
    }
    // Per start: its name, our Hamerly and Lloyd runs, and the file of its centroids.
    let mut runs = Vec::new();
    for name in &a.converge_init {
        let start = converge_start(&blobs, a.k, name)?;
        let file = dir.path().join(format!("blobs_init_{name}.npy"));
        output::write_npy_f32(&file, a.k, d, start.iter().map(|&v| v as f32))?;
        eprintln!(
            "our k-means to convergence from {name} centroids: Hamerly and Lloyd, alternately ({inner} inner workers)"
        );
        let what = format!("to convergence from {name}");
        let (ham, lloyd) = hamerly_and_lloyd(&what, &blobs, a.k, &start, TO_CONVERGENCE, inner, a.converge_repeats)?;
        runs.push((name.clone(), ham, lloyd, file));
    }
    drop(blobs);

    let theirs = match &python {
        Some(py) => {
            let starts: Vec<(String, u32)> = runs.iter().map(|r| (r.0.clone(), r.2.iterations)).collect();
            Some(run_python(py, dir.path(), a.inner, a.repeats, a.converge_repeats, &starts)?)
        }
        None => None,
    };
    let rss = match &python {
        Some(py) => {
            eprintln!("peak memory of 'ifp run kmeans' on the blobs ({} inner workers)", a.inner);
            Some(peak_rss(py, &blobs_x, &runs[0].3, a.inner)?)
        }
        None => None,
    };

    let ms = |s: f64| format!("{:.2}", s * 1e3);
    println!("{}", cpu_line());
    println!(
        "ifp bench: {n} x {d} f32, k = {}, {} inner workers / threads, {} of {} (ifp {})",
        a.k,
        a.inner,
        if a.fastest { "fastest" } else { "medians" },
        a.repeats,
        env!("CARGO_PKG_VERSION")
    );
    println!("{:<64} {:>10} {:>12} {:>8} {:>8}", "measure", "ours ms", "theirs ms", "ratio", "target");
    let row = |what: &str, o: f64, t: Option<f64>, target: &str| match t {
        Some(t) => println!("{what:<64} {:>10} {:>12} {:>8.3} {target:>8}", ms(o), ms(t), o / t),
        None => println!("{what:<64} {:>10} {:>12} {:>8} {target:>8}", ms(o), "-", "-"),
    };
    let (sk, np) = match &theirs {
        Some(v) => (Some(iter_secs(v, "kmeans_iter")?), Some(secs(v, "logreg_step_s")?)),
        None => (None, None),
    };
    row("k-means Lloyd iteration vs scikit-learn", ours.kmeans_iter, sk, "<= 1.0");
    for (peer, label, target) in
        [("sklearnex", "scikit-learn-intelex", "<= 1.5"), ("faiss", "faiss (full Lloyd pass)", "-")]
    {
        if let Some(t) = theirs.as_ref().filter(|v| v["peers"].get(peer).is_some()) {
            let t = iter_secs(t, &format!("kmeans_iter_{peer}"))?;
            row(&format!("k-means Lloyd iteration vs {label}"), ours.kmeans_iter, Some(t), target);
        }
    }
    row("logreg iteration vs numpy gradient step", ours.logreg_iter, np, "<= 0.4");
    let speedup = |what: &str, many: f64, one: f64| {
        if a.inner > 1 {
            let name = format!("{what} speed-up 1 -> {} inner workers", a.inner);
            println!("{name:<64} {:>10} {:>12} {:>8.3} {:>8}", ms(many), ms(one), one / many, ">= 1.8");
        }
    };
    speedup("k-means", ours.kmeans_iter, ours.kmeans_iter_1);
    row("k-means step, 1 wasm worker vs native (1 thread)", ours.kmeans_iter_1, Some(ours.kmeans_native), "<= 1.0");
    row("logreg step, 1 wasm worker vs native (1 thread)", ours.logreg_iter_1, Some(ours.logreg_native), "<= 1.0");
    speedup("logreg", ours.logreg_iter, ours.logreg_iter_1);
    println!(
        "{:<64} {:>10} {:>12} {:>8} {:>8}",
        format!("precompiled kernel + {} instances ready", a.inner),
        ms(ours.ready),
        "-",
        "-",
        "<= 50ms"
    );
    let worst = |what: &str, h: &Converged, l: &Converged| {
        if let Some((i, hs, ls)) = costliest_iteration(&h.steps, &l.steps) {
            row(&format!("{what}: worst iteration ({}), Hamerly vs Lloyd", i + 1), hs, Some(ls), "<= 1.05");
        }
    };
    worst(&format!("one blob, {ONE_BLOB_ITERATIONS} it."), &one_blob.0, &one_blob.1);
    row(
        &format!("one blob, {ONE_BLOB_ITERATIONS} it.: Hamerly vs Lloyd, whole run"),
        one_blob.0.secs,
        Some(one_blob.1.secs),
        "-",
    );
    for (start, ham, lloyd, _) in &runs {
        let theirs = match &theirs {
            Some(v) => peer_runs(v, start)?,
            None => Vec::new(),
        };
        let time_of = |name: &str| theirs.iter().find(|p| p.name == name).map(|p| p.secs);
        let best = theirs.iter().min_by(|x, y| x.secs.total_cmp(&y.secs));
        let label = |what: &str| format!("converge from {start}: {what}");
        match best {
            Some(b) => row(&label(&format!("Hamerly vs best peer ({})", b.name)), ham.secs, Some(b.secs), "<= 0.5"),
            None => row(&label("Hamerly (no peers)"), ham.secs, None, "<= 0.5"),
        }
        row(&label("Lloyd vs scikit-learn lloyd"), lloyd.secs, time_of("lloyd"), "-");
        row(&label("Hamerly vs our Lloyd"), ham.secs, Some(lloyd.secs), "-");
        worst(&format!("converge from {start}"), ham, lloyd);
    }
    let data_bytes = n * d * 4;
    let rss_target = data_bytes as f64 * 1.5 + 64.0 * 1048576.0;
    match rss {
        Some(b) => println!(
            "{:<64} {:>10} {:>12} {:>8.3} {:>8}",
            "peak RSS of 'ifp run kmeans' (MiB)",
            format!("{:.1}", b as f64 / 1048576.0),
            format!("{:.1}", rss_target / 1048576.0),
            b as f64 / rss_target,
            "<= 1.0"
        ),
        None => println!("{:<64} {:>10}", "peak RSS of 'ifp run kmeans' (MiB)", "- (needs python)"),
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
        "{}",
        per_iteration_line(
            &format!("one blob, first rows, {ONE_BLOB_ITERATIONS} iterations"),
            &one_blob.0,
            &one_blob.1
        )
    );
    for (start, ham, lloyd, _) in &runs {
        println!();
        println!(
            "converge ({} blobs, tol {CONVERGE_TOL}, from the same {start} centroids): iterations ours Hamerly {}{}, ours Lloyd {}{}",
            a.k,
            ham.iterations,
            if ham.converged { "" } else { " (not converged)" },
            lloyd.iterations,
            if lloyd.converged { "" } else { " (not converged)" },
        );
        let same = ham.centroids.len() == lloyd.centroids.len()
            && ham.centroids.iter().zip(&lloyd.centroids).all(|(a, b)| a.to_bits() == b.to_bits());
        println!("{}", per_iteration_line(&format!("from {start}"), ham, lloyd));
        println!(
            "check: Hamerly's final centroids are {} Lloyd's",
            if same { "bit-identical to" } else { "DIFFERENT from" }
        );
        let theirs_json = theirs.as_ref();
        let theirs = match &theirs {
            Some(v) => peer_runs(v, start)?,
            None => Vec::new(),
        };
        // Close means as close as scikit-learn's own float32 and float64 runs are.
        let f64_centers: Vec<f64> = theirs_json
            .and_then(|v| v[format!("converge_{start}_f64_centers")].as_array())
            .map(|c| c.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let lloyd32 = theirs.iter().find(|p| p.name == "lloyd");
        let yardstick = match lloyd32 {
            Some(l) if l.centers.len() == f64_centers.len() && !f64_centers.is_empty() => {
                let y = max_rel_diff(&l.centers, &f64_centers);
                println!(
                    "check: scikit-learn's float32 and float64 runs differ by at most {y:.1e} relative (the yardstick)"
                );
                y.max(1e-7)
            }
            _ => 1e-6,
        };
        let d64 = max_rel_diff(&ham.centroids, &f64_centers);
        if f64_centers.len() == ham.centroids.len() {
            let verdict = if d64 <= yardstick { "ok" } else { "FARTHER than the yardstick" };
            println!("check: ours differ from scikit-learn's float64 run by at most {d64:.1e} relative ({verdict})");
        }
        for p in theirs.iter().filter(|p| p.centers.len() == ham.centroids.len()) {
            let diff = max_rel_diff(&ham.centroids, &p.centers);
            println!(
                "check: {}: {} iterations, {} ms; final centroids differ from ours by at most {diff:.1e} relative",
                p.label(),
                p.iterations,
                ms(p.secs),
            );
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
        let peers = v["peers"].as_object().map(|p| {
            p.iter().map(|(name, version)| format!("{name} {}", version.as_str().unwrap_or("?"))).collect::<Vec<_>>()
        });
        match peers.filter(|p| !p.is_empty()) {
            Some(p) => println!("CPU peers: {}", p.join(", ")),
            None => println!("CPU peers: none installed (faiss-cpu, scikit-learn-intelex: see --setup-python)"),
        }
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

/// Iterations of the one-blob runs, per-iteration Hamerly against Lloyd (tol 0): enough for
/// several of the cycles in which Hamerly rebuilds its bounds there (every 4-5 steps).
const ONE_BLOB_ITERATIONS: u32 = 20;

/// `per iteration, Hamerly / Lloyd (WHAT): r1 r2 …`, each Hamerly step over Lloyd's same one.
fn per_iteration_line(what: &str, ham: &Converged, lloyd: &Converged) -> String {
    let ratios: Vec<String> = ham.steps.iter().zip(&lloyd.steps).map(|(h, l)| format!("{:.2}", h / l)).collect();
    format!("per iteration, Hamerly / Lloyd ({what}): {}", ratios.join(" "))
}

/// The CPU model and the SIMD extensions this process can use, printed with every table:
/// ratios only compare within one machine type (AVX2 and AVX-512 hosts differ).
fn cpu_line() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    #[allow(unused_mut)]
    let mut simd: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! has {
            ($($f:tt),*) => { $(if std::arch::is_x86_feature_detected!($f) { simd.push($f); })* };
        }
        has!("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16");
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            simd.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("sve") {
            simd.push("sve");
        }
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("CPU: {model} ({cpus} available), SIMD: {}", if simd.is_empty() { "-".into() } else { simd.join(" ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_slowest_over_fastest_and_the_widest_is_kept() {
        let _timing = measure::timing_test_lock();
        assert_eq!(spread(&[2.0, 3.0, 1.5]), 2.0);
        assert_eq!(spread(&[4.0]), 1.0);
        assert_eq!(spread(&[]), 1.0);
        assert_eq!(timed("a", &mut [1.0, 1.1, 1.2]), 1.1);
        assert_eq!(timed("b", &mut [3.0, 1.0, 2.0, 2.5]), 2.25);
        assert_eq!(timed("c", &mut [1.0, 1.5]), 1.25);
        // `--fastest`: the fastest repeat instead (the only test that sets it).
        // An iteration from fits of 12 and 2 iterations: the median difference, or with
        // `--fastest` the fastest 12-iteration fit less the fastest 2-iteration one (the
        // smallest difference, from the repeat with the slow 2-iteration fit, would be 0.2).
        let fits =
            serde_json::json!({"k_s": [0.4, 0.2, 0.3], "k_fits": {"t2": [1.0, 3.0, 0.9], "t12": [5.0, 5.0, 4.5]}});
        assert_eq!(iter_secs(&fits, "k").unwrap(), 0.3);
        FASTEST.store(true, std::sync::atomic::Ordering::Relaxed);
        let fastest = timed("d", &mut [3.0, 1.5, 2.0, 2.5]);
        let fastest_iter = iter_secs(&fits, "k");
        FASTEST.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(fastest, 1.5);
        assert!((fastest_iter.unwrap() - 0.36).abs() < 1e-12);
        let (w, what) = WIDEST.lock().unwrap().clone();
        assert_eq!((w, what.as_str()), (3.0, "b"));
    }

    #[test]
    fn per_iteration_times_and_the_costliest_hamerly_iteration() {
        let _timing = measure::timing_test_lock();
        // Three runs of three iterations, one cut short: each iteration's median over the
        // runs that reached it.
        let runs = vec![vec![1.0, 5.0, 2.0], vec![3.0, 4.0, 9.0], vec![2.0, 6.0]];
        assert_eq!(per_iteration(&runs), vec![2.0, 5.0, 5.5]);
        FASTEST.store(true, std::sync::atomic::Ordering::Relaxed);
        let fastest = per_iteration(&runs);
        FASTEST.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(fastest, vec![1.0, 4.0, 2.0]);
        assert_eq!(per_iteration(&[]), Vec::<f64>::new());
        // The largest ratio wins, not the largest time or difference: 1.2/1.0 over 3.0/2.8.
        assert_eq!(costliest_iteration(&[0.5, 1.2, 3.0], &[1.0, 1.0, 2.8]), Some((1, 1.2, 1.0)));
        assert_eq!(costliest_iteration(&[], &[]), None);
        let ham = Converged { secs: 0.0, steps: vec![1.0, 0.5], iterations: 2, converged: true, centroids: vec![] };
        let lloyd = Converged { steps: vec![0.8, 1.0], centroids: vec![], ..ham };
        assert_eq!(per_iteration_line("x", &ham, &lloyd), "per iteration, Hamerly / Lloyd (x): 1.25 0.50");
    }
}
