//! Logistic regression on sparse rows ([`Csr`]): the same partials as the dense steps
//! (`[Σ r·x | Σ r | Σ loss | rows]`, binary or per class), computed from each row's non-zeros
//! only, so a step costs O(non-zeros · classes) instead of O(rows · columns · classes). Scores,
//! residuals and sums are f64 over the f32 values, as in the dense steps, and the loss uses
//! the same stable forms; a dense and a sparse shard of the same rows give partials equal to
//! rounding (the dense steps sum a block's columns in another order).

use super::{exp_nonpositive, Layout};
use crate::csr::{axpy, dot, Csr};
use crate::simd::max_f64;
use crate::ClassCount;

/// The partial of the rows `rows` of `x` (every row when `None`) with labels `y` (one per row
/// of `x`) under `model`, in layout `l`. The caller has checked the model's length and that
/// every label is a class of `l`.
pub fn step(l: Layout, x: &Csr, y: &[f32], rows: Option<&[u32]>, model: &[f64]) -> Vec<f64> {
    let (d, c) = (l.d, l.vectors);
    let (w, b) = (&model[..c * d], &model[c * d..c * d + c]);
    let mut out = vec![0.0; l.partial_len()];
    let mut loss = 0.0;
    let mut e = vec![0.0f64; c];
    let mut visit = |r: usize, out: &mut [f64]| {
        let (idx, val) = x.row(r);
        let label = y[r] as f64;
        if c == 1 {
            let z = dot(w, idx, val) + b[0];
            let t = exp_nonpositive(-z.abs());
            let p = if z >= 0.0 { 1.0 / (1.0 + t) } else { t / (1.0 + t) };
            loss += t.ln_1p() + max_f64(z, 0.0) - label * z;
            let res = p - label;
            axpy(&mut out[..d], res, idx, val);
            out[d] += res;
            return;
        }
        let mut zmax = f64::NEG_INFINITY;
        for (k, ek) in e.iter_mut().enumerate() {
            *ek = dot(&w[k * d..(k + 1) * d], idx, val) + b[k];
            zmax = max_f64(*ek, zmax);
        }
        loss += super::softmax::residuals(&mut e, zmax, y[r] as usize);
        for (k, &res) in e.iter().enumerate() {
            axpy(&mut out[k * d..(k + 1) * d], res, idx, val);
            out[c * d + k] += res;
        }
    };
    let n = match rows {
        None => {
            for r in 0..x.rows() {
                visit(r, &mut out);
            }
            x.rows()
        }
        Some(rows) => {
            for &r in rows {
                visit(r as usize, &mut out);
            }
            rows.len()
        }
    };
    out[c * (d + 1)] = loss;
    out[c * (d + 1) + 1] = n as f64;
    out
}

/// Per class, the rows of `x` labelled with it and those of them `model` predicts right (as
/// [`super::score::count`] for dense rows).
pub fn count(l: Layout, model: &[f64], x: &Csr, y: &[f32]) -> Vec<ClassCount> {
    let mut out = vec![ClassCount::default(); l.classes()];
    for (r, &label) in y.iter().enumerate() {
        let (idx, val) = x.row(r);
        let k = label as usize;
        out[k].rows += 1;
        out[k].correct += u64::from(super::score::predict_with(l, model, |w| dot(w, idx, val)) == k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, DataShape, LogReg, Param, Shard};

    /// CSR offsets, indices and values, the same rows dense, and labels.
    type Rows = (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// Seeded rows over `d` columns with about a third of the entries non-zero, as CSR and dense.
    fn rows(n: usize, d: usize, classes: u32, seed: u64) -> Rows {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let (mut offsets, mut indices, mut values) = (vec![0u32], Vec::new(), Vec::new());
        let mut dense = vec![0f32; n * d];
        let mut y = Vec::new();
        for r in 0..n {
            for j in 0..d {
                if rng.next_f64() < 0.33 {
                    let v = (rng.next_f64() * 4.0 - 2.0) as f32;
                    indices.push(j as u32);
                    values.push(v);
                    dense[r * d + j] = v;
                }
            }
            offsets.push(indices.len() as u32);
            y.push((rng.next_u64() % classes as u64) as f32);
        }
        (offsets, indices, values, dense, y)
    }

    fn both(params: &[Param], d: usize, n: usize, classes: u32, model: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (o, i, v, dense, y) = rows(n, d, classes, 11);
        let shape = DataShape { cols: d as u32, has_labels: true, total_rows: n as u64 };
        let mut s = LogReg::new_shard(shape);
        s.configure(params).unwrap();
        s.append_sparse(&o, &i, &v, &y).unwrap();
        let mut t = LogReg::new_shard(shape);
        t.configure(params).unwrap();
        t.append(&dense, &y).unwrap();
        (s.step(model).unwrap(), t.step(model).unwrap())
    }

    #[test]
    fn sparse_and_dense_partials_agree_binary_and_multiclass() {
        let d = 9;
        let model: Vec<f64> = (0..d).map(|j| 0.3 - 0.07 * j as f64).chain([0.1, f64::NAN]).collect();
        let (s, t) = both(&[], d, 150, 2, &model);
        for (j, (a, b)) in s.iter().zip(&t).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "binary value {j}: {a} vs {b}");
        }
        let c = 4;
        let model: Vec<f64> = (0..c * (d + 1)).map(|j| ((j * 7) % 11) as f64 * 0.05 - 0.25).chain([f64::NAN]).collect();
        let params = vec![("classes".to_string(), c.to_string())];
        let (s, t) = both(&params, d, 150, c as u32, &model);
        for (j, (a, b)) in s.iter().zip(&t).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "multiclass value {j}: {a} vs {b}");
        }
    }

    #[test]
    fn one_sparse_row_by_hand() {
        // Features (0, 2, 0, -1), w = (9, 0.5, 9, 1), b = 0.25: z = 1 - 1 + 0.25 = 0.25, y = 0.
        let l = Layout { d: 4, vectors: 1, state: None };
        let x = Csr { offsets: vec![0, 2], indices: vec![1, 3], values: vec![2.0, -1.0] };
        let model = [9.0, 0.5, 9.0, 1.0, 0.25, f64::NAN];
        let p = step(l, &x, &[0.0], None, &model);
        let s = 1.0 / (1.0 + (-0.25f64).exp());
        let want = [0.0, 2.0 * s, 0.0, -s, s, (1.0 + 0.25f64.exp()).ln(), 1.0];
        for (j, (a, b)) in p.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-15, "value {j}: {a} vs {b}");
        }
        assert_eq!(count(l, &model, &x, &[0.0])[0].correct, 0, "z > 0 predicts class 1");
    }

    #[test]
    fn a_dense_shard_refuses_sparse_rows_and_back() {
        let shape = DataShape { cols: 3, has_labels: true, total_rows: 2 };
        let mut s = LogReg::new_shard(shape);
        s.append(&[1.0, 2.0, 3.0], &[1.0]).unwrap();
        let e = s.append_sparse(&[0, 1], &[2], &[1.0], &[0.0]).unwrap_err();
        assert_eq!(e, "this shard holds dense rows: sparse rows cannot be added to it");
        let mut s = LogReg::new_shard(shape);
        s.append_sparse(&[0, 1], &[2], &[1.0], &[0.0]).unwrap();
        let e = s.append(&[1.0, 2.0, 3.0], &[1.0]).unwrap_err();
        assert_eq!(e, "this shard holds sparse rows: dense rows cannot be added to it");
    }
}
