//! Times one native `step` of the k-means and logistic-regression shards on one thread
//! (median of several), with no dependencies, so that the same source can be timed cheaply
//! for different native targets, e.g. the portable baseline against this CPU:
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/km-base cargo run --release -p ifp-kernel-math --example step_timing
//! RUSTFLAGS=-Ctarget-cpu=native CARGO_TARGET_DIR=/tmp/km-native cargo run --release -p ifp-kernel-math --example step_timing
//! ```
//!
//! Arguments: `[rows] [cols] [k] [repeats]` (default 1000000 32 16 7).

use std::time::Instant;

use ifp_kernel_math::rng::SplitMix64;
use ifp_kernel_math::{Algorithm, DataShape, KMeans, LogReg, Shard};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("numeric argument")).collect();
    let (n, d, k, repeats) = (
        a.first().copied().unwrap_or(1_000_000),
        a.get(1).copied().unwrap_or(32),
        a.get(2).copied().unwrap_or(16),
        a.get(3).copied().unwrap_or(7),
    );
    let mut rng = SplitMix64::new(1);
    let x: Vec<f32> = (0..n * d).map(|_| (rng.next_f64() * 20.0 - 10.0) as f32).collect();
    let y: Vec<f32> = (0..n).map(|_| (rng.next_f64() < 0.5) as u8 as f32).collect();

    let shape = DataShape { cols: d as u32, has_labels: false, total_rows: n as u64 };
    let mut s = KMeans::new_shard(shape);
    s.append(&x, &[]).unwrap();
    // Lloyd (algorithm code 0): every step scores every row.
    let c: Vec<f64> = x[..k * d].iter().map(|&v| v as f64).chain([0.0]).collect();
    let km = time(repeats, || {
        std::hint::black_box(s.step(&c).unwrap());
    });
    drop(s);

    let shape = DataShape { cols: d as u32, has_labels: true, total_rows: n as u64 };
    let mut s = LogReg::new_shard(shape);
    s.append(&x, &y).unwrap();
    let mut m: Vec<f64> = (0..d).map(|j| 0.001 * (j as f64 - d as f64 / 2.0)).collect();
    m.extend([0.1, f64::NAN]);
    let lr = time(repeats, || {
        std::hint::black_box(s.step(&m).unwrap());
    });
    println!("native step, {n} x {d}, one thread: kmeans (k = {k}) {km:.2} ms, logreg {lr:.2} ms");
    drop(s);

    // Unclustered data (standard normal rows, the first k rows as centroids): the bounds
    // settle few rows while the centroids move far. A Lloyd and a default (Hamerly) shard step
    // the same models side by side for 12 steps, `runs` times; each step is timed on both, and
    // the steps Hamerly scans in full (after the first) give the full-scan / Lloyd ratio.
    let mut rng = SplitMix64::new(3);
    let normal = |r: &mut SplitMix64| {
        let (u, v) = (r.next_f64().max(1e-300), r.next_f64());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let x: Vec<f32> = (0..n * d).map(|_| normal(&mut rng)).collect();
    let shape = DataShape { cols: d as u32, has_labels: false, total_rows: n as u64 };
    let params = vec![("k".to_string(), k.to_string())];
    let (mut total, mut full_ratios) = ([0.0f64; 2], Vec::new());
    let runs = repeats.div_ceil(3);
    for run in 0..runs {
        let new = || {
            let mut s = KMeans::new_shard(shape);
            s.append(&x, &[]).unwrap();
            s
        };
        let (mut lloyd, mut ham) = (new(), new());
        let mut m: Vec<f64> = x[..k * d].iter().map(|&v| v as f64).chain([1.0]).collect();
        let (mut step_ms, mut scored) = (Vec::new(), Vec::new());
        for it in 0..12 {
            let t = Instant::now();
            let p = ham.step(&m).unwrap();
            let h = t.elapsed().as_secs_f64() * 1e3;
            let ml: Vec<f64> = m[..k * d].iter().copied().chain([0.0]).collect();
            let t = Instant::now();
            std::hint::black_box(lloyd.step(&ml).unwrap());
            let l = t.elapsed().as_secs_f64() * 1e3;
            (total[0], total[1]) = (total[0] + l, total[1] + h);
            if it > 0 && ham.scanned_all() {
                full_ratios.push(h / l);
            }
            step_ms.push([l.round(), h.round()]);
            scored.push(ham.scored_rows());
            m = KMeans::update(&params, shape, &m, &p).unwrap().model;
        }
        if run == 0 {
            println!("native 12 steps on unclustered data from the first rows: rows Hamerly scored per step {scored:?}, ms per step [Lloyd, Hamerly] {step_ms:?}");
        }
    }
    full_ratios.sort_by(f64::total_cmp);
    println!(
        "  {runs} runs: Lloyd {:.1} ms, Hamerly {:.1} ms per 12 steps; Hamerly's {} full scans after the first step / Lloyd's step: median {:.3}",
        total[0] / runs as f64,
        total[1] / runs as f64,
        full_ratios.len(),
        full_ratios.get(full_ratios.len() / 2).copied().unwrap_or(f64::NAN)
    );

    // k-means to convergence on k blobs (centres uniform in ±10, unit-variance noise) from
    // k-means++ centroids picked from the first 10,000 rows (as `ifp bench` does) and the
    // first k rows, Lloyd against Hamerly: time, iterations and rows scored per step.
    let mut rng = SplitMix64::new(2);
    let centres: Vec<f64> = (0..k * d).map(|_| rng.next_f64() * 20.0 - 10.0).collect();
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = rng.below(k as u64) as usize;
        x.extend((0..d).map(|i| (centres[c * d + i] + (rng.next_f64() + rng.next_f64() - 1.0) * 2.449) as f32));
    }
    let shape = DataShape { cols: d as u32, has_labels: false, total_rows: n as u64 };
    let params = vec![("k".to_string(), k.to_string())];
    let ns = n.min(10_000);
    let sample_shape = DataShape { cols: d as u32, has_labels: false, total_rows: ns as u64 };
    let kpp = KMeans::init(&params, sample_shape, &x[..ns * d], &[], &[]).unwrap();
    let first: Vec<f64> = x[..k * d].iter().map(|&v| v as f64).collect();
    for (init, start) in [("kmeans++", &kpp[..k * d]), ("first rows", &first[..])] {
        for (name, code) in [("lloyd", 0.0), ("hamerly", 1.0)] {
            let mut s = KMeans::new_shard(shape);
            s.append(&x, &[]).unwrap();
            let mut m: Vec<f64> = start.iter().copied().chain([code]).collect();
            let (t, mut scored, mut step_ms) = (Instant::now(), Vec::new(), Vec::new());
            for _ in 0..300 {
                let ts = Instant::now();
                let p = s.step(&m).unwrap();
                step_ms.push((ts.elapsed().as_secs_f64() * 1e3).round());
                scored.push(s.scored_rows());
                let u = KMeans::update(&params, shape, &m, &p).unwrap();
                m = u.model;
                if u.converged {
                    break;
                }
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "native converge from {init}, {name}: {ms:.1} ms, {} iterations, rows scored per step {scored:?}, ms per step {step_ms:?}",
                scored.len()
            );
        }
    }
}
