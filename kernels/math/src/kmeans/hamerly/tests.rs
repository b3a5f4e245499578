//! Hamerly's step against Lloyd's, bit for bit, on data and model sequences that take each
//! of its paths.

use super::super::fixtures::{lcg_data, shape, with_code};
use super::super::KMeans;
use super::*;
use crate::rng::SplitMix64;
use crate::{Algorithm, Shard};

/// `k` blobs in `d` dimensions around centres uniform in ±`spread`, shifted by `offset`,
/// with uniform noise of half-width `noise`.
fn blobs(n: usize, d: usize, k: usize, spread: f64, noise: f64, offset: f64, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    let centres: Vec<f64> = (0..k * d).map(|_| offset + (r.next_f64() * 2.0 - 1.0) * spread).collect();
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = r.below(k as u64) as usize;
        x.extend((0..d).map(|i| (centres[c * d + i] + (r.next_f64() * 2.0 - 1.0) * noise) as f32));
    }
    x
}

/// Runs Lloyd and Hamerly side by side from the same centroids and asserts that every
/// step's partial and assignments are bit-identical, the models equal and the iteration
/// counts the same; at iteration 3 a fresh Hamerly shard replays the previous model (as a
/// host that rebuilt a shard does) and must agree too. The first Hamerly shard is given the
/// parameters (as the wasm host gives them: its bounds' storage is made resident while its
/// rows arrive, in chunks that end mid-block), the rebuilt one is not (as the native callers
/// make shards). Returns (iterations, rows Hamerly scored in total, rows Lloyd scored in
/// total).
fn lloyd_vs_hamerly(x: &[f32], d: usize, k: usize, start: &[f64], max_iter: usize) -> (usize, u64, u64) {
    let n = x.len() / d;
    let sh = shape(d as u32, n as u64);
    let ps = vec![("k".to_string(), k.to_string()), ("tol".to_string(), "0".to_string())];
    let new = |configured: bool| {
        let mut s = KMeansShard::new(sh);
        if configured {
            s.configure(&ps).unwrap();
        }
        for chunk in x.chunks(d * 700) {
            s.append(chunk, &[]).unwrap();
        }
        s
    };
    let (mut lloyd, mut ham) = (new(false), new(true));
    let (mut ml, mut mh) = (with_code(start, 0.0), with_code(start, 1.0));
    let (mut scored, mut prev_h) = (0u64, mh.clone());
    for it in 0..max_iter {
        if it == 3 {
            ham = new(false);
            ham.step(&prev_h).unwrap();
        }
        let pl = lloyd.step(&ml).unwrap();
        let ph = ham.step(&mh).unwrap();
        scored += ham.scored_rows();
        assert_eq!(lloyd.scored_rows(), n as u64);
        assert!(pl.iter().zip(&ph).all(|(a, b)| a.to_bits() == b.to_bits()), "partials differ at iteration {it}");
        assert_eq!(lloyd.assignments(), ham.assignments(), "assignments differ at iteration {it}");
        let ul = KMeans::update(&ps, sh, &ml, &pl).unwrap();
        let uh = KMeans::update(&ps, sh, &mh, &ph).unwrap();
        assert_eq!(ul.model[..k * d], uh.model[..k * d], "models differ after iteration {it}");
        assert_eq!(ul.converged, uh.converged);
        prev_h = mh;
        (ml, mh) = (ul.model, uh.model);
        if ul.converged {
            return (it + 1, scored, (n * (it + 1)) as u64);
        }
    }
    (max_iter, scored, (n * max_iter) as u64)
}

fn first_rows(x: &[f32], k: usize, d: usize) -> Vec<f64> {
    x[..k * d].iter().map(|&v| v as f64).collect()
}

#[test]
fn hamerly_equals_lloyd_on_blobs_and_skips_most_rows() {
    let (n, d, k) = (3000, 5, 8);
    let x = blobs(n, d, k, 10.0, 1.0, 0.0, 5);
    let (iters, scored, all) = lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 50);
    assert!(iters >= 3, "too few iterations ({iters}) to exercise the bounds");
    assert!(scored * 2 < all, "Hamerly scored {scored} of {all} rows: the bounds skip nothing");
}

