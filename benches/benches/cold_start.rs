//! `cold_start`: getting a kernel ready. Compiling the builtin component from its bytes
//! against loading an artifact precompiled by `KernelEngine::precompile`, and creating one
//! instance (own store) per inner worker from a ready engine.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ifp_benches::inner_counts;
use ifp_host::{KernelEngine, Sandbox};

fn cold_start(c: &mut Criterion) {
    let mut g = c.benchmark_group("cold_start");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for name in ["kmeans", "logreg"] {
        let bytes = ifp_kernels::builtin(name).expect("builtin kernel");
        let pre = KernelEngine::precompile(bytes, &Sandbox::default()).expect("precompile");
        g.bench_function(BenchmarkId::new("compile", name), |b| {
            b.iter(|| KernelEngine::new(name, bytes, Sandbox::default()).expect("compile"))
        });
        g.bench_function(BenchmarkId::new("load_precompiled", name), |b| {
            b.iter(|| KernelEngine::new(name, &pre, Sandbox::default()).expect("deserialize"))
        });
        let engine = KernelEngine::new(name, &pre, Sandbox::default()).expect("deserialize");
        for inner in inner_counts() {
            g.bench_function(BenchmarkId::new(format!("instantiate/{name}"), format!("inner{inner}")), |b| {
                b.iter(|| (0..inner).map(|_| engine.instantiate().expect("instantiate")).collect::<Vec<_>>())
            });
        }
        // The whole path a warm Lambda takes: precompiled artifact to `inner` ready instances.
        let inner = *inner_counts().last().unwrap();
        g.bench_function(BenchmarkId::new(format!("precompiled_ready/{name}"), format!("inner{inner}")), |b| {
            b.iter(|| {
                let e = KernelEngine::new(name, &pre, Sandbox::default()).expect("deserialize");
                let v: Vec<_> = (0..inner).map(|_| e.instantiate().expect("instantiate")).collect();
                (e, v)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, cold_start);
criterion_main!(benches);
