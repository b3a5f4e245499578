//! `sync`: one iteration's exchange through the state store, with `W` workers as threads:
//! every worker arrives with a k-means-sized partial (k = 16, 32 columns), the last one
//! reduces and releases, the others wait for the release. In-process store only: there is no
//! Redis store in the tree yet (a Redis case belongs here, behind `REDIS_URL`, once there is).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ifp_host::sync::{Arrival, InProcess, Release, StateStore};

/// `[sums k·d | counts k | sumsq k | changed | rows | colsum d | colsumsq d]` for k=16, d=32.
const PARTIAL_LEN: usize = 16 * 32 + 16 + 16 + 2 + 32 + 32;

fn exchange(store: &mut InProcess, t: u32, w: u32, partial: &[f64]) {
    match store.arrive(t, w, partial).expect("arrive") {
        Arrival::Reduce(parts) => {
            let mut total = parts[0].clone();
            for p in &parts[1..] {
                total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            }
            let r = Release { model: total, loss: 0.0, converged: false, stop: false };
            store.release(t, &r).expect("release");
        }
        Arrival::Wait => {
            store.await_release(t, w).expect("await release");
        }
    }
}

fn sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let partial = vec![1.0f64; PARTIAL_LEN];
    for workers in [1u32, 2, 4, 8] {
        g.throughput(Throughput::Elements(workers as u64));
        g.bench_function(BenchmarkId::new("in_process", format!("w{workers}")), |b| {
            b.iter_custom(|iters| {
                // Worker threads start once per sample; the timed part is `iters` iterations.
                let store = InProcess::new("bench", workers as usize, Duration::from_secs(30));
                let start = Barrier::new(workers as usize + 1);
                let mut t0 = Instant::now();
                std::thread::scope(|s| {
                    for w in 0..workers {
                        let (mut store, start, partial) = (store.clone(), &start, &partial);
                        s.spawn(move || {
                            start.wait();
                            for t in 0..iters as u32 {
                                exchange(&mut store, t, w, partial);
                            }
                        });
                    }
                    start.wait();
                    t0 = Instant::now();
                });
                // The scope has joined every worker: all `iters` iterations are done.
                t0.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