/// Under Hamerly a configured shard makes its bounds' storage resident for every whole block
/// as the rows arrive, and its first step takes it; under Lloyd it makes none.
#[test]
fn a_hamerly_shard_makes_its_bounds_resident_while_its_rows_arrive() {
    let (d, k) = (3, 16);
    let b = block_rows(k);
    let x = lcg_data(5 * b + 100, d, 7);
    let sh = shape(d as u32, (x.len() / d) as u64);
    let params =
        |algorithm: &str| vec![("k".to_string(), k.to_string()), ("algorithm".to_string(), algorithm.to_string())];
    let mut s = KMeansShard::new(sh);
    s.configure(&params("hamerly")).unwrap();
    for chunk in x.chunks(d * (b - 37)) {
        s.append(chunk, &[]).unwrap();
    }
    let r = s.resident.as_ref().expect("no resident storage under hamerly");
    assert_eq!(r.blocks.len(), 5, "one per whole block of {b} rows of {}", x.len() / d);
    let stride = k * d + 2 * k;
    assert!(r.blocks.iter().all(|blk| blk.upper.len() == b && blk.lower.len() == b && blk.sums.len() == stride));
    let first = r.blocks[4].upper.as_ptr();
    s.step(&with_code(&first_rows(&x, k, d), 1.0)).unwrap();
    assert!(s.resident.is_none(), "the first step did not take the resident storage");
    let bounds = s.bounds.as_ref().expect("bounds after a Hamerly step");
    assert_eq!(bounds.blocks[4].upper.as_ptr(), first, "the first step's bounds are not the resident storage");
    let mut l = KMeansShard::new(sh);
    l.configure(&params("lloyd")).unwrap();
    l.append(&x, &[]).unwrap();
    assert!(l.resident.is_none(), "resident bounds storage under lloyd");
}

/// The steps Hamerly's shard scans in full, after the first, over `iters` iterations
/// (checked against Lloyd by [`lloyd_vs_hamerly`] in the other tests).
fn full_scans(x: &[f32], d: usize, k: usize, iters: usize) -> Vec<usize> {
    let sh = shape(d as u32, (x.len() / d) as u64);
    let ps = vec![("k".to_string(), k.to_string()), ("tol".to_string(), "0".to_string())];
    let mut s = KMeansShard::new(sh);
    s.append(x, &[]).unwrap();
    let mut m = with_code(&first_rows(x, k, d), 1.0);
    let mut full = Vec::new();
    for it in 0..iters {
        let p = s.step(&m).unwrap();
        if s.scanned_all() && it > 0 {
            full.push(it);
        }
        m = KMeans::update(&ps, sh, &m, &p).unwrap().model;
    }
    full
}

/// Where the bounds settle few rows (unclustered data, centroids moving far) the next
/// steps scan every row as Lloyd does, and test the bounds again once they would settle
/// enough; on well-separated blobs they keep skipping rows.
#[test]
fn bounds_that_settle_few_rows_give_way_to_full_scans_and_come_back() {
    let (d, k) = (8, 16);
    let uniform = lcg_data(6000, d, 21);
    let full = full_scans(&uniform, d, k, 40);
    // Full scans while the centroids move far, then bounded steps between full scans that
    // build the bounds again (seen: full scans at 1-6, then two in every four steps up to 30,
    // and 36).
    let bounded_late = (20..40).filter(|it| !full.contains(it)).count();
    assert!(full.first().is_some_and(|&it| it < 5) && bounded_late >= 10, "unclustered data: full scans at {full:?}");
    lloyd_vs_hamerly(&uniform, d, k, &first_rows(&uniform, k, d), 12);
    let x = blobs(6000, d, k, 10.0, 1.0, 0.0, 5);
    let full = full_scans(&x, d, k, 30);
    assert!(full.iter().all(|&it| it < 10), "blobs: full scans late, at {full:?}");
}

/// Enough rows for several sample blocks (every 16th of 40): the full scans that give the
/// other blocks Lloyd's scan alone, the ones that build their bounds again, and the steps
/// after them keep Lloyd's partials bit for bit.
#[test]
fn hamerly_equals_lloyd_across_full_scans_with_and_without_bounds() {
    let (d, k) = (4, 16);
    let x = lcg_data(40 * block_rows(k) - 100, d, 31);
    assert_eq!(block_rows(k), 512);
    lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 15);
    let full = full_scans(&x, d, k, 15);
    assert!(!full.is_empty(), "no full scan after the first step: the test does not exercise them");
}

