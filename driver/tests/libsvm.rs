//! LIBSVM input and `ifp gen sparse-logreg`: the generated text, read back by our parser,
//! equals the dense file of the same seed (scikit-learn's `load_svmlight_file` is checked
//! against the same pair in `python/tests/test_libsvm.py`); bad generator arguments get one
//! line.

use ifp_test_plugins as plugins;
use ifp_testkit::*;

use ifp_host::data::libsvm::{read_file, read_part, LibsvmFormat};

#[test]
fn generated_libsvm_parses_to_the_dense_file_of_the_same_seed() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy, model) = (d.path().join("s.svm"), d.path().join("s.npy"), d.path().join("w.npy"));
    let args = ["gen", "sparse-logreg", "--rows", "2000", "--features", "300", "--nnz", "12", "--seed", "7"];
    for (out, extra) in [(&svm, vec!["--true-model", model.to_str().unwrap()]), (&npy, vec![])] {
        let mut a = args.to_vec();
        a.extend(["--out", out.to_str().unwrap()]);
        a.extend(extra);
        ifp_ok(&a);
    }
    let sparse = read_file(&svm, LibsvmFormat::default()).unwrap();
    let dense: npyz::NpyFile<_> = npyz::NpyFile::new(std::fs::File::open(&npy).unwrap()).unwrap();
    assert_eq!(dense.shape(), [2000, 301]);
    let dense: Vec<f32> = dense.into_vec().unwrap();
    assert_eq!(sparse.len(), 2000);
    assert_eq!(sparse.nnz(), 2000 * 12);
    // The parser's width is the largest index seen: pad to 300 columns, then compare.
    let (w, got) = (sparse.width as usize, sparse.to_dense());
    for r in 0..2000 {
        let row = &dense[r * 301..(r + 1) * 301];
        assert_eq!(&got[r * w..(r + 1) * w], &row[..w], "row {r}");
        assert!(row[w..300].iter().all(|&v| v == 0.0), "row {r}");
        assert_eq!(sparse.labels[r], row[300], "label of row {r}");
    }
    let labels: f32 = sparse.labels.iter().sum();
    assert!(labels > 200.0 && labels < 1800.0, "{labels} positive labels of 2000");
    // With --features the width is fixed, and parts split anywhere give the same rows.
    let fixed = LibsvmFormat { features: Some(300), ..LibsvmFormat::default() };
    let size = std::fs::metadata(&svm).unwrap().len();
    let mut parts = Vec::new();
    for i in 0..5 {
        let p = read_part(&svm, size * i / 5..size * (i + 1) / 5, fixed).unwrap();
        assert_eq!(p.width, 300);
        parts.extend(p.to_dense());
    }
    let full: Vec<f32> = dense.chunks(301).flat_map(|r| r[..300].iter().copied()).collect();
    assert_eq!(parts, full);
    // The true model: 300 weights and the intercept.
    let model: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(&model).unwrap()).unwrap().into_vec().unwrap();
    assert_eq!((model.len(), model[300]), (301, -0.5));
}

#[test]
fn bad_generator_arguments_get_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.svm");
    let o = out.to_str().unwrap();
    let base = ["gen", "sparse-logreg", "--rows", "10", "--features", "5"];
    for (extra, want) in [
        (vec!["--nnz", "6", "--out", o], "--nnz must be between 1 and --features (5), got 6"),
        (vec!["--nnz", "0", "--out", o], "'0' for '--nnz <NNZ>': expected a whole number of at least 1"),
    ] {
        let mut a = base.to_vec();
        a.extend(extra);
        let out = ifp(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.lines().count() == 1 && err.contains(want), "{a:?}: {err}");
    }
    assert!(!out.exists(), "no output after an error");
    let o = ifp(&["gen", "kmeans", "--rows", "10", "--cols", "2", "--nnz", "3", "--out", o]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--nnz and --true-model apply to sparse-logreg"), "{err}");
}

