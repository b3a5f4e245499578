//! Bad input through the real `ifp` binary: each case must exit non-zero with exactly one line
//! on stderr naming what is wrong and the offending value, never panic, and leave no output
//! file behind.

use ifp_testkit::*;

use std::io::Write;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], values: &[T]) -> Vec<u8> {
    use npyz::WriterBuilder as _;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut buf).begin_nd().unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    buf
}

/// Runs `ifp args... --out OUT --labels-out LABELS` and checks the failure contract.
fn fails_with(dir: &Path, args: &[&str], expected: &str) {
    let out = dir.join("result.json");
    let labels = dir.join("labels.csv");
    let mut a = args.to_vec();
    let (o, l) = (out.to_str().unwrap().to_string(), labels.to_str().unwrap().to_string());
    if args.first() == Some(&"run") && args.get(1) == Some(&"kmeans") {
        a.extend(["--out", &o, "--labels-out", &l]);
    } else if args.first() == Some(&"run") {
        a.extend(["--out", &o]);
    }
    let line = failure_line(&a);
    assert!(line.contains(expected), "{args:?}: {line:?} does not contain {expected:?}");
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{args:?}: {line:?} says {p:?} twice");
    }
    assert!(!out.exists() && !labels.exists(), "{args:?} left an output file behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ifp-"))
        .collect();
    assert!(leftovers.is_empty(), "{args:?} left temporary files: {leftovers:?}");
}

#[test]
fn missing_and_unreadable_files() {
    let d = tempfile::tempdir().unwrap();
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", "/nonexistent/x.npy", "--k", "2"],
        "cannot read /nonexistent/x.npy",
    );
    let dir_as_file = d.path().join("dir.csv");
    std::fs::create_dir(&dir_as_file).unwrap();
    fails_with(d.path(), &["run", "kmeans", "--data", dir_as_file.to_str().unwrap(), "--k", "2"], "dir.csv");
    let txt = write(d.path(), "x.txt", b"1,2\n");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", txt.to_str().unwrap(), "--k", "1"],
        "expected a .npy or .csv extension",
    );
}

#[test]
fn malformed_npy_and_unsupported_dtype() {
    let d = tempfile::tempdir().unwrap();
    let bad = write(d.path(), "bad.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage");
    fails_with(d.path(), &["run", "kmeans", "--data", bad.to_str().unwrap(), "--k", "1"], "malformed .npy file");
    let ints = write(d.path(), "ints.npy", &npy_bytes::<i32>(&[2, 2], &[1, 2, 3, 4]));
    fails_with(d.path(), &["run", "kmeans", "--data", ints.to_str().unwrap(), "--k", "1"], "unsupported dtype '<i4'");
    let one_d = write(d.path(), "flat.npy", &npy_bytes::<f32>(&[4], &[1.0, 2.0, 3.0, 4.0]));
    fails_with(d.path(), &["run", "kmeans", "--data", one_d.to_str().unwrap(), "--k", "1"], "1-D array");
    let mut cut = npy_bytes::<f32>(&[4, 2], &[1.0; 8]);
    cut.truncate(cut.len() - 5);
    let cut = write(d.path(), "cut.npy", &cut);
    fails_with(d.path(), &["run", "kmeans", "--data", cut.to_str().unwrap(), "--k", "1"], "is truncated");
}

#[test]
fn bad_csv_cells_rows_and_values() {
    let d = tempfile::tempdir().unwrap();
    let nan_cell = write(d.path(), "cell.csv", b"1,2\n3,abc\n5,6\n");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", nan_cell.to_str().unwrap(), "--k", "1"],
        "cell.csv row 2 column 2: 'abc' is not a number",
    );
    let ragged = write(d.path(), "ragged.csv", b"1,2\n3,4\n5\n");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", ragged.to_str().unwrap(), "--k", "1"],
        "ragged.csv row 3 has 1 columns, expected 2",
    );
    let nan = write(d.path(), "nan.csv", b"1,2\nNaN,4\n");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", nan.to_str().unwrap(), "--k", "1"],
        "nan.csv row 2 column 1: value NaN is not finite",
    );
    let inf = write(d.path(), "inf.npy", &npy_bytes::<f64>(&[2, 1], &[1.0, f64::INFINITY]));
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", inf.to_str().unwrap(), "--k", "1"],
        "inf.npy row 2 column 1: value inf is not finite",
    );
    let empty = write(d.path(), "empty.csv", b"");
    fails_with(d.path(), &["run", "kmeans", "--data", empty.to_str().unwrap(), "--k", "1"], "empty.csv holds no rows");
    let labels = write(d.path(), "y.csv", b"1,0\n2,1\n3,2.5\n");
    fails_with(
        d.path(),
        &["run", "logreg", "--data", labels.to_str().unwrap(), "--inner", "2"],
        "loading data rows 3 to 3: kernel 'logreg' failed in shard.append: label 2.5 in row 3 of the data is not a class number (0 or 1, or 0..C-1 with --classes C)",
    );
    let binary = write(d.path(), "b.csv", b"1,0\n2,1\n3,2\n");
    fails_with(
        d.path(),
        &["run", "logreg", "--data", binary.to_str().unwrap()],
        "loading data rows 3 to 3: kernel 'logreg' failed in shard.append: label 2 in row 3 of the data is not 0 or 1: give --classes C for labels 0..C-1",
    );
}

