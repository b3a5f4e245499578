//! Data in S3 against a real S3-compatible server (`s3s-fs`, started per test on 127.0.0.1
//! and a free port, killed when the test ends): every row read exactly once for any number of
//! functions and inner workers (CSV with uneven lines, with and without a trailing newline;
//! float32 and float64 `.npy`), models equal to those from the same data as local files,
//! `ifp gen --out s3://…` uploads, and one clear line for each kind of bad object.

use ifp_testkit::*;

use std::path::Path;
use std::process::{Command, Output};

use ifp_host::data::object::S3Url;
use ifp_host::data::s3::ObjectData;
use ifp_host::data::{CsvFormat, LabelCol};
use npyz::WriterBuilder as _;

/// `ifp run … --out FILE --quiet` on local files, which must succeed; returns the result JSON.
fn run_local_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = dir.join("local-result.json");
    let mut a = args.to_vec();
    a.extend(["--out", out.to_str().unwrap(), "--quiet"]);
    let o = Command::new(ifp_bin()).args(&a).output().expect("run ifp");
    assert!(o.status.success(), "ifp {a:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    load_json(&out)
}

/// A CSV of `n` rows `i, i/2` with very uneven line lengths (padding zeros and spaces), one
/// blank line, and CRLF on some lines.
fn uneven_csv(n: u64, trailing_newline: bool) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        let pad = "0".repeat(((i * 7919) % 97) as usize);
        let spaces = " ".repeat(((i * 31) % 5) as usize);
        s.push_str(&format!("{spaces}{i}.{pad},{}", i as f64 / 2.0));
        if i == n / 3 {
            s.push('\n');
        }
        s.push_str(if i % 10 == 3 { "\r\n" } else { "\n" });
    }
    if !trailing_newline {
        s.pop();
    }
    s.into_bytes()
}

fn npy_bytes<T: npyz::AutoSerialize>(rows: u64, cols: u64, f: impl Fn(u64, u64) -> T) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w =
        npyz::WriteOptions::<T>::new().default_dtype().shape(&[rows, cols]).writer(&mut buf).begin_nd().unwrap();
    for r in 0..rows {
        for c in 0..cols {
            w.push(&f(r, c)).unwrap();
        }
    }
    w.finish().unwrap();
    buf
}

/// Reads every part of every function and inner worker of `data` and returns the first
/// column of the rows, in order.
fn first_column_of_all_parts(data: &ObjectData, workers: u64, inners: u64) -> Vec<f32> {
    let mut got = Vec::new();
    for w in 0..workers {
        for i in 0..inners {
            let mut p = data.open_part(&data.part(w, workers, i, inners)).unwrap();
            while let Some(rows) = p.next_rows(7, LabelCol::None).unwrap() {
                got.extend(rows.features.chunks(rows.cols).map(|r| r[0]));
            }
        }
    }
    got
}

#[test]
fn csv_parts_read_every_row_exactly_once_for_any_split() {
    let s = S3Server::start();
    let n = 500u64;
    for trailing in [true, false] {
        let key = format!("uneven-{trailing}.csv");
        let url = s.put(&key, &uneven_csv(n, trailing));
        let data = ObjectData::open(&s.store, &S3Url::parse(&url).unwrap(), None).unwrap();
        assert_eq!((data.rows(), data.cols()), (None, 2), "{key}: shape (a CSV is not counted at open)");
        let want: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for workers in 1..=7 {
            for inners in 1..=3 {
                let got = first_column_of_all_parts(&data, workers, inners);
                assert_eq!(got, want, "{key}: {workers} workers x {inners} inner");
            }
        }
    }
    // More parts than lines: most parts fall inside one line and hold none.
    let url = s.put("tiny.csv", b"1,2\n3,4\n5,6");
    let data = ObjectData::open(&s.store, &S3Url::parse(&url).unwrap(), None).unwrap();
    for workers in 1..=7 {
        assert_eq!(first_column_of_all_parts(&data, workers, 2), vec![1.0, 3.0, 5.0], "tiny.csv, {workers} workers");
    }
}