/// Generates the LIBSVM and the dense `.npy` file of one seed in `dir`.
fn generated_pair(dir: &std::path::Path, rows: &str, features: &str, nnz: &str) -> (String, String) {
    let (svm, npy) = (dir.join("d.svm"), dir.join("d.npy"));
    for out in [&svm, &npy] {
        let args = ["gen", "sparse-logreg", "--rows", rows, "--features", features, "--nnz", nnz, "--seed", "9"];
        let mut a = args.to_vec();
        a.extend(["--out", out.to_str().unwrap()]);
        ifp_ok(&a);
    }
    (svm.to_str().unwrap().to_string(), npy.to_str().unwrap().to_string())
}

#[test]
fn dense_and_sparse_inputs_give_the_same_model_in_threads_and_worker_processes() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy) = generated_pair(d.path(), "3000", "400", "10");
    let job = ["run", "logreg", "--learning-rate", "0.5", "--l2", "0.01", "--tol", "0", "--max-iter", "15"];
    let run = |extra: &[&str]| {
        let mut a = job.to_vec();
        a.extend(extra);
        run_json(d.path(), &a)
    };
    let dense = run(&["--data", &npy, "--functions", "1", "--inner", "1"]);
    let redis = RedisServer::start(None);
    let url = redis.url();
    for extra in [
        vec!["--functions", "3", "--inner", "2"],
        vec!["--functions", "1", "--inner", "1", "--features", "400"],
        vec!["--functions", "3", "--inner", "1", "--redis", &url],
    ] {
        let mut a = vec!["--data", svm.as_str()];
        a.extend(&extra);
        let sparse = run(&a);
        assert_eq!(sparse["config"]["rows"], 3000, "{extra:?}");
        assert_eq!(sparse["config"]["cols"], 400, "{extra:?}: the width found by a pass, or given");
        for field in ["weights", "intercept"] {
            let (got, want) = (floats(&sparse["model"][field]), floats(&dense["model"][field]));
            assert_close(&format!("{field} with {extra:?}"), &got, &want, 0.0, 1e-9);
        }
        assert!(floats(&sparse["model"]["weights"]).iter().any(|w| w.abs() > 1e-3), "the model moved");
    }
}

