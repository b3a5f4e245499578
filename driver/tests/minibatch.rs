//! Mini-batch training and the optimisers (`ifp run logreg --batch-size B --epochs E
//! --optimizer ...`) through the real `ifp` binary and the wasm kernel (contract 0.2.0),
//! against a float64 numpy implementation of the same updates on the same batches
//! (`tests/fixtures/generate.py`, `minibatch.json`), and across configurations.

use ifp_testkit::*;
use serde_json::Value;

/// Against numpy: 1e-6 relative (1e-9 absolute near 0); across configurations: 1e-9.
const REL: f64 = 1e-6;
const ABS: f64 = 1e-9;

/// The `ifp run` arguments of one fixture case.
fn case_args(case: &Value) -> Vec<String> {
    let data = fixture(&format!("{}.npy", case["data"].as_str().unwrap()));
    let mut a: Vec<String> = ["run", "logreg", "--data", data.to_str().unwrap()].map(String::from).to_vec();
    let classes = case["classes"].as_u64().unwrap();
    if classes > 2 {
        a.extend(["--classes".into(), classes.to_string()]);
    }
    for (name, v) in case["settings"].as_object().unwrap() {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match name.as_str() {
            "iterations" => {}
            "batch-size" | "epochs" | "learning-rate" | "l2" | "optimizer" | "seed" | "max-iter" => {
                a.extend([format!("--{name}"), v])
            }
            _ => a.extend(["--param".into(), format!("{name}={v}")]),
        }
    }
    a
}

fn run_case(dir: &std::path::Path, case: &Value, workers: &str, inner: &str) -> Value {
    let mut a = case_args(case);
    a.extend(["--workers", workers, "--inner", inner].map(String::from));
    run_json(dir, &a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn optimisers_match_numpy_on_the_same_batches_in_every_configuration() {
    let want = load_json(&fixture("minibatch.json"));
    let dir = tempfile::tempdir().unwrap();
    for case in want["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let base = run_case(dir.path(), case, "1", "1");
        assert_eq!(base["kernel_contract"], "ifp:kernel@0.2.0");
        assert_eq!(base["iterations"], case["settings"]["iterations"], "{name}: iterations");
        for (what, key) in [("weights", "weights"), ("intercepts", "intercept")] {
            let (g, w) = (floats(&base["model"][key]), floats(&case[key]));
            assert_close(&format!("{name}: {what} vs numpy"), &g, &w, REL, ABS);
        }
        assert_close(&format!("{name}: losses vs numpy"), &floats(&base["losses"]), &floats(&case["losses"]), REL, ABS);
        for (w, m) in [("3", "2"), ("8", "1")] {
            let got = run_case(dir.path(), case, w, m);
            for key in ["weights", "intercept"] {
                let what = format!("{name} {w}x{m}: {key} vs 1x1");
                assert_close(&what, &floats(&got["model"][key]), &floats(&base["model"][key]), 1e-9, 1e-12);
            }
        }
    }
}

/// Batches that a function does not hold at all: 8 functions, batches of 3 rows out of
/// 4,000, so most functions step no row in most iterations and still synchronise.
#[test]
fn functions_without_batch_rows_still_synchronise() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("logreg.npy");
    let run = |w: &str| {
        let args = ["run", "logreg", "--data", data.to_str().unwrap(), "--batch-size", "3", "--max-iter", "40"];
        let mut a = args.to_vec();
        a.extend(["--optimizer", "momentum", "--workers", w, "--inner", "1", "--seed", "4"]);
        run_json(dir.path(), &a)
    };
    let (one, eight) = (run("1"), run("8"));
    assert_eq!(eight["iterations"], 40);
    assert_close(
        "8 functions vs 1",
        &floats(&eight["model"]["weights"]),
        &floats(&one["model"]["weights"]),
        1e-9,
        1e-12,
    );
}

fn fails_with(args: &[&str], want: &str) {
    let mut args = args.to_vec();
    args.push("--quiet");
    let out = ifp(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.contains(want), "{args:?}: stderr {err:?} lacks {want:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn bad_batch_sizes_optimisers_and_diverging_rates_are_one_line() {
    let data = fixture("logreg.npy");
    let d = data.to_str().unwrap();
    fails_with(
        &["run", "logreg", "--data", d, "--batch-size", "0"],
        "logreg parameter 'batch-size' must be at least 1, got 0",
    );
    fails_with(
        &["run", "logreg", "--data", d, "--batch-size", "4001"],
        "'batch-size' is 4001, more than the 4000 rows",
    );
    fails_with(
        &["run", "logreg", "--data", d, "--optimizer", "rmsprop"],
        "logreg parameter 'optimizer' must be one of sgd, momentum, nesterov, adam, got 'rmsprop'",
    );
    fails_with(
        &["run", "logreg", "--data", d, "--optimizer", "adam", "--param", "beta1=1.5"],
        "logreg parameter 'beta1' must be in [0, 1), got 1.5",
    );
    // A rate so large that the loss overflows: the job stops at that iteration, naming the
    // last finite loss.
    fails_with(
        &["run", "logreg", "--data", d, "--learning-rate", "1e306", "--optimizer", "momentum"],
        "kernel 'logreg' failed in update: the loss is inf (the last finite loss was",
    );
    fails_with(&["run", "kmeans", "--data", d, "--batch-size", "10"], "--batch-size does not apply to kmeans");
}

/// The same job as `ifp-worker` processes synchronising through a real Redis gives the
/// threads' model (the optimiser state travels with the model through the store).
#[test]
fn mini_batches_over_redis_equal_the_in_process_run() {
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("logreg.npy");
    let url = redis.url();
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "logreg", "--data", data.to_str().unwrap(), "--batch-size", "200", "--epochs", "3"];
        a.extend(["--optimizer", "adam", "--learning-rate", "0.05", "--workers", "2", "--inner", "1"]);
        a.extend(extra);
        run_json(dir.path(), &a)
    };
    let (threads, processes) = (run(&[]), run(&["--redis", &url]));
    let (g, w) = (floats(&processes["model"]["weights"]), floats(&threads["model"]["weights"]));
    assert_close("over Redis vs threads", &g, &w, 1e-9, 1e-12);
}

/// A CSV is read by byte ranges (local or in S3): its shards learn their global row numbers
/// at the census, so its mini-batches are the `.npy`'s, in any configuration.
#[test]
fn mini_batches_of_a_csv_equal_those_of_the_npy() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["run", "logreg", "--batch-size", "300", "--max-iter", "25", "--optimizer", "adam", "--seed", "4"];
    let run = |file: &str, workers: &str, inner: &str| {
        let mut a = args.to_vec();
        let data = fixture(file);
        a.extend(["--data", data.to_str().unwrap(), "--workers", workers, "--inner", inner]);
        run_json(dir.path(), &a)
    };
    let want = run("logreg.npy", "1", "1");
    for (workers, inner) in [("1", "1"), ("3", "2"), ("7", "1")] {
        let got = run("logreg.csv", workers, inner);
        for (name, v) in want["model"].as_object().unwrap() {
            let what = format!("csv {workers}x{inner}: {name}");
            assert_close(&what, &floats(&got["model"][name]), &floats(v), 1e-9, 1e-12);
        }
    }
}
