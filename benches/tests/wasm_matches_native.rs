//! The wasm kernels and the native build of the same source (what `kernel_step` compares)
//! compute the same thing: partials equal to 1e-9 relative (k-means bit for bit: its rows
//! near a tie, where fused and separate f32 multiply-adds round apart, are decided in f64)
//! and identical k-means assignments, over shapes that exercise the SIMD tails (odd column
//! counts, k not a multiple of 16, row counts not a multiple of the scoring block), for
//! k-means under Lloyd and Hamerly alike.

use ifp_benches::{Case, Kind};

/// `last` replaces the model's last value (k-means: the algorithm code, 0 Lloyd, 1 Hamerly).
fn check(kind: Kind, n: usize, d: usize, k: usize, last: Option<f64>) {
    let case = Case::new(kind, n, d, k, 3);
    let engine = case.engine();
    let (mut inst, shard) = case.wasm_shard(&engine);
    let mut native = case.native_shard();
    let mut model = case.model.clone();
    if let Some(v) = last {
        *model.last_mut().unwrap() = v;
    }
    let m = model.len() - 1;
    let tol = if kind == Kind::KMeans { 0.0 } else { 1e-9 };
    for step in 0..3 {
        let w = inst.step(shard, &model).expect("wasm step");
        let nv = native.step(&model).expect("native step");
        assert_eq!(w.len(), nv.len());
        for (i, (a, b)) in w.iter().zip(&nv).enumerate() {
            assert!(
                (a - b).abs() <= tol * b.abs().max(1.0),
                "{} step {step} value {i}: wasm {a} native {b}",
                case.label()
            );
        }
        if kind == Kind::KMeans {
            assert_eq!(inst.assignments(shard).unwrap(), native.assignments(), "{}", case.label());
        }
        // Move the model so that the second step runs under a different one.
        // (The last value is bookkeeping: the algorithm code or logreg's previous loss.)
        model[..m].iter_mut().enumerate().for_each(|(i, m)| *m += 0.01 * (i % 7) as f64);
    }
}

#[test]
fn kmeans_wasm_matches_native() {
    for &(n, d, k) in &[(1001, 7, 5), (2000, 32, 16), (503, 3, 17), (64, 33, 40)] {
        check(Kind::KMeans, n, d, k, Some(0.0));
        check(Kind::KMeans, n, d, k, Some(1.0));
    }
}

#[test]
fn logreg_wasm_matches_native() {
    for &(n, d) in &[(1001, 7), (2000, 32), (130, 9)] {
        check(Kind::LogReg, n, d, 0, None);
    }
}
