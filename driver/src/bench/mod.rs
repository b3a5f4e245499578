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
    /// Initial centroids of the runs to convergence: `kmeans++` (our init on the first 10,000
    /// rows, seed 0) or `first` (the first k rows, so that Lloyd takes more iterations).
    #[arg(long, default_value = "kmeans++", value_parser = ["kmeans++", "first"])]
    pub converge_init: String,
    /// Runs to convergence timed per algorithm (ours and scikit-learn's); medians reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub converge_repeats: u64,
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