/// Far-apart blobs from one row of each (as k-means++ starts): the first step's sample
/// finds the triangle inequality settling nearly every row, so the other blocks get upper
/// bounds only; the steps after it still equal Lloyd's and skip nearly every row.
#[test]
fn hamerly_equals_lloyd_with_upper_bounds_only_after_a_start_inside_each_blob() {
    let (d, k) = (4, 6);
    let x = blobs(40 * block_rows(k), d, k, 100.0, 1.0, 0.0, 17);
    let start = one_row_per_blob(&x, d, k);
    let (iters, scored, all) = lloyd_vs_hamerly(&x, d, k, &start, 10);
    let n = x.len() / d;
    assert!(scored < n as u64 + (all - n as u64) / 20, "Hamerly scored {scored} of {all} rows in {iters} iterations");
}

/// The first `k` rows at least 10 apart: one row of each of `k` far-apart blobs.
fn one_row_per_blob(x: &[f32], d: usize, k: usize) -> Vec<f64> {
    let mut start: Vec<f64> = Vec::new();
    for r in x.chunks_exact(d) {
        let far = |c: &[f64]| c.iter().zip(r).map(|(a, &b)| (a - b as f64).powi(2)).sum::<f64>() > 100.0;
        if start.len() < k * d && start.chunks_exact(d).all(far) {
            start.extend(r.iter().map(|&v| v as f64));
        }
    }
    assert_eq!(start.len(), k * d, "the blobs are not far apart");
    start
}

/// Centroids that jump between blobs after bounds were built (not a Lloyd sequence): the
/// moved bounds settle nothing, so the bounded step scores every block whole without
/// tightening; back at the start, full scans rebuild bounds that then settle most rows.
/// Every step's partial and assignments stay Lloyd's.
#[test]
fn hamerly_equals_lloyd_when_centroids_jump_between_blobs() {
    let (d, k) = (4, 6);
    let x = blobs(40 * block_rows(k), d, k, 100.0, 1.0, 0.0, 23);
    let n = x.len() / d;
    let start = one_row_per_blob(&x, d, k);
    let mut rotated = start[d..].to_vec();
    rotated.extend_from_slice(&start[..d]);
    let sh = shape(d as u32, n as u64);
    let new = || {
        let mut s = KMeansShard::new(sh);
        s.append(&x, &[]).unwrap();
        s
    };
    let (mut lloyd, mut ham) = (new(), new());
    let mut scored = Vec::new();
    for (it, m) in [&start, &rotated, &start, &start, &start].into_iter().enumerate() {
        let pl = lloyd.step(&with_code(m, 0.0)).unwrap();
        let ph = ham.step(&with_code(m, 1.0)).unwrap();
        assert!(pl.iter().zip(&ph).all(|(a, b)| a.to_bits() == b.to_bits()), "partials differ at step {it}");
        assert_eq!(lloyd.assignments(), ham.assignments(), "assignments differ at step {it}");
        scored.push((ham.scored_rows(), ham.scanned_all()));
    }
    // The jump is a bounded step that scores every row; in the end bounds settle most.
    assert_eq!(scored[1], (n as u64, false), "steps: {scored:?}");
    assert!(!scored[4].1 && scored[4].0 * 10 < n as u64, "steps: {scored:?}");
}

#[test]
fn hamerly_equals_lloyd_on_uniform_data_and_many_chunks_and_odd_widths() {
    for &(n, d, k, seed) in &[(2000, 3, 7, 1), (1500, 17, 33, 2), (1200, 1, 4, 3), (900, 32, 16, 4)] {
        let x = lcg_data(n, d, seed);
        lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 40);
    }
}

#[test]
fn hamerly_equals_lloyd_with_ties_and_duplicate_points_and_centroids() {
    // Coordinates in {0, 1, 2}: many identical rows and exactly equidistant centroids;
    // the first rows repeat, so some initial centroids coincide.
    let mut r = SplitMix64::new(11);
    let x: Vec<f32> = (0..2000 * 2).map(|_| r.below(3) as f32).collect();
    let mut start = first_rows(&x, 6, 2);
    let first = [start[0], start[1]];
    start[2..4].copy_from_slice(&first);
    lloyd_vs_hamerly(&x, 2, 6, &start, 30);
    // Centroids midway between grid points: every row ties between two or more of them.
    lloyd_vs_hamerly(&x, 2, 4, &[0.5, 0.5, 1.5, 0.5, 0.5, 1.5, 1.5, 1.5], 30);
}