/// A header line and another delimiter: the bytes after the header are split, so every data
/// row is read once and the header never, for any split (cut points inside the header too).
#[test]
fn csv_parts_with_a_header_and_a_delimiter_read_every_row_exactly_once() {
    let s = S3Server::start();
    let format = CsvFormat { header: true, delimiter: b';' };
    let n = 300u64;
    let body = String::from_utf8(uneven_csv(n, false)).unwrap().replace(',', ";");
    for header in ["first;second\n", "\n\r\na much longer header line;than any row of the data\r\n"] {
        let url = s.put("header.csv", format!("{header}{body}").as_bytes());
        let data = ObjectData::open_as(&s.store, &S3Url::parse(&url).unwrap(), None, format).unwrap();
        assert_eq!(data.cols(), 2, "{header:?}: columns of the first data row");
        let want: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for workers in 1..=7 {
            for inners in 1..=3 {
                let got = first_column_of_all_parts(&data, workers, inners);
                assert_eq!(got, want, "{header:?}: {workers} workers x {inners} inner");
            }
        }
    }
    let url = s.put("short.csv", b"a;b\n1;2\n3;4");
    let data = ObjectData::open_as(&s.store, &S3Url::parse(&url).unwrap(), None, format).unwrap();
    for workers in 1..=9 {
        assert_eq!(first_column_of_all_parts(&data, workers, 2), vec![1.0, 3.0], "short.csv, {workers} workers");
    }
    // Rows in errors are counted after the header.
    let url = s.put("bad.csv", b"a;b\n1;2\n3;x\n");
    let data = ObjectData::open_as(&s.store, &S3Url::parse(&url).unwrap(), None, format).unwrap();
    let e = data.read_all().unwrap_err().to_string();
    assert!(e.ends_with("bad.csv row 2 column 2: 'x' is not a number"), "{e}");
    let url = s.put("only-header.csv", b"a;b\n");
    let e = ObjectData::open_as(&s.store, &S3Url::parse(&url).unwrap(), None, format).unwrap_err().to_string();
    assert!(e.ends_with("only-header.csv holds no rows"), "{e}");
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// `--header --delimiter` (on S3 with several functions, on a local file, in threads and in
/// worker processes) give the model
/// and labels of the same numbers as a plain CSV.
#[test]
fn a_csv_with_header_and_delimiter_trains_the_model_of_the_plain_csv() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let plain = fixture("blobs.csv");
    let text = std::fs::read_to_string(&plain).unwrap();
    let tabbed = dir.path().join("blobs-tab.csv");
    std::fs::write(&tabbed, format!("x\ty\tz\n{}", text.replace(',', "\t"))).unwrap();
    let url = s.put("blobs-semicolon.csv", format!("x;y;z\n{}", text.replace(',', ";")).as_bytes());
    let kmeans = ["run", "kmeans", "--k", "4", "--init", "kmeans++", "--seed", "5"];
    let with = |data: &str, labels: &Path, extra: &[&str]| -> Vec<String> {
        let mut a = kmeans.to_vec();
        a.extend(["--data", data, "--labels-out", labels.to_str().unwrap()]);
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    let want_labels = dir.path().join("plain.npy");
    let want = run_local_json(dir.path(), &strs(&with(plain.to_str().unwrap(), &want_labels, &[])));
    // With Redis, the functions are `ifp-worker` processes: the layout travels in their task.
    let redis = RedisServer::start(None);
    let redis_url = redis.url();
    let cases = [
        (tabbed.to_str().unwrap(), vec!["--header", "--delimiter", "tab"]),
        (tabbed.to_str().unwrap(), vec!["--header", "--delimiter", "tab", "--workers", "2", "--redis", &redis_url]),
        (url.as_str(), vec!["--header", "--delimiter", ";", "--workers", "3", "--inner", "2"]),
    ];
    for (i, (data, extra)) in cases.iter().enumerate() {
        let labels = dir.path().join(format!("labels-{i}.npy"));
        let got = s.run_json(dir.path(), &strs(&with(data, &labels, extra)));
        assert_eq!(got["config"]["rows"], want["config"]["rows"], "{data}: rows");
        assert_eq!(got["iterations"], want["iterations"], "{data}: iterations");
        for (name, v) in got["model"].as_object().unwrap() {
            assert_close(&format!("{data}: {name}"), &floats(v), &floats(&want["model"][name]), 1e-9, 1e-12);
        }
        assert_eq!(std::fs::read(&labels).unwrap(), std::fs::read(&want_labels).unwrap(), "{data}: labels");
    }
}

#[test]
fn npy_parts_read_every_row_exactly_once_for_f32_and_f64() {
    let s = S3Server::start();
    let n = 1001u64;
    let want: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let f32_url = s.put("rows32.npy", &npy_bytes(n, 3, |r, c| (r * 10u64.pow(c as u32)) as f32));
    let f64_url = s.put("rows64.npy", &npy_bytes(n, 3, |r, c| (r * 10u64.pow(c as u32)) as f64));
    for url in [f32_url, f64_url] {
        let data = ObjectData::open(&s.store, &S3Url::parse(&url).unwrap(), None).unwrap();
        assert_eq!((data.rows(), data.cols()), (Some(n), 3), "{url}: shape");
        for workers in 1..=7 {
            for inners in 1..=3 {
                assert_eq!(
                    first_column_of_all_parts(&data, workers, inners),
                    want,
                    "{url}: {workers} workers x {inners} inner"
                );
            }
        }
        let picked = data.read_rows_at(&[0, 5, 6, 999, 1000], LabelCol::Last).unwrap();
        assert_eq!(picked.labels, vec![0.0, 500.0, 600.0, 99900.0, 100000.0], "{url}: sampled rows");
    }
}

/// Runs `args` on a local fixture and on the same bytes in S3 for each worker count; the
/// models, iterations and per-row labels must agree.
fn check_same_model_as_local(s: &S3Server, fixture_name: &str, args: &[&str], workers: &[u32], labels: bool) {
    let dir = tempfile::tempdir().unwrap();
    let local = fixture(fixture_name);
    let url = s.put(fixture_name, &std::fs::read(&local).unwrap());
    let local_labels = dir.path().join("local.npy");
    let s3_labels = dir.path().join("s3.npy");
    let mut la = vec!["run"];
    la.extend(args);
    la.extend(["--data", local.to_str().unwrap(), "--workers", "1", "--inner", "1"]);
    if labels {
        la.extend(["--labels-out", local_labels.to_str().unwrap()]);
    }
    let want = run_local_json(dir.path(), &la);
    for w in workers {
        let w = w.to_string();
        let mut a = vec!["run"];
        a.extend(args);
        a.extend(["--data", &url, "--workers", &w, "--inner", "2"]);
        if labels {
            a.extend(["--labels-out", s3_labels.to_str().unwrap()]);
        }
        let got = s.run_json(dir.path(), &a);
        let what = format!("{fixture_name} {args:?} with {w} workers");
        assert_eq!(got["iterations"], want["iterations"], "{what}: iterations");
        assert_eq!(got["config"]["rows"], want["config"]["rows"], "{what}: rows");
        let rows: u64 = got["workers"].as_array().unwrap().iter().map(|r| r["rows"].as_u64().unwrap()).sum();
        assert_eq!(rows, want["config"]["rows"].as_u64().unwrap(), "{what}: rows loaded by the workers");
        for (name, v) in got["model"].as_object().unwrap() {
            assert_close(&format!("{what}: {name}"), &floats(v), &floats(&want["model"][name]), 1e-9, 1e-12);
        }
        if labels {
            assert_eq!(std::fs::read(&s3_labels).unwrap(), std::fs::read(&local_labels).unwrap(), "{what}: labels");
        }
    }
}

#[test]
fn kmeans_from_s3_equals_local_file_for_1_to_7_workers() {
    let s = S3Server::start();
    let all: Vec<u32> = (1..=7).collect();
    for f in ["blobs.npy", "blobs.csv"] {
        check_same_model_as_local(&s, f, &["kmeans", "--k", "4", "--init", "first"], &all, true);
    }
    // kmeans++ reads a sample of rows by index.
    check_same_model_as_local(
        &s,
        "blobs.npy",
        &["kmeans", "--k", "4", "--init", "kmeans++", "--seed", "3"],
        &[3],
        true,
    );
    check_same_model_as_local(
        &s,
        "blobs.csv",
        &["kmeans", "--k", "4", "--init", "kmeans++", "--seed", "3"],
        &[5],
        true,
    );
}

#[test]
fn logreg_from_s3_equals_local_file() {
    let s = S3Server::start();
    for f in ["logreg.npy", "logreg.csv"] {
        check_same_model_as_local(&s, f, &["logreg", "--learning-rate", "0.5", "--max-iter", "30"], &[1, 4, 7], false);
    }
}

/// `--test-data` from S3 (CSV, streamed as one object) on the very rows the model was trained
/// on (.npy from S3): its counts are the ones the functions made over their shards.
#[test]
fn held_out_accuracy_reads_test_data_from_s3() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let train = s.put("softmax.npy", &std::fs::read(fixture("softmax.npy")).unwrap());
    let test = s.put("softmax.csv", &std::fs::read(fixture("softmax.csv")).unwrap());
    let args = ["run", "logreg", "--data", &train, "--classes", "5", "--learning-rate", "1", "--max-iter", "20"];
    let r = s.run_json(dir.path(), &[&args[..], &["--workers", "3", "--test-data", &test]].concat());
    let (got, want) = (&r["accuracy"]["test"], &r["accuracy"]["train"]);
    assert_eq!(got["classes"], want["classes"]);
    assert_eq!(got["rows"], 3000);
    assert_eq!(got["data"], test.as_str());
}

