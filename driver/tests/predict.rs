//! `ifp predict`: a model trained by `ifp run` applied to data, checked against scikit-learn's
//! own predictions (fixtures from `tests/fixtures/generate.py`), from local files and S3.

use ifp_testkit::*;

fn read_csv(path: &std::path::Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// The multinomial model trained to convergence predicts scikit-learn's classes (lbfgs, the
/// same penalty) on at least 99.5 % of the rows; probabilities sum to 1 and the class is the
/// most probable one; the printed accuracy is the labels' own.
#[test]
fn softmax_predictions_agree_with_sklearn() {
    let want = load_json(&fixture("softmax_sklearn.json"));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    let data = fixture("softmax.npy");
    let s = |k: &str| want[k].to_string();
    let (lr, l2, tol, mi) = (s("learning_rate"), s("l2"), s("tol"), s("max_iter"));
    let args = ["run", "logreg", "--data", data.to_str().unwrap(), "--classes", "5", "--learning-rate", &lr];
    let mut args = args.to_vec();
    args.extend(["--l2", &l2, "--tol", &tol, "--max-iter", &mi, "--quiet", "--out", model.to_str().unwrap()]);
    ifp_ok(&args);
    let out = dir.path().join("pred.csv");
    let csv = fixture("softmax.csv");
    let o = ifp_ok(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = read_csv(&out);
    let sk = floats(&want["predictions"]);
    assert_eq!(rows.len(), sk.len());
    let mut agree = 0;
    for (r, &k) in rows.iter().zip(&sk) {
        assert_eq!(r.len(), 6, "class and 5 probabilities");
        assert!((r[1..].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let best = (0..5).max_by(|&a, &b| r[1 + a].total_cmp(&r[1 + b])).unwrap();
        assert_eq!(r[0] as usize, best, "the class is the most probable one");
        agree += usize::from(r[0] == k);
    }
    assert!(agree as f64 >= 0.995 * sk.len() as f64, "{agree} of {} rows agree with sklearn", sk.len());
    let stdout = String::from_utf8_lossy(&o.stdout);
    let sk_acc = want["accuracy"].as_f64().unwrap();
    let line = stdout.lines().find(|l| l.starts_with("accuracy: ")).expect("an accuracy line");
    let acc: f64 = line["accuracy: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((acc - sk_acc).abs() <= 0.005, "accuracy {acc} vs sklearn {sk_acc}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("  class ")).count(), 5, "{stdout}");
}

/// k-means: each row's nearest centroid under the trained model is scikit-learn's label, for
/// data read from S3 in one stream, written as .npy.
#[test]
fn kmeans_predictions_from_s3_are_sklearn_labels() {
    let want = load_json(&fixture("kmeans_first.json"));
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    let blobs = fixture("blobs.npy");
    let mi = want["max_iter"].to_string();
    ifp_ok(&[
        "run",
        "kmeans",
        "--data",
        blobs.to_str().unwrap(),
        "--k",
        "4",
        "--init",
        "first",
        "--max-iter",
        &mi,
        "--tol",
        "1e-4",
        "--quiet",
        "--out",
        model.to_str().unwrap(),
    ]);
    let uri = s3.put("data/blobs.csv", &std::fs::read(fixture("blobs.csv")).unwrap());
    let out = dir.path().join("clusters.npy");
    let o = s3.ifp(&["predict", "--model", model.to_str().unwrap(), "--data", &uri, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<f64> = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap().into_vec().unwrap();
    assert_eq!(got, floats(&want["labels"]));
}

#[test]
fn bad_models_and_data_are_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.csv");
    let o = out.to_str().unwrap();
    let fails = |args: &[&str], want: &str| {
        let r = ifp(args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!out.exists(), "no output for a failed prediction");
    };
    let missing = dir.path().join("missing.json");
    fails(&["predict", "--model", missing.to_str().unwrap(), "--data", "x.csv", "--out", o], "missing.json");
    let model = dir.path().join("model.json");
    let data = fixture("logreg.npy");
    ifp_ok(&["run", "logreg", "--data", data.to_str().unwrap(), "--quiet", "--out", model.to_str().unwrap()]);
    let blobs = fixture("blobs.npy");
    fails(
        &["predict", "--model", model.to_str().unwrap(), "--data", blobs.to_str().unwrap(), "--out", o],
        "has 5 feature columns but the model has 6",
    );
    let txt = dir.path().join("pred.txt");
    fails(
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            txt.to_str().unwrap(),
        ],
        "expected a .npy or .csv extension",
    );
}
