//! LIBSVM input and `ifp gen sparse-logreg`: the generated text, read back by our parser,
//! equals the dense file of the same seed (scikit-learn's `load_svmlight_file` is checked
//! against the same pair in `python/tests/test_libsvm.py`); bad generator arguments get one
//! line.

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
