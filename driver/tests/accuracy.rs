//! `ifp run logreg`'s accuracy report: on the training data (counted by the functions over
//! their own rows with the final model, summed by the driver) and on `--test-data`, overall
//! and per class, checked against a hand computation in f64 from the trained model and
//! against scikit-learn's `accuracy_score` and per-class recall (fixture
//! `softmax_sklearn.json`, from `tests/fixtures/generate.py`).

use ifp_testkit::*;
use serde_json::Value;

/// The rows of a fixture `.npy` (features then the label), as f32.
fn rows(name: &str, cols: usize) -> Vec<Vec<f32>> {
    let x: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(fixture(name)).unwrap()).unwrap().into_vec().unwrap();
    x.chunks_exact(cols + 1).map(<[f32]>::to_vec).collect()
}

/// Per class `(support, correct)` of the model in `result` on `rows`, by hand: binary class 1
/// when `w·x + b ≥ 0`, multinomial the first largest score.
fn by_hand(result: &Value, rows: &[Vec<f32>]) -> Vec<(u64, u64)> {
    let (w, b) = (floats(&result["model"]["weights"]), floats(&result["model"]["intercept"]));
    let d = w.len() / b.len();
    let score = |row: &[f32], k: usize| b[k] + (0..d).map(|j| w[k * d + j] * row[j] as f64).sum::<f64>();
    let classes = b.len().max(2);
    let mut out = vec![(0u64, 0u64); classes];
    for row in rows {
        let predicted = if b.len() == 1 {
            usize::from(score(row, 0) >= 0.0)
        } else {
            (0..b.len()).fold(0, |best, k| if score(row, k) > score(row, best) { k } else { best })
        };
        let label = row[d] as usize;
        out[label].0 += 1;
        out[label].1 += u64::from(predicted == label);
    }
    out
}

/// `(support, correct)` per class of an accuracy report, after checking its own arithmetic.
fn counts(report: &Value) -> Vec<(u64, u64)> {
    let classes = report["classes"].as_array().expect("per-class counts");
    let mut out = Vec::new();
    for (k, c) in classes.iter().enumerate() {
        assert_eq!(c["class"], k, "{report}");
        let (n, ok) = (c["support"].as_u64().unwrap(), c["correct"].as_u64().unwrap());
        assert_eq!(c["accuracy"].as_f64().unwrap(), ok as f64 / n as f64, "{report}");
        out.push((n, ok));
    }
    let (n, ok) = out.iter().fold((0, 0), |(n, ok), c| (n + c.0, ok + c.1));
    assert_eq!((report["rows"].as_u64().unwrap(), report["correct"].as_u64().unwrap()), (n, ok));
    assert_eq!(report["accuracy"].as_f64().unwrap(), ok as f64 / n as f64);
    out
}

/// `ifp run logreg` on the 5-class fixture with scikit-learn's settings (fixture
/// `softmax_sklearn.json`) and `extra` flags.
fn run_softmax(dir: &std::path::Path, extra: &[&str]) -> Value {
    let want = load_json(&fixture("softmax_sklearn.json"));
    let s = |k: &str| want[k].to_string();
    let (lr, l2, tol, mi) = (s("learning_rate"), s("l2"), s("tol"), s("max_iter"));
    let data = fixture("softmax.npy");
    let mut args = vec!["run", "logreg", "--data", data.to_str().unwrap(), "--classes", "5", "--learning-rate", &lr];
    args.extend(["--l2", &l2, "--tol", &tol, "--max-iter", &mi]);
    args.extend(extra);
    run_json(dir, &args)
}

/// The training accuracy the functions count is the hand computation's, the same for every
/// split of the data (1x1, 3x2, 8x1), and at convergence scikit-learn's `accuracy_score` and
/// per-class recall within 0.5 percentage points.
#[test]
fn softmax_training_accuracy_is_counted_by_the_functions_like_sklearn() {
    let want = load_json(&fixture("softmax_sklearn.json"));
    let dir = tempfile::tempdir().unwrap();
    let data = rows("softmax.npy", 6);
    let base = run_softmax(dir.path(), &["--workers", "1", "--inner", "1"]);
    let got = counts(&base["accuracy"]["train"]);
    assert_eq!(got, by_hand(&base, &data), "counts vs the hand computation");
    assert_eq!(got.iter().map(|c| c.0).sum::<u64>(), 3000);
    let overall = base["accuracy"]["train"]["accuracy"].as_f64().unwrap();
    let sk = want["accuracy"].as_f64().unwrap();
    assert!((overall - sk).abs() <= 0.005, "accuracy {overall} vs sklearn {sk}");
    for (k, sk) in floats(&want["per_class_accuracy"]).into_iter().enumerate() {
        let acc = got[k].1 as f64 / got[k].0 as f64;
        assert!((acc - sk).abs() <= 0.005, "class {k}: recall {acc} vs sklearn {sk}");
    }
    assert!(base["accuracy"].get("test").is_none(), "no --test-data, no test accuracy");
    for (w, m) in [("3", "2"), ("8", "1")] {
        let other = run_softmax(dir.path(), &["--workers", w, "--inner", m]);
        assert_eq!(other["accuracy"]["train"], base["accuracy"]["train"], "{w}x{m}");
    }
}