#[test]
fn bad_libsvm_input_gets_one_line_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    let good = "1 1:0.5 3:2\n0 2:1\n";
    let out = d.path().join("r.json");
    for (text, extra, want) in [
        (format!("{good}1 2:1 oops\n"), vec![], "line 3: 'oops' is not index:value"),
        (format!("{good}0 2:1 7:1\n"), vec!["--features", "5"], "line 3: feature index 7 is beyond --features 5"),
        (format!("{good}\n# c\n1 4:1 2:1\n"), vec![], "line 5: feature indices must increase within a row: 2 after 4"),
        (format!("{good}yes 1:1\n"), vec![], "line 3: label 'yes' is not a number"),
        (
            format!("{good}1 0:1\n"),
            vec![],
            "line 3: feature index 0 is below the first index 1 (a 0-based file: give --zero-based)",
        ),
        (good.to_string(), vec!["--hash-features", "1000"], "1000 is not a power of two (give 2^K)"),
        (good.to_string(), vec!["--label-col", "none"], "in LIBSVM data"),
    ] {
        let p = d.path().join("bad.svm");
        std::fs::write(&p, &text).unwrap();
        let mut a = vec!["run", "logreg", "--data", p.to_str().unwrap(), "--functions", "2", "--out"];
        a.push(out.to_str().unwrap());
        a.extend(&extra);
        let o = ifp(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.trim().lines().count() == 1 && err.contains(want),
            "{extra:?} {want}: {err}"
        );
        assert!(!out.exists(), "no result after an error ({want})");
    }
    let csv = d.path().join("x.csv");
    std::fs::write(&csv, "1,2,1\n3,4,0\n").unwrap();
    let o = ifp(&["run", "logreg", "--data", csv.to_str().unwrap(), "--zero-based"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("apply to LIBSVM data"), "{err}");
    let svm = d.path().join("ok.svm");
    std::fs::write(&svm, good).unwrap();
    let o = ifp(&["run", "kmeans", "--data", svm.to_str().unwrap(), "--k", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.trim().lines().count() == 1 && err.contains("sparse"), "{err}");
}

#[test]
fn sparse_partials_travel_as_index_value_pairs_over_redis() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy) = generated_pair(d.path(), "600", "50000", "5");
    let distinct = {
        let rows = read_file(std::path::Path::new(&svm), LibsvmFormat::default()).unwrap();
        let mut seen: Vec<u32> = rows.indices.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len() as f64
    };
    // A partial's non-zeros: at most one per feature seen, the intercept's sum, loss and rows.
    let (most_nonzeros, dense_bytes) = (distinct + 3.0, 1.0 + 8.0 * 50_003.0);
    let redis = RedisServer::start(None);
    let url = redis.url();
    let mut by_input = Vec::new();
    for data in [&svm, &npy] {
        for functions in ["1", "3"] {
            let a = ["run", "logreg", "--data", data, "--functions", functions, "--max-iter", "3", "--redis", &url];
            let r = run_json(d.path(), &a);
            let workers = r["sync"]["workers"].as_array().unwrap().clone();
            let bytes: Vec<f64> = workers.iter().map(|w| w["partial_bytes_per_iteration"].as_f64().unwrap()).collect();
            for &b in &bytes {
                // (index u32, value f64) pairs and a 5-byte header: at most 2x 12 bytes per non-zero.
                assert!(b >= 5.0 + 12.0 * 3.0 && b <= 5.0 + 12.0 * most_nonzeros, "{functions} functions: {bytes:?}");
                assert!(b <= 2.0 * 12.0 * most_nonzeros && b < dense_bytes / 10.0, "{bytes:?} vs dense {dense_bytes}");
            }
            // Every feature seen is a non-zero of some function's partial (but for exact
            // cancellations, which are rare).
            let sent: f64 = bytes.iter().map(|b| (b - 5.0) / 12.0).sum();
            assert!(sent >= 0.9 * distinct, "{functions} functions sent {sent} entries for {distinct} features");
            let per_iteration = &r["sync"]["iterations"][0]["partial_bytes"];
            assert_eq!(per_iteration.as_array().unwrap().len(), bytes.len());
            by_input.push((functions, bytes));
        }
    }
    // What travels depends on the values, not on whether they came from a dense file (with one
    // function: with more, a LIBSVM file is split by bytes and a .npy by rows).
    assert_eq!(by_input[0], by_input[2]);
}

#[test]
fn the_sparse_linreg_plugin_gives_the_dense_example_s_model_on_libsvm_data() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy) = generated_pair(d.path(), "2000", "300", "8");
    let run = |kernel: &str, data: &str, extra: &[&str]| {
        let mut a = vec!["run", "--kernel", kernel, "--data", data, "--param", "learning-rate=0.2", "--param", "tol=0"];
        a.extend(["--max-iter", "20"]);
        a.extend(extra);
        run_json(d.path(), &a)
    };
    let want = run(plugins::LINREG, &npy, &["--label-col", "last", "--functions", "1"]);
    assert_eq!(want["kernel_contract"], "ifp:kernel@0.1.0");
    for (data, extra) in
        [(&svm, vec!["--functions", "3", "--inner", "2"]), (&npy, vec!["--label-col", "last", "--functions", "2"])]
    {
        let got = run(plugins::LINREG_SPARSE, data, &extra);
        assert_eq!(got["kernel_contract"], "ifp:kernel@0.2.0");
        for field in ["weights", "intercept"] {
            let (g, w) = (floats(&got["model"][field]), floats(&want["model"][field]));
            assert_close(&format!("{field} from {data} with {extra:?}"), &g, &w, 0.0, 1e-9);
        }
        assert!((got["loss"].as_f64().unwrap() - want["loss"].as_f64().unwrap()).abs() < 1e-12);
    }
    // The 0.1.0 example takes dense rows only: one line saying so.
    let o = ifp(&["run", "--kernel", plugins::LINREG, "--data", &svm]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.trim().lines().count() == 1, "{err}");
    assert!(err.contains("does not export ifp:kernel/sparse@0.2.0, so it takes dense rows only"), "{err}");
}

