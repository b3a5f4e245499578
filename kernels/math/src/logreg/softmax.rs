//! The multinomial (softmax) step: for each row, the class scores `z_k = W_k·x + b_k`, their
//! softmax `p_k`, the cross-entropy `ln Σ_k e^{z_k} − z_y` and the residuals `r_k = p_k −
//! [y = k]`, whose sums (times `x`, and alone) are the gradient of the summed loss.
//!
//! Scores are shifted by their maximum before exponentiating (every exponent is then ≤ 0, the
//! range of [`exp_nonpositive`]), so no score overflows whatever the model. As in the binary
//! step, a block of rows' residuals is computed first and then accumulated into the gradient,
//! class by class, while the block is in cache; all sums are in f64.

use super::{exp_nonpositive, Layout, BLOCK};
use crate::simd::{axpy_block_widened, dot_widened, max_f64};

/// The partial of the rows `x` (row-major, `l.d` columns) with labels `y` under `model`, laid
/// out as `[Σ r_k·x per class | Σ r_k per class | Σ loss | rows]`. The caller has checked the
/// model's length and that every label is below the number of classes.
pub fn step(l: Layout, x: &[f32], y: &[f32], model: &[f64]) -> Vec<f64> {
    let (d, c) = (l.d, l.vectors);
    let (w, b) = (&model[..c * d], &model[c * d..c * d + c]);
    let mut out = vec![0.0; l.partial_len()];
    // Residuals of one block, class-major: `r[k * BLOCK + i]` for row `i` of the block.
    let mut r = vec![0.0f64; c * BLOCK];
    let mut e = vec![0.0f64; c];
    let mut loss = 0.0;
    for (xb, yb) in x.chunks(BLOCK * d).zip(y.chunks(BLOCK)) {
        for (i, (row, &yi)) in xb.chunks_exact(d).zip(yb).enumerate() {
            let mut zmax = f64::NEG_INFINITY;
            for (k, ek) in e.iter_mut().enumerate() {
                *ek = dot_widened(&w[k * d..(k + 1) * d], row) + b[k];
                zmax = max_f64(*ek, zmax);
            }
            loss += residuals(&mut e, zmax, yi as usize);
            for (k, &ek) in e.iter().enumerate() {
                r[k * BLOCK + i] = ek;
            }
        }
        let rows = yb.len();
        for k in 0..c {
            let rk = &r[k * BLOCK..k * BLOCK + rows];
            axpy_block_widened(&mut out[k * d..(k + 1) * d], rk, xb);
            out[c * d + k] += rk.iter().sum::<f64>();
        }
    }
    out[c * (d + 1)] = loss;
    out[c * (d + 1) + 1] = y.len() as f64;
    out
}

/// Turns the class scores `z` (their maximum `zmax`) of a row labelled `yk` into its residuals
/// `softmax(z)_k − [k = yk]`, in place; returns the row's cross-entropy `ln Σ e^{z_k} − z_yk`.
#[inline]
pub fn residuals(z: &mut [f64], zmax: f64, yk: usize) -> f64 {
    let zy = z[yk] - zmax;
    let mut sum = 0.0;
    for zk in z.iter_mut() {
        *zk = exp_nonpositive(*zk - zmax);
        sum += *zk;
    }
    let inv = 1.0 / sum;
    for (k, zk) in z.iter_mut().enumerate() {
        *zk = *zk * inv - (k == yk) as u8 as f64;
    }
    // `sum ≥ 1` (the maximum's own term), so the logarithm is finite.
    sum.ln() - zy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, DataShape, LogReg, Shard};

    /// Row by row with libm, no blocks: the definition.
    fn reference(d: usize, c: usize, x: &[f32], y: &[f32], model: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; c * (d + 1) + 2];
        for (row, &yi) in x.chunks_exact(d).zip(y) {
            let z: Vec<f64> = (0..c)
                .map(|k| (0..d).map(|j| model[k * d + j] * row[j] as f64).sum::<f64>() + model[c * d + k])
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            out[c * (d + 1)] += lse - z[yi as usize];
            for k in 0..c {
                let r = (z[k] - lse).exp() - (k == yi as usize) as u8 as f64;
                for j in 0..d {
                    out[k * d + j] += r * row[j] as f64;
                }
                out[c * d + k] += r;
            }
        }
        out[c * (d + 1) + 1] = y.len() as f64;
        out
    }

    #[test]
    fn step_matches_the_row_by_row_definition_across_blocks() {
        let (d, c, n) = (5, 4, 2 * BLOCK + 9);
        let mut rng = crate::rng::SplitMix64::new(11);
        let x: Vec<f32> = (0..n * d).map(|_| (rng.next_f64() * 4.0 - 2.0) as f32).collect();
        let y: Vec<f32> = (0..n).map(|_| rng.below(c as u64) as f32).collect();
        let model: Vec<f64> = (0..c * (d + 1)).map(|_| rng.next_f64() - 0.5).chain([f64::NAN]).collect();
        let shape = DataShape { cols: d as u32, has_labels: true, total_rows: n as u64 };
        let mut s = LogReg::new_shard(shape);
        s.append(&x, &y).unwrap();
        let got = s.step(&model).unwrap();
        let want = reference(d, c, &x, &y, &model);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "value {i}: {g} vs {w}");
        }
    }

    #[test]
    fn huge_scores_do_not_overflow() {
        // Scores of ±1e4 would overflow e^z unshifted; the loss of the right class is ~0.
        let model = [1e4, -1e4, 0.0, 0.0, 0.0, 0.0, f64::NAN];
        let l = Layout { d: 1, vectors: 3, state: None };
        let p = step(l, &[1.0, -1.0], &[0.0, 1.0], &model);
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
        assert!(p[l.vectors * 2] < 1e-12, "loss {}", p[6]);
    }

    #[test]
    fn multiclass_update_and_describe_use_the_class_layout() {
        let shape = DataShape { cols: 2, has_labels: true, total_rows: 4 };
        let params = vec![("classes".to_string(), "3".to_string()), ("learning-rate".into(), "0.5".into())];
        let m0 = LogReg::init(&params, shape, &[], &[], &[]).unwrap();
        assert_eq!(m0.len(), 3 * 3 + 1);
        // Gradient sums 0..8, loss sum 9, over 4 rows.
        let mut total: Vec<f64> = (0..11).map(f64::from).collect();
        total[10] = 4.0;
        let u = LogReg::update(&params, shape, &m0, &total).unwrap();
        for j in 0..9 {
            assert_eq!(u.model[j], -0.5 * j as f64 / 4.0, "value {j}");
        }
        assert_eq!(u.loss, 9.0 / 4.0);
        let f = LogReg::describe(&params, shape, &u.model).unwrap();
        assert_eq!((f[0].shape.clone(), f[1].shape.clone()), (vec![3, 2], vec![3]));
        let e = LogReg::validate(&[("classes".into(), "1".into())], shape).unwrap_err();
        assert_eq!(e, "logreg parameter 'classes' must be between 2 and 10000, got 1");
    }
}