#[test]
fn hamerly_equals_lloyd_far_from_the_origin() {
    // Blobs around 10⁴ with unit spread: the f32 scores lose most of their digits to
    // cancellation, so only the rounding margin keeps the bounds honest.
    let (d, k) = (8, 5);
    let x = blobs(2500, d, k, 3.0, 1.5, 1e4, 9);
    lloyd_vs_hamerly(&x, d, k, &first_rows(&x, k, d), 40);
}

#[test]
fn hamerly_equals_lloyd_for_one_cluster_and_one_cluster_per_row() {
    let x = blobs(700, 3, 4, 5.0, 1.0, 0.0, 3);
    let (_, scored, _) = lloyd_vs_hamerly(&x, 3, 1, &first_rows(&x, 1, 3), 10);
    assert_eq!(scored, 700, "with k = 1 only the first step scores rows");
    let x = lcg_data(40, 3, 8);
    let (iters, _, _) = lloyd_vs_hamerly(&x, 3, 40, &first_rows(&x, 40, 3), 10);
    assert!(iters <= 2, "every row is its own centroid: converged after {iters} iterations");
}

/// Bounds stored back-projected (as of the block's last rebuild) come back no tighter than
/// they went in, and stay valid as the block's growth and drop go on: the upper bound at least
/// `u` plus what grew since, the lower bound at most `lo` minus what dropped, over magnitudes
/// from 1e-6 to 1e5 and growths up to ten times the bounds.
#[test]
fn back_projected_bounds_stay_valid_under_rounding() {
    let mut r = SplitMix64::new(7);
    for _ in 0..200_000 {
        let scale = 10f64.powi(r.below(12) as i32 - 6);
        let (u, lo) = (r.next_f64() * scale, r.next_f64() * scale);
        let mut b = Block {
            upper: vec![0.0],
            lower: vec![0.0],
            grown: vec![r.next_f64() * scale * 10.0],
            dropped: vec![r.next_f64() * scale * 10.0],
            sums: Vec::new(),
        };
        b.store(0, 0, u, lo);
        assert!(moved_upper(b.upper[0], b.grown[0]) >= u, "upper {u} stored at growth {}", b.grown[0]);
        assert!(b.lower(0, 0) <= lo, "lower {lo} stored at drop {}", b.dropped[0]);
        let (g, dr) = (r.next_f64() * scale, r.next_f64() * scale);
        let moves = Moves { mv: vec![g], half: vec![f64::INFINITY], m1: dr, m1j: usize::MAX, m2: 0.0 };
        b.advance(&moves);
        assert!(moved_upper(b.upper[0], b.grown[0]) >= u + g, "upper {u} grown by {g}");
        assert!(b.lower(0, 0) <= lo - dr, "lower {lo} dropped by {dr}");
    }
}

/// `a + b` as an exact pair `(s, e)` with `s + e = a + b` (Knuth's two-sum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// The moved bounds of the row loop, each a single f64 expression, stay on the safe side of
/// the exact value they stand for (upper bounds above `stored + g`, lower bounds below
/// `stored − dr`, both by more than their rounding), over magnitudes from 1e-300 to 1e300;
/// and the affine margin is at least four times the margin it replaces.
#[test]
fn moved_bounds_and_the_affine_margin_are_on_the_safe_side() {
    let mut r = SplitMix64::new(21);
    let mut mag = || 10f64.powf(r.next_f64() * 600.0 - 300.0);
    for _ in 0..100_000 {
        let (s, g) = (mag(), mag());
        let (hi, lo) = two_sum(s, g);
        let u = moved_upper(s, g);
        assert!(u > hi || (u == hi && lo <= 0.0), "upper {s} + {g}: {u} vs {hi} + {lo}");
        let (hi, lo) = two_sum(s, -g);
        let l = moved_lower(s, g);
        assert!(l < hi || (l == hi && lo >= 0.0), "lower {s} - {g}: {l} vs {hi} + {lo}");
    }
    for (cmax, d) in [(0.0, 1), (1e-3, 8), (7.5, 32), (3e5, 100)] {
        let m = Margin { kappa: (d as f64 + 8.0) * f64::powi(2.0, -23), cmax };
        let (alpha, beta) = m.four_times_affine();
        for sq in [0.0, 1e-20, 0.5, 3.0, 1e4, 1e12] {
            assert!(alpha * sq + beta >= 4.0 * m.of(sq), "cmax {cmax} d {d} sq {sq}");
        }
    }
}
