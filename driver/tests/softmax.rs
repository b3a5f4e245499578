//! Multinomial (softmax) logistic regression, `ifp run logreg --classes C`, through the real
//! `ifp` binary and the wasm kernel, against independent references (fixtures written by
//! `tests/fixtures/generate.py`, versions recorded in each JSON): a float64 numpy
//! implementation of the same gradient descent, and scikit-learn's multinomial
//! `LogisticRegression` (lbfgs) with the same L2 penalty expressed as `C`.

use ifp_testkit::*;
use serde_json::Value;

/// Tolerance against the numpy gradient descent: 1e-6 relative (1e-9 absolute near 0).
const REL: f64 = 1e-6;
const ABS: f64 = 1e-9;

/// `ifp run logreg` on the 5-class fixture with the reference's settings and `extra` flags.
fn run_softmax(dir: &std::path::Path, data: &str, want: &Value, extra: &[&str]) -> Value {
    let d = fixture(data);
    let s = |k: &str| want[k].to_string();
    let (classes, lr, l2, tol, mi) = (s("classes"), s("learning_rate"), s("l2"), s("tol"), s("max_iter"));
    let mut args = vec!["run", "logreg", "--data", d.to_str().unwrap(), "--classes", &classes];
    args.extend(["--learning-rate", &lr, "--l2", &l2, "--tol", &tol, "--max-iter", &mi]);
    args.extend(extra);
    run_json(dir, &args)
}

fn check_numpy(reference: &str) {
    let want = load_json(&fixture(reference));
    let dir = tempfile::tempdir().unwrap();
    for data in ["softmax.npy", "softmax.csv"] {
        let got = run_softmax(dir.path(), data, &want, &[]);
        assert_eq!(got["iterations"], want["n_iter"], "{reference} on {data}: iterations");
        assert_eq!(got["model"]["weights"].as_array().unwrap().len(), 5, "{reference}: 5 rows of weights");
        for (what, g, w) in [
            ("weights", &got["model"]["weights"], &want["weights"]),
            ("intercepts", &got["model"]["intercept"], &want["intercept"]),
            ("losses", &got["losses"], &want["losses"]),
        ] {
            assert_close(&format!("{reference} on {data}: {what}"), &floats(g), &floats(w), REL, ABS);
        }
    }
}

#[test]
fn softmax_matches_float64_numpy_gradient_descent() {
    check_numpy("softmax_ref.json");
}

#[test]
fn softmax_capped_at_max_iter_matches_numpy() {
    check_numpy("softmax_capped.json");
}

/// The class of each row under `weights` (classes × d, row-major) and `intercepts`, in f64.
fn predict(x: &[f32], d: usize, weights: &[f64], intercepts: &[f64]) -> Vec<usize> {
    x.chunks_exact(d + 1)
        .map(|row| {
            let score = |k: usize| intercepts[k] + (0..d).map(|j| weights[k * d + j] * row[j] as f64).sum::<f64>();
            (0..intercepts.len()).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap()
        })
        .collect()
}

#[test]
fn softmax_at_convergence_predicts_like_sklearn_multinomial_lbfgs() {
    let want = load_json(&fixture("softmax_sklearn.json"));
    let dir = tempfile::tempdir().unwrap();
    let got = run_softmax(dir.path(), "softmax.npy", &want, &["--workers", "2", "--inner", "2"]);
    assert_eq!(got["iterations"], want["numpy_n_iter"], "stopped by the tolerance, as numpy did");
    let (w, b) = (floats(&got["model"]["weights"]), floats(&got["model"]["intercept"]));
    // Coefficients within 1e-3 relative (to the largest coefficient for those near 0).
    let coef = floats(&want["coef"]);
    let scale = coef.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close("coefficients vs sklearn", &w, &coef, 1e-3, 1e-3 * scale);
    assert_close("intercepts vs sklearn", &b, &floats(&want["intercept"]), 1e-3, 1e-3 * scale);
    // Accuracy on the training data within 0.5 percentage points, overall and per class.
    let x: Vec<f32> =
        npyz::NpyFile::new(std::fs::File::open(fixture("softmax.npy")).unwrap()).unwrap().into_vec().unwrap();
    let pred = predict(&x, 6, &w, &b);
    let y: Vec<usize> = x.chunks_exact(7).map(|r| r[6] as usize).collect();
    let acc = |k: Option<usize>| {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| k.is_none_or(|k| y[i] == k)).collect();
        rows.iter().filter(|&&i| pred[i] == y[i]).count() as f64 / rows.len() as f64
    };
    let sk_acc = want["accuracy"].as_f64().unwrap();
    assert!((acc(None) - sk_acc).abs() <= 0.005, "accuracy {} vs sklearn {sk_acc}", acc(None));
    for (k, sk) in floats(&want["per_class_accuracy"]).into_iter().enumerate() {
        assert!((acc(Some(k)) - sk).abs() <= 0.005, "class {k}: accuracy {} vs sklearn {sk}", acc(Some(k)));
    }
}

/// The multinomial model must not depend on how rows are spread over functions and inner
/// workers (1e-9 relative).
#[test]
fn softmax_model_is_independent_of_the_configuration() {
    let want = load_json(&fixture("softmax_ref.json"));
    let dir = tempfile::tempdir().unwrap();
    let flags = |w: &'static str, m: &'static str| ["--workers", w, "--inner", m];
    let base = run_softmax(dir.path(), "softmax.csv", &want, &flags("1", "1"));
    for (w, m) in [("3", "2"), ("8", "1")] {
        let got = run_softmax(dir.path(), "softmax.csv", &want, &flags(w, m));
        assert_eq!(got["iterations"], base["iterations"], "{w}x{m}: iterations");
        for field in ["weights", "intercept"] {
            assert_close(
                &format!("{w}x{m}: {field}"),
                &floats(&got["model"][field]),
                &floats(&base["model"][field]),
                1e-9,
                1e-12,
            );
        }
    }
}

#[test]
fn labels_that_are_not_classes_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let fails = |args: &[&str], want: &str| {
        let out = ifp(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: stderr {err:?} lacks {want:?}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    };
    let half = write("half.csv", "1,0\n2,1.5\n3,2\n");
    fails(&["run", "logreg", "--data", &half, "--classes", "3"], "loading data rows 1 to 2: kernel 'logreg' failed in shard.append: label 1.5 in row 2 of the data is not a class number");
    let seven = write("seven.csv", "1,0\n2,1\n3,7\n");
    // Beyond --classes (or 0/1 without it): the row of the file and the value.
    fails(
        &["run", "logreg", "--data", &seven, "--classes", "5"],
        "label 7 in row 3 of the data is not below --classes 5 (labels must be 0..4)",
    );
    fails(
        &["run", "logreg", "--data", &seven, "--workers", "2"],
        "label 7 in row 3 of the data is not 0 or 1: give --classes C for labels 0..C-1",
    );
    let negative = write("negative.csv", "1,0\n2,-1\n");
    fails(
        &["run", "logreg", "--data", &negative, "--classes", "3"],
        "label -1 in row 2 of the data is not a class number",
    );
    fails(&["run", "logreg", "--data", &seven, "--classes", "1"], "--classes");
}
