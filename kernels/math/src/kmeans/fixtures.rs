//! Test fixtures shared by the k-means modules' tests: parameter lists, shapes, models and
//! seeded data.

use crate::rng::SplitMix64;
use crate::{DataShape, Param};

pub(super) fn params(k: usize, init: &str) -> Vec<Param> {
    vec![("k".into(), k.to_string()), ("init".into(), init.into())]
}

pub(super) fn shape(d: u32, n: u64) -> DataShape {
    DataShape { cols: d, has_labels: false, total_rows: n }
}

pub(super) fn with_code(c: &[f64], code: f64) -> Vec<f64> {
    c.iter().copied().chain([code]).collect()
}

pub(super) fn lcg_data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..n * d).map(|_| (r.next_f64() * 20.0 - 10.0) as f32).collect()
}
