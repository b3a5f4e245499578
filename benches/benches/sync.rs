//! `sync`: one iteration's exchange through the state store, with `W` workers as threads:
//! every worker arrives with a k-means-sized partial (k = 16, 32 columns), the last one
//! reduces and releases, the others wait for the release. In-process always; through Redis
//! (one connection per worker, as `ifp-worker` has) when `REDIS_URL` is set, e.g.
//! `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p ifp-benches --bench sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ifp_host::sync::redis::RedisStore;
use ifp_host::sync::{Arrival, InProcess, Release, StateStore};

/// `[sums k·d | counts k | sumsq k | changed | rows | colsum d | colsumsq d]` for k=16, d=32.
const PARTIAL_LEN: usize = 16 * 32 + 16 + 16 + 2 + 32 + 32;

fn exchange(store: &mut dyn StateStore, t: u32, w: u32, partial: &[f64]) {
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
        Arrival::Released(_) => unreachable!("no worker arrives late in this benchmark"),
    }
}

/// Times `iters` iterations of `workers` threads, each with the store `make(w)` returns.
fn timed(
    workers: u32,
    iters: u64,
    partial: &[f64],
    make: &(dyn Fn(u32) -> Box<dyn StateStore + Send> + Sync),
) -> Duration {
    // Stores are made (and Redis connections opened) before the clock starts.
    let start = Barrier::new(workers as usize + 1);
    let mut t0 = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let mut store = make(w);
            let start = &start;
            s.spawn(move || {
                start.wait();
                for t in 0..iters as u32 {
                    exchange(store.as_mut(), t, w, partial);
                }
            });
        }
        start.wait();
        t0 = Instant::now();
    });
    // The scope has joined every worker: all `iters` iterations are done.
    t0.elapsed()
}

fn sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let partial = vec![1.0f64; PARTIAL_LEN];
    for workers in [1u32, 2, 4, 8] {
        g.throughput(Throughput::Elements(workers as u64));
        g.bench_function(BenchmarkId::new("in_process", format!("w{workers}")), |b| {
            b.iter_custom(|iters| {
                let store = InProcess::new("bench", workers as usize, Duration::from_secs(30));
                timed(workers, iters, &partial, &|_| Box::new(store.clone()))
            })
        });
        if let Ok(url) = std::env::var("REDIS_URL") {
            // A fresh job per sample: iterations restart at 0.
            static JOB: AtomicU64 = AtomicU64::new(0);
            g.bench_function(BenchmarkId::new("redis", format!("w{workers}")), |b| {
                b.iter_custom(|iters| {
                    let job = format!("bench-sync-{}-{}", std::process::id(), JOB.fetch_add(1, Ordering::Relaxed));
                    timed(workers, iters, &partial, &|w| {
                        let mut s =
                            RedisStore::connect(&url, &job, w, workers, Duration::from_secs(30)).expect("connect");
                        s.join().expect("join");
                        Box::new(s)
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
