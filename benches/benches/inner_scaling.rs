//! `inner_scaling`: one iteration of one function (`Function::step`: every inner worker's
//! wasm `step` on its own thread, then the native merge) with 1, 2, 4, … up to the available
//! parallelism inner workers over the same rows.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ifp_benches::{inner_counts, Case, Kind};

fn inner_scaling(c: &mut Criterion) {
    let mut g = c.benchmark_group("inner_scaling");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (kind, n, d, k) in [(Kind::KMeans, 500_000, 32, 16), (Kind::LogReg, 500_000, 32, 0)] {
        let case = Case::new(kind, n, d, k, 11);
        let engine = case.engine();
        g.throughput(Throughput::Elements(n as u64));
        for inner in inner_counts() {
            let mut f = case.function(&engine, inner);
            g.bench_function(
                BenchmarkId::new(format!("{}/{}", kind.name(), case.label()), format!("inner{inner}")),
                |b| b.iter(|| f.step(&case.model).expect("step")),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, inner_scaling);
criterion_main!(benches);