/// Binary logistic regression reports two classes, counted as by hand; a mini-batch Adam run
/// too, two epochs of a CSV (its counts are of the final model over every row, not of the
/// last batch; a CSV gives no row count for --epochs before the census).
#[test]
fn binary_training_accuracy_matches_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows("logreg.npy", 6);
    let path = fixture("logreg.csv");
    let p = path.to_str().unwrap();
    for extra in [&["--max-iter", "50"][..], &["--batch-size", "500", "--max-iter", "16", "--optimizer", "adam"]] {
        let mut args = vec!["run", "logreg", "--data", p, "--learning-rate", "0.5", "--workers", "2", "--inner", "2"];
        args.extend(extra);
        let r = run_json(dir.path(), &args);
        let got = counts(&r["accuracy"]["train"]);
        assert_eq!(got.len(), 2, "{extra:?}");
        assert_eq!(got, by_hand(&r, &data), "{extra:?}");
        assert_eq!(got[1].0, 2250, "the fixture's ones");
    }
}

/// `--test-data` (CSV, held-out rows the model was not trained on): the counts by hand, in
/// the result and in the summary.
#[test]
fn held_out_accuracy_is_that_of_the_model_on_those_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows("softmax.npy", 6);
    let (train, test) = data.split_at(2000);
    let write = |name: &str, rows: &[Vec<f32>]| {
        let p = dir.path().join(name);
        let text: String =
            rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n").collect();
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (train_csv, test_csv) = (write("train.csv", train), write("test.csv", test));
    let out = dir.path().join("r.json");
    let args = ["run", "logreg", "--data", &train_csv, "--classes", "5", "--learning-rate", "1", "--l2", "0.01"];
    let mut args = args.to_vec();
    args.extend(["--max-iter", "200", "--workers", "2", "--test-data", &test_csv, "--out", out.to_str().unwrap()]);
    let o = ifp_ok(&args);
    let r = load_json(&out);
    let held_out = counts(&r["accuracy"]["test"]);
    assert_eq!(held_out, by_hand(&r, test));
    assert_eq!(held_out.iter().map(|c| c.0).sum::<u64>(), 1000);
    assert_eq!(r["accuracy"]["test"]["data"], test_csv.as_str());
    assert_eq!(counts(&r["accuracy"]["train"]), by_hand(&r, train));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = |on: &str| {
        let prefix = format!("accuracy on {on}: ");
        let l = stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix}: {stdout}"));
        l[prefix.len()..].split(' ').next().unwrap().parse::<f64>().unwrap()
    };
    let acc = |c: &[(u64, u64)]| c.iter().map(|c| c.1).sum::<u64>() as f64 / c.iter().map(|c| c.0).sum::<u64>() as f64;
    assert!((line("--test-data") - acc(&held_out)).abs() < 1e-4, "{stdout}");
    assert!((line("the training data") - acc(&counts(&r["accuracy"]["train"]))).abs() < 1e-4, "{stdout}");
}

/// Bad `--test-data`: one line naming the flag and what is wrong, no result file.
#[test]
fn bad_test_data_gets_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let train = fixture("softmax.csv");
    let out = dir.path().join("r.json");
    let fails = |test: &str, extra: &[&str], want: &[&str]| {
        let mut args = vec!["run", "logreg", "--data", train.to_str().unwrap(), "--classes", "5", "--max-iter", "3"];
        args.extend(["--test-data", test, "--out", out.to_str().unwrap(), "--quiet"]);
        args.extend(extra);
        let o = ifp(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{test} should fail");
        for w in want {
            assert!(err.contains(w), "{test}: stderr {err:?} lacks {w:?}");
        }
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(!out.exists(), "no result file");
    };
    let missing = dir.path().join("missing.csv");
    fails(missing.to_str().unwrap(), &[], &["--test-data", "missing.csv"]);
    let narrow = write("narrow.csv", "1,2,3,0\n4,5,6,1\n");
    fails(&narrow, &[], &["--test-data", "narrow.csv has 4 columns but the training data has 7"]);
    let label = write("label.csv", "0,0,0,0,0,0,1\n0,0,0,0,0,0,5\n");
    fails(&label, &[], &["--test-data", "label 5 in row 2 is not a class of the model (0..4)"]);
    let kmeans = ["run", "kmeans", "--data", train.to_str().unwrap(), "--test-data", &label];
    let o = ifp(&kmeans);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--test-data does not apply to kmeans"), "{err}");
}