#[test]
fn libsvm_in_s3_reads_every_row_once_and_trains_the_local_file_s_model() {
    use ifp_host::data::libsvm::LibsvmFile;
    use ifp_host::data::object::S3Url;
    use ifp_host::data::s3::ObjectData;
    let s = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let (svm, _) = generated_pair(d.path(), "3000", "400", "10");
    let bytes = std::fs::read(&svm).unwrap();
    let url = s.put("data/d.svm", &bytes);
    // Every row exactly once, in order, for any number of parts.
    let want = read_file(std::path::Path::new(&svm), LibsvmFormat::default()).unwrap();
    let format = LibsvmFormat { features: Some(400), ..LibsvmFormat::default() };
    let object = ObjectData::open_text(&s.store, &S3Url::parse(&url).unwrap(), None).unwrap();
    let file = LibsvmFile::open_object(object, format).unwrap();
    let size = bytes.len() as u64;
    for parts in [1u64, 2, 3, 7] {
        let mut got = ifp_host::data::libsvm::SparseRows::default();
        for i in 0..parts {
            let mut r = file.open_part(size * i / parts..size * (i + 1) / parts).unwrap();
            r.read_into(&mut got, usize::MAX).unwrap();
        }
        assert_eq!((got.labels, got.indices), (want.labels.clone(), want.indices.clone()), "{parts} parts");
    }
    // The model: the local file's, in threads and in worker processes over Redis.
    let job = ["run", "logreg", "--features", "400", "--learning-rate", "0.5", "--tol", "0", "--max-iter", "10"];
    let run = |data: &str, extra: &[&str]| {
        let mut a = job.to_vec();
        a.extend(["--data", data]);
        a.extend(extra);
        s.run_json(d.path(), &a)
    };
    let local = run(&svm, &["--functions", "3", "--inner", "2"]);
    let redis = RedisServer::start(None);
    let redis_url = redis.url();
    for extra in [vec!["--functions", "3", "--inner", "2"], vec!["--functions", "2", "--redis", &redis_url]] {
        let got = run(&url, &extra);
        assert_eq!(got["config"]["rows"], 3000, "{extra:?}");
        for field in ["weights", "intercept"] {
            let (g, w) = (floats(&got["model"][field]), floats(&local["model"][field]));
            assert_close(&format!("{field} from S3 with {extra:?}"), &g, &w, 0.0, 1e-12);
        }
    }
    // The width must be given for S3 (finding it would read the object once more), and a bad
    // line is named by its number.
    let o = s.ifp(&["run", "logreg", "--data", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.trim().lines().count() == 1 && err.contains("give --features N"), "{err}");
    let bad = s.put("data/bad.svm", b"1 1:1\n0 2:1\n1 3:one\n");
    let o = s.ifp(&["run", "logreg", "--data", &bad, "--features", "5", "--functions", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.trim().lines().count() == 1
            && err.contains("data/bad.svm line 3: value 'one' of feature 3 is not a number"),
        "{err}"
    );
}

#[test]
fn hashed_features_train_the_model_of_the_hashed_dense_rows() {
    use npyz::WriterBuilder as _;
    let d = tempfile::tempdir().unwrap();
    let (svm, _) = generated_pair(d.path(), "1500", "5000", "12");
    // The rows as the hashing reader sees them, written dense with the label last.
    let format = LibsvmFormat { hash_bits: Some(8), ..LibsvmFormat::default() };
    let rows = read_file(std::path::Path::new(&svm), format).unwrap();
    assert_eq!(rows.width, 256);
    let dense: Vec<f32> =
        rows.to_dense().chunks(256).zip(&rows.labels).flat_map(|(x, &y)| x.iter().copied().chain([y])).collect();
    let npy = d.path().join("hashed.npy");
    let mut buf = Vec::new();
    let mut w =
        npyz::WriteOptions::<f32>::new().default_dtype().shape(&[1500, 257]).writer(&mut buf).begin_nd().unwrap();
    w.extend(dense.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(&npy, buf).unwrap();
    let job = ["run", "logreg", "--learning-rate", "0.5", "--tol", "0", "--max-iter", "10"];
    let run = |extra: &[&str]| {
        let mut a = job.to_vec();
        a.extend(extra);
        run_json(d.path(), &a)
    };
    let want = run(&["--data", npy.to_str().unwrap()]);
    for hashing in ["2^8", "256"] {
        let got = run(&["--data", &svm, "--hash-features", hashing, "--functions", "2", "--inner", "2"]);
        assert_eq!(got["config"]["cols"], 256);
        assert_close(
            &format!("--hash-features {hashing}"),
            &floats(&got["model"]["weights"]),
            &floats(&want["model"]["weights"]),
            0.0,
            1e-9,
        );
    }
}

#[test]
fn mini_batches_of_sparse_rows_are_the_dense_file_s_batches() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy) = generated_pair(d.path(), "3000", "300", "8");
    let job =
        ["run", "logreg", "--batch-size", "256", "--max-iter", "30", "--optimizer", "adam", "--learning-rate", "0.05"];
    let run = |extra: &[&str]| {
        let mut a = job.to_vec();
        a.extend(extra);
        run_json(d.path(), &a)
    };
    let want = run(&["--data", &npy, "--functions", "1", "--inner", "1"]);
    let got = run(&["--data", &svm, "--features", "300", "--functions", "3", "--inner", "2"]);
    assert_close(
        "mini-batch Adam weights",
        &floats(&got["model"]["weights"]),
        &floats(&want["model"]["weights"]),
        0.0,
        1e-9,
    );
    assert_eq!(got["iterations"], 30);
}

#[test]
fn predictions_and_held_out_accuracy_on_libsvm_data_are_those_of_the_dense_rows() {
    let d = tempfile::tempdir().unwrap();
    let (svm, npy) = generated_pair(d.path(), "1200", "200", "6");
    let (train, model) = (d.path().join("train.json"), d.path().join("m.json"));
    let common = ["run", "logreg", "--learning-rate", "1", "--max-iter", "30", "--tol", "0", "--quiet"];
    let mut a = common.to_vec();
    a.extend(["--data", &svm, "--test-data", &svm, "--features", "200", "--out", model.to_str().unwrap()]);
    ifp_ok(&a);
    let mut a = common.to_vec();
    a.extend(["--data", &npy, "--test-data", &npy, "--out", train.to_str().unwrap()]);
    ifp_ok(&a);
    let (mut sparse, mut dense) = (load_json(&model), load_json(&train));
    for r in [&mut sparse, &mut dense] {
        r["accuracy"]["test"]["data"] = serde_json::Value::Null;
    }
    assert_eq!(sparse["accuracy"]["test"], dense["accuracy"]["test"], "held-out counts");
    assert_eq!(sparse["accuracy"]["test"]["rows"], 1200);
    let predict = |data: &str, out: &str| {
        let o = d.path().join(out);
        let a = ["predict", "--model", model.to_str().unwrap(), "--data", data, "--out", o.to_str().unwrap()];
        ifp_ok(&a);
        std::fs::read_to_string(o).unwrap()
    };
    let (from_sparse, from_dense) = (predict(&svm, "s.csv"), predict(&npy, "d.csv"));
    assert_eq!(from_sparse.lines().count(), 1200);
    for (s, t) in from_sparse.lines().zip(from_dense.lines()) {
        let parse = |l: &str| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>();
        assert_close("class and probabilities", &parse(s), &parse(t), 0.0, 1e-12);
    }
    let bad =
        ["predict", "--model", model.to_str().unwrap(), "--data", &svm, "--out", "/tmp/x.csv", "--features", "100"];
    let o = ifp(&bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--features 100, but the model has 200 features"), "{err}");
}
