//! Steps a Lloyd and a default (Hamerly) k-means shard side by side on the rows of a `.npy`
//! file (float32, rows × columns), natively on one thread, from the same models until Lloyd
//! converges: per step the time of each (best of `repeats` runs) and what Hamerly did (rows
//! scored, full scan or not), so that a change to the bounds can be judged step by step on
//! the data `ifp bench` converges on (`ifp gen kmeans --k 16 --seed 2 ...`).
//!
//! ```sh
//! cargo run --release -p ifp-kernel-math --example npy_steps -- blobs.npy 16 first 3
//! ```
//!
//! Arguments: `FILE K INIT [REPEATS]`, INIT `first` (the first K rows) or `kmeans++` (our
//! `init` on the first 10,000 rows).

use std::time::Instant;

use ifp_kernel_math::{Algorithm, DataShape, KMeans, Shard};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [file, k, init] = [0, 1, 2].map(|i| a.get(i).cloned().expect("arguments: FILE K INIT [REPEATS]"));
    let k: usize = k.parse().expect("K: a number");
    let repeats: usize = a.get(3).map_or(3, |r| r.parse().expect("REPEATS: a number"));
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(&file).expect("FILE: a readable .npy file")))
            .expect("FILE: .npy");
    let shape = npy.shape().to_vec();
    let x: Vec<f32> = npy.into_vec().expect("FILE: float32 rows");
    let (n, d) = (shape[0] as usize, shape[1] as usize);
    let shape = DataShape { cols: d as u32, has_labels: false, total_rows: n as u64 };
    let params = vec![("k".to_string(), k.to_string()), ("tol".to_string(), "1e-4".to_string())];
    let start: Vec<f64> = match init.as_str() {
        "first" => x[..k * d].iter().map(|&v| v as f64).collect(),
        _ => {
            let ns = n.min(10_000);
            let s = DataShape { cols: d as u32, has_labels: false, total_rows: ns as u64 };
            let p = vec![("k".to_string(), k.to_string()), ("init".to_string(), init.clone())];
            KMeans::init(&p, s, &x[..ns * d], &[], &[]).expect("INIT: first, kmeans++ or random")[..k * d].to_vec()
        }
    };
    let mut best: Vec<[f64; 2]> = Vec::new();
    let mut what: Vec<String> = Vec::new();
    for _ in 0..repeats {
        let new = || {
            let mut s = KMeans::new_shard(shape);
            s.append(&x, &[]).unwrap();
            s
        };
        let (mut lloyd, mut ham) = (new(), new());
        let mut m = start.clone();
        what.clear();
        for it in 0..300 {
            let ml: Vec<f64> = m.iter().copied().chain([0.0]).collect();
            let mh: Vec<f64> = m.iter().copied().chain([1.0]).collect();
            let t = Instant::now();
            let p = lloyd.step(&ml).unwrap();
            let l = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let ph = ham.step(&mh).unwrap();
            let h = t.elapsed().as_secs_f64() * 1e3;
            assert!(p.iter().zip(&ph).all(|(a, b)| a.to_bits() == b.to_bits()), "partials differ at step {it}");
            if best.len() <= it {
                best.push([f64::INFINITY; 2]);
            }
            best[it] = [best[it][0].min(l), best[it][1].min(h)];
            what.push(format!("{}{}", ham.scored_rows(), if ham.scanned_all() { " full" } else { "" }));
            let u = KMeans::update(&params, shape, &ml, &p).unwrap();
            m = u.model[..k * d].to_vec();
            if u.converged {
                break;
            }
        }
    }
    let steps = what.len();
    println!("{file}: {n} x {d}, k = {k}, from {init}: {steps} steps, native, one thread, best of {repeats}");
    println!("step  lloyd ms  hamerly ms  ratio  hamerly scored");
    for (it, w) in what.iter().enumerate() {
        let [l, h] = best[it];
        println!("{it:>4}  {l:>8.1}  {h:>10.1}  {:>5.2}  {w}", h / l);
    }
    let (l, h) = best[..steps].iter().fold((0.0, 0.0), |(a, b), s| (a + s[0], b + s[1]));
    println!(" sum  {l:>8.1}  {h:>10.1}  {:>5.2}", h / l);
}