#[test]
fn bad_parameters() {
    let d = tempfile::tempdir().unwrap();
    let blobs = fixture("blobs.npy");
    let b = blobs.to_str().unwrap();
    fails_with(d.path(), &["run", "kmeans", "--data", b, "--k", "0"], "kmeans parameter 'k' must be at least 1, got 0");
    // Without --data, before the default data set is generated with k clusters.
    fails_with(d.path(), &["run", "kmeans", "--k", "0"], "--k must be at least 1, got 0");
    fails_with(
        d.path(),
        &["gen", "kmeans", "--rows", "10", "--cols", "2", "--k", "0", "--out", "x.npy"],
        "--k must be at least 1, got 0",
    );
    fails_with(d.path(), &["run", "kmeans", "--data", b, "--k", "3001"], "'k' is 3001, more than the 3000 rows");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--k", "2", "--tol", "-1"],
        "'tol' must be a finite number >= 0, got -1",
    );
    fails_with(
        d.path(),
        &["run", "logreg", "--data", fixture("logreg.npy").to_str().unwrap(), "--learning-rate", "0"],
        "'learning-rate' must be > 0",
    );
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--learning-rate", "0.1"],
        "--learning-rate does not apply to kmeans",
    );
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--workers", "0"],
        "invalid value '0' for '--functions <FUNCTIONS>'",
    );
    fails_with(d.path(), &["run", "kmeans", "--data", b, "--functions", "0"], "0 is not in 1..=4096");
    fails_with(d.path(), &["run", "svm", "--data", b], "unknown algorithm 'svm' (builtin: kmeans, logreg)");
    fails_with(d.path(), &["run", "kmeans", "--data", b, "--frobnicate"], "unexpected argument '--frobnicate'");
    fails_with(d.path(), &["run", "kmeans", "--data", b, "--init", "best"], "invalid value 'best' for '--init");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--kmeans-algorithm", "elkan"],
        "invalid value 'elkan' for '--kmeans-algorithm",
    );
    fails_with(
        d.path(),
        &["run", "logreg", "--data", fixture("logreg.npy").to_str().unwrap(), "--kmeans-algorithm", "lloyd"],
        "--kmeans-algorithm does not apply to logreg",
    );
    let one_col = write(d.path(), "one.csv", b"1\n0\n");
    fails_with(
        d.path(),
        &["run", "logreg", "--data", one_col.to_str().unwrap()],
        "one.csv has 1 column(s); with the label in the last column it needs at least 2",
    );
}

#[test]
fn init_centroids_of_the_wrong_shape() {
    let d = tempfile::tempdir().unwrap();
    let blobs = fixture("blobs.npy");
    let b = blobs.to_str().unwrap();
    let three_cols = write(d.path(), "c3.csv", b"1,2,3\n4,5,6\n");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--init-centroids", three_cols.to_str().unwrap()],
        "c3.csv has 3 columns but the data has 5 features",
    );
    let init = fixture("init_centroids.npy");
    fails_with(
        d.path(),
        &["run", "kmeans", "--data", b, "--k", "3", "--init-centroids", init.to_str().unwrap()],
        "has 4 rows, expected k = 3",
    );
}

#[test]
fn labels_out_for_an_algorithm_without_assignments_is_refused_before_running() {
    let d = tempfile::tempdir().unwrap();
    let lr = fixture("logreg.npy");
    let labels = d.path().join("l.csv");
    let r = ifp(&["run", "logreg", "--data", lr.to_str().unwrap(), "--labels-out", labels.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--labels-out does not apply to logreg"));
    assert!(!labels.exists());
}

#[test]
fn gen_writes_reproducible_files_and_refuses_bad_arguments() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.npy");
    let b = d.path().join("b.csv");
    ifp_ok(&["gen", "kmeans", "--rows", "100", "--cols", "3", "--k", "2", "--seed", "5", "--out", a.to_str().unwrap()]);
    ifp_ok(&["gen", "kmeans", "--rows", "100", "--cols", "3", "--k", "2", "--seed", "5", "--out", b.to_str().unwrap()]);
    let x: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(&a).unwrap()).unwrap().into_vec().unwrap();
    let y: Vec<f32> = std::fs::read_to_string(&b)
        .unwrap()
        .split(['\n', ','])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(x.len(), 300);
    assert_eq!(x, y, "the npy and csv outputs of one seed hold the same values");
    // A logreg data set runs end to end from the generated file.
    let l = d.path().join("l.npy");
    ifp_ok(&["gen", "logreg", "--rows", "500", "--cols", "4", "--out", l.to_str().unwrap()]);
    let r = run_json(d.path(), &["run", "logreg", "--data", l.to_str().unwrap(), "--max-iter", "5"]);
    assert_eq!(r["config"]["cols"], 4);
    assert_eq!(r["config"]["rows"], 500);

    let bad = d.path().join("x.parquet");
    let r = ifp(&["gen", "kmeans", "--rows", "10", "--cols", "2", "--out", bad.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("expected a .npy or .csv extension"));
    let r = ifp(&["gen", "kmeans", "--rows", "0", "--cols", "2", "--out", a.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("invalid value '0' for '--rows <ROWS>': expected a whole number of at least 1"));
}