#[test]
fn initial_centroids_from_s3() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let blobs = fixture("blobs.npy");
    for c in ["init_centroids.npy", "init_centroids.csv"] {
        let local = fixture(c);
        let url = s.put(c, &std::fs::read(&local).unwrap());
        let want = run_local_json(
            dir.path(),
            &["run", "kmeans", "--data", blobs.to_str().unwrap(), "--init-centroids", local.to_str().unwrap()],
        );
        let got =
            s.run_json(dir.path(), &["run", "kmeans", "--data", blobs.to_str().unwrap(), "--init-centroids", &url]);
        assert_close(c, &floats(&got["model"]["centroids"]), &floats(&want["model"]["centroids"]), 1e-12, 0.0);
    }
}

#[test]
fn gen_uploads_to_s3_the_same_bytes_as_a_local_file() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // 150,000 x 16 float32 is 9.6 MB: a multipart upload (8 MiB parts).
    for (kind, rows, name) in [("kmeans", "150000", "big.npy"), ("logreg", "1000", "small.csv")] {
        let local = dir.path().join(name);
        let o = Command::new(ifp_bin())
            .args(["gen", kind, "--rows", rows, "--cols", "16", "--seed", "4", "--out", local.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "gen to a local file: {}", String::from_utf8_lossy(&o.stderr));
        let o = s.ifp(&["gen", kind, "--rows", rows, "--cols", "16", "--seed", "4", "--out", &S3Server::url(name)]);
        assert!(o.status.success(), "gen to S3: {}", String::from_utf8_lossy(&o.stderr));
        assert!(s.get(name) == std::fs::read(&local).unwrap(), "{name}: uploaded bytes differ from the local file");
    }
}

