//! `kernel_step`: one `step` of the k-means and logistic-regression kernels, the wasm
//! component (through `KernelInstance`) against the native build of the same source
//! (`ifp_kernel_math` through the `Shard` trait), on one thread, for several shapes.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ifp_benches::{Case, Kind};

const CASES: &[(Kind, usize, usize, usize)] = &[
    (Kind::KMeans, 100_000, 8, 4),
    (Kind::KMeans, 100_000, 32, 16),
    (Kind::KMeans, 100_000, 32, 64),
    (Kind::KMeans, 250_000, 32, 16),
    (Kind::LogReg, 100_000, 8, 0),
    (Kind::LogReg, 250_000, 32, 0),
];

fn kernel_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel_step");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for &(kind, n, d, k) in CASES {
        let case = Case::new(kind, n, d, k, 7);
        g.throughput(Throughput::Elements(n as u64));
        let engine = case.engine();
        let (mut inst, shard) = case.wasm_shard(&engine);
        g.bench_function(BenchmarkId::new(format!("{}/wasm", kind.name()), case.label()), |b| {
            b.iter(|| inst.step(shard, &case.model).expect("wasm step"))
        });
        let mut native = case.native_shard();
        g.bench_function(BenchmarkId::new(format!("{}/native", kind.name()), case.label()), |b| {
            b.iter(|| native.step(&case.model).expect("native step"))
        });
    }
    g.finish();
}

criterion_group!(benches, kernel_step);
criterion_main!(benches);
