//! How a logistic-regression model classifies a shard's rows: per class, the rows labelled
//! with it and how many of them the model predicts as it (the counts `shard.score` returns;
//! their sums over every shard give the accuracy on the training data, overall and per class).
//!
//! The predicted class is the one `ifp predict` gives: binary, class 1 when `w·x + b ≥ 0`
//! (probability at least 1/2); multinomial, the class of the largest score `W_k·x + b_k`, the
//! first of equal ones (as numpy's `argmax`). Scores are f64 over the f32 features.

use super::Layout;
use crate::simd::dot_widened;
use crate::ClassCount;

/// The predicted class of the row `x` under `model` (whose first values are the weights and
/// intercepts of layout `l`).
pub fn predict(l: Layout, model: &[f64], x: &[f32]) -> usize {
    predict_with(l, model, |w| dot_widened(w, x))
}

/// [`predict`] for a row given by its dot product with one weight vector (`dot(w) = w·x`):
/// dense or sparse rows alike.
pub fn predict_with(l: Layout, model: &[f64], dot: impl Fn(&[f64]) -> f64) -> usize {
    let (d, c) = (l.d, l.vectors);
    let (w, b) = (&model[..c * d], &model[c * d..c * d + c]);
    if c == 1 {
        return usize::from(dot(w) + b[0] >= 0.0);
    }
    let mut best = (0, f64::NEG_INFINITY);
    for k in 0..c {
        let z = dot(&w[k * d..(k + 1) * d]) + b[k];
        if z > best.1 {
            best = (k, z);
        }
    }
    best.0
}

/// Per class, the rows of `x` (row-major, `l.d` columns) labelled with it (`y`, class numbers
/// below `l.classes()`) and those of them `model` predicts right.
pub fn count(l: Layout, model: &[f64], x: &[f32], y: &[f32]) -> Vec<ClassCount> {
    let mut out = vec![ClassCount::default(); l.classes()];
    for (row, &label) in x.chunks_exact(l.d).zip(y) {
        let k = label as usize;
        out[k].rows += 1;
        out[k].correct += u64::from(predict(l, model, row) == k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, DataShape, LogReg, Shard};

    #[test]
    fn binary_counts_by_hand() {
        // w = 1, b = -1: rows 0, 1, 2, 3 score -1, 0, 1, 2, predicted 0, 1, 1, 1.
        let l = Layout { d: 1, vectors: 1, state: None };
        let got = count(l, &[1.0, -1.0, f64::NAN], &[0.0, 1.0, 2.0, 3.0], &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(got, vec![ClassCount { rows: 3, correct: 1 }, ClassCount { rows: 1, correct: 1 }]);
    }

    #[test]
    fn multiclass_counts_through_the_shard_add_up_over_a_split() {
        // Three classes on one feature: scores (x, 0, -x) + (0, 0.5, 0): x > 0.5 gives class 0,
        // x < -0.5 class 2, else class 1.
        let model = [1.0, 0.0, -1.0, 0.0, 0.5, 0.0, f64::NAN];
        let x = [2.0f32, 0.1, -3.0, 0.7, -0.2, 1.0];
        let y = [0.0f32, 1.0, 2.0, 1.0, 0.0, 0.0];
        let params = vec![("classes".to_string(), "3".to_string())];
        let shape = DataShape { cols: 1, has_labels: true, total_rows: 6 };
        let whole = {
            let mut s = LogReg::new_shard(shape);
            s.configure(&params).unwrap();
            s.append(&x, &y).unwrap();
            s.score(&model).unwrap()
        };
        let want = [(3, 2), (2, 1), (1, 1)].map(|(rows, correct)| ClassCount { rows, correct });
        assert_eq!(whole, want);
        let mut halves = vec![ClassCount::default(); 3];
        for r in [0..2, 2..6] {
            let mut s = LogReg::new_shard(shape);
            s.append(&x[r.clone()], &y[r]).unwrap();
            for (t, c) in halves.iter_mut().zip(s.score(&model).unwrap()) {
                (t.rows, t.correct) = (t.rows + c.rows, t.correct + c.correct);
            }
        }
        assert_eq!(halves, want);
    }
}