/// Asserts that `o` failed with exactly one line on stderr containing every one of `parts`.
fn assert_one_line_error(o: &Output, parts: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected a failure, got success; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got: {err}");
    for p in parts {
        assert!(err.contains(p), "expected '{p}' in: {err}");
    }
}

#[test]
fn bad_objects_give_one_clear_line() {
    let s = S3Server::start();
    let blobs = std::fs::read(fixture("blobs.npy")).unwrap();
    let run = |url: &str, extra: &[&str]| {
        let mut a = vec!["run", "kmeans", "--k", "2", "--quiet", "--data", url];
        a.extend(extra);
        s.ifp(&a)
    };

    assert_one_line_error(
        &run("s3://no-such-bucket/x.npy", &[]),
        &["s3://no-such-bucket/x.npy", "bucket 'no-such-bucket' does not exist"],
    );
    assert_one_line_error(
        &run(&S3Server::url("missing.npy"), &[]),
        &["s3://data/missing.npy", "no such key 'missing.npy'"],
    );
    let o = s.ifp(&["gen", "kmeans", "--rows", "10", "--cols", "2", "--out", "s3://no-such-bucket/g.npy"]);
    assert_one_line_error(&o, &["s3://no-such-bucket/g.npy: bucket 'no-such-bucket' does not exist"]);

    let url = s.put("blobs.npy", &blobs);
    let o = s.ifp_with(&["run", "kmeans", "--k", "2", "--quiet", "--data", &url], "wrong-secret");
    assert_one_line_error(&o, &["s3://data/blobs.npy", "access denied"]);

    // Not the format the name says.
    let url = s.put("text.npy", b"1,2,3\n4,5,6\n");
    assert_one_line_error(&run(&url, &[]), &["malformed .npy file s3://data/text.npy", "magic"]);
    let url = s.put("binary.csv", &blobs);
    assert_one_line_error(&run(&url, &[]), &["s3://data/binary.csv row 1 column 1", "is not a number"]);

    // Truncated: the header promises more rows than the object holds.
    let url = s.put("cut.npy", &blobs[..blobs.len() - 100]);
    assert_one_line_error(&run(&url, &[]), &["s3://data/cut.npy is truncated", "60128 bytes", "60028 bytes"]);

    // A bad cell and a short row deep in the object, read by a later worker.
    let mut rows: Vec<String> = (0..400).map(|i| format!("{i},{}.25,{}", i * 3, i % 7)).collect();
    rows[317] = "317,x9,1".into();
    let url = s.put("cell.csv", rows.join("\n").as_bytes());
    assert_one_line_error(
        &run(&url, &["--workers", "3"]),
        &["s3://data/cell.csv row 318 column 2: 'x9' is not a number"],
    );
    rows[317] = "317,951.25".into();
    let url = s.put("ragged.csv", rows.join("\n").as_bytes());
    assert_one_line_error(&run(&url, &["--workers", "3"]), &["s3://data/ragged.csv row 318 has 2 columns, expected 3"]);
}
