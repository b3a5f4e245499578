//! Initial models: the given centroids, or `k` sample rows chosen as the first rows,
//! uniformly at random or by greedy k-means++, followed by the algorithm code.

use super::{algorithm_code, KMeansParams};
use crate::rng::{sample_indices, SplitMix64};
use crate::DataShape;

/// The initial model for `p`: `start` when given (checked), else `k` rows of `sample`.
pub(super) fn initial_model(
    p: &KMeansParams,
    shape: DataShape,
    sample: &[f32],
    start: &[f64],
) -> Result<Vec<f64>, String> {
    let d = shape.cols as usize;
    if !start.is_empty() {
        if start.len() != p.k * d {
            return Err(format!(
                "initial centroids have {} values, expected k × cols = {} × {d} = {}",
                start.len(),
                p.k,
                p.k * d
            ));
        }
        if let Some(v) = start.iter().find(|v| !v.is_finite()) {
            return Err(format!("initial centroids contain a non-finite value ({v})"));
        }
        let mut m = start.to_vec();
        m.push(algorithm_code(p.algorithm));
        return Ok(m);
    }
    let n = sample.len() / d.max(1);
    if n < p.k {
        return Err(format!("kmeans init needs at least k = {} sample rows, got {n}", p.k));
    }
    let row = |i: usize| sample[i * d..(i + 1) * d].iter().map(|&v| v as f64);
    let chosen: Vec<usize> = match p.init {
        "first" => (0..p.k).collect(),
        "random" => sample_indices(n as u64, p.k as u64, p.seed).into_iter().map(|i| i as usize).collect(),
        _ => kmeans_plus_plus(sample, d, p.k, p.seed),
    };
    let mut m: Vec<f64> = chosen.into_iter().flat_map(row).collect();
    m.push(algorithm_code(p.algorithm));
    Ok(m)
}

/// Greedy k-means++ (as scikit-learn: `2 + ln k` candidates per step, keep the best).
fn kmeans_plus_plus(x: &[f32], d: usize, k: usize, seed: u64) -> Vec<usize> {
    let n = x.len() / d;
    let mut rng = SplitMix64::new(seed);
    let dist = |a: usize, b: usize| -> f64 {
        x[a * d..(a + 1) * d].iter().zip(&x[b * d..(b + 1) * d]).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum()
    };
    let first = rng.below(n as u64) as usize;
    let mut chosen = vec![first];
    let mut closest: Vec<f64> = (0..n).map(|i| dist(i, first)).collect();
    let trials = 2 + (k as f64).ln() as usize;
    while chosen.len() < k {
        let pot: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let cand = if pot > 0.0 {
                let target = rng.next_f64() * pot;
                let mut acc = 0.0;
                closest
                    .iter()
                    .position(|c| {
                        acc += c;
                        acc > target
                    })
                    .unwrap_or(n - 1)
            } else {
                rng.below(n as u64) as usize
            };
            let upd: Vec<f64> = (0..n).map(|i| closest[i].min(dist(i, cand))).collect();
            let p: f64 = upd.iter().sum();
            if best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, cand, upd));
            }
        }
        let (_, cand, upd) = best.expect("at least one trial");
        chosen.push(cand);
        closest = upd;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{params, shape};
    use super::super::KMeans;
    use crate::Algorithm;

    #[test]
    fn kmeans_plus_plus_picks_distinct_far_apart_seeds() {
        // Three tight groups: k-means++ must pick one row from each.
        let mut x = Vec::new();
        for g in 0..3 {
            for i in 0..50 {
                x.extend([g as f32 * 100.0 + i as f32 * 0.01, 0.0]);
            }
        }
        let m = KMeans::init(&params(3, "kmeans++"), shape(2, 150), &x, &[], &[]).unwrap();
        assert_eq!(m.len(), 3 * 2 + 1);
        let mut groups: Vec<i64> = m[..6].chunks(2).map(|c| (c[0] / 100.0).round() as i64).collect();
        groups.sort();
        assert_eq!(groups, vec![0, 1, 2]);
    }

    #[test]
    fn init_appends_the_algorithm_code() {
        let ps =
            |a: &str| vec![("k".into(), "1".into()), ("init".into(), "first".into()), ("algorithm".into(), a.into())];
        let m = KMeans::init(&ps("lloyd"), shape(2, 2), &[3.0, 4.0], &[], &[]).unwrap();
        assert_eq!(m, vec![3.0, 4.0, 0.0]);
        let m = KMeans::init(&ps("hamerly"), shape(2, 2), &[], &[], &[5.0, 6.0]).unwrap();
        assert_eq!(m, vec![5.0, 6.0, 1.0]);
    }
}
