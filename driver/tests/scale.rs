//! Reading at scale, against a real S3-compatible server (`s3s-fs`) behind a proxy that counts
//! every request and every response byte (headers included), with the functions as
//! `ifp-worker` processes synchronising through a real `redis-server`:
//!
//! - every byte is read once: 12 functions over a CSV and over an `.npy`, k-means++ init,
//!   fetch at most 1.05x the object plus 128 KiB per function, driver included, and give the
//!   local single-function model (1e-9);
//! - a server or proxy that ignores `Range` is refused with one line;
//! - an object replaced while the job runs, an empty share (more functions than rows) give
//!   one line each.

use ifp_testkit::*;

use std::path::Path;
use std::process::{Command, Output};

/// Functions of the byte-counting test.
const FUNCTIONS: u64 = 12;

/// `ifp gen kmeans` into `path`.
fn gen(path: &Path, rows: &str, cols: &str) {
    let o = Command::new(ifp_bin())
        .args(["gen", "kmeans", "--rows", rows, "--cols", cols, "--k", "5", "--seed", "7"])
        .args(["--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "gen: {}", String::from_utf8_lossy(&o.stderr));
}

fn one_line_error(o: &Output, parts: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected a failure, got success; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got: {err}");
    for p in parts {
        assert!(err.contains(p), "expected '{p}' in: {err}");
    }
}

#[test]
fn twelve_functions_read_each_byte_once_and_give_the_local_model() {
    worker_bin();
    let s = S3Server::start();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    for name in ["x.csv", "x.npy"] {
        let local = dir.path().join(name);
        gen(&local, "60000", "6");
        let bytes = std::fs::read(&local).unwrap();
        let url = s.put(name, &bytes);
        let args = ["run", "kmeans", "--k", "5", "--init", "kmeans++", "--seed", "3", "--max-iter", "20", "--quiet"];

        let want_out = dir.path().join("local.json");
        let mut a = args.to_vec();
        a.extend(["--data", local.to_str().unwrap(), "--workers", "1", "--inner", "1"]);
        a.extend(["--out", want_out.to_str().unwrap()]);
        let o = Command::new(ifp_bin()).args(&a).output().unwrap();
        assert!(o.status.success(), "local run: {}", String::from_utf8_lossy(&o.stderr));
        let want = load_json(&want_out);

        let proxy = ByteProxy::start(s.endpoint.trim_start_matches("http://"), ProxyMode::Count);
        let got_out = dir.path().join("s3.json");
        let (workers, redis_url) = (FUNCTIONS.to_string(), redis.url());
        let mut a = args.to_vec();
        a.extend(["--data", &url, "--workers", &workers, "--inner", "1", "--redis", &redis_url]);
        a.extend(["--out", got_out.to_str().unwrap()]);
        // Parts of 1 MiB: what is counted is the data, not thousands of response heads.
        let o = s.command(&proxy.endpoint, &a).env("IFP_S3_PART_BYTES", "1048576").output().unwrap();
        assert!(o.status.success(), "{name} over S3: {}", String::from_utf8_lossy(&o.stderr));
        let got = load_json(&got_out);

        let size = bytes.len() as u64;
        let budget = size + size / 20 + 128 * 1024 * FUNCTIONS;
        let fetched = proxy.response_bytes();
        println!(
            "{name}: {size} bytes, {fetched} fetched in {} GETs ({:.3}x)",
            proxy.gets(),
            fetched as f64 / size as f64
        );
        assert!(fetched >= size, "{name}: {fetched} bytes fetched, less than the object's {size}: not counted?");
        assert!(fetched <= budget, "{name}: {fetched} bytes fetched for a {size}-byte object (budget {budget})");
        assert_eq!(got["config"]["rows"], want["config"]["rows"], "{name}: rows");
        assert_eq!(got["iterations"], want["iterations"], "{name}: iterations");
        for (field, v) in got["model"].as_object().unwrap() {
            assert_close(&format!("{name}: {field}"), &floats(v), &floats(&want["model"][field]), 1e-9, 1e-12);
        }
    }
}

#[test]
fn a_proxy_that_ignores_range_is_refused_with_one_line() {
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.npy");
    gen(&local, "2000", "3");
    let url = s.put("x.npy", &std::fs::read(&local).unwrap());
    let proxy = ByteProxy::start(s.endpoint.trim_start_matches("http://"), ProxyMode::IgnoreRange);
    let o = s.command(&proxy.endpoint, &["run", "kmeans", "--k", "2", "--quiet", "--data", &url]).output().unwrap();
    one_line_error(&o, &["s3://data/x.npy", "ignored the byte range", "without a Content-Range"]);
}

#[test]
fn an_object_replaced_during_the_job_and_an_empty_share_give_one_line() {
    worker_bin();
    let s = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.csv");
    gen(&local, "3000", "3");
    let url = s.put("x.csv", &std::fs::read(&local).unwrap());

    // The functions read with the ETag the driver saw; a task naming another version is what
    // a function sees when the object was replaced after the driver opened it.
    let task = serde_json::json!({
        "job": "replaced", "function": 0, "functions": 1, "data": url, "kernel": "kmeans",
        "params": {"k": 2}, "max_iter": 2, "s3_endpoint": s.endpoint, "data_etag": "\"not-the-etag\"",
    });
    let redis = RedisServer::start(None);
    let task_file = dir.path().join("task.json");
    std::fs::write(&task_file, task.to_string()).unwrap();
    let o = Command::new(worker_bin())
        .arg(&task_file)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("IFP_REDIS_URL", redis.url())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a replaced object must fail the function: {out}");
    assert!(out.contains("s3://data/x.csv changed while the job was reading it"), "{out}");

    // More functions than rows: the census refuses the job in one line.
    let url = s.put("tiny.csv", b"1,2\n3,4\n5,6\n");
    let o = s.ifp(&["run", "kmeans", "--k", "2", "--quiet", "--data", &url, "--workers", "4"]);
    one_line_error(&o, &["4 functions for 3 data rows", "use at most 3 functions"]);
}

/// A byte range past the end of the object (an object that shrank under a reader, or a bad
/// offset) is one line naming the object and the range.
#[test]
fn a_range_past_the_end_is_one_line() {
    let s = S3Server::start();
    let url = s.put("short.csv", b"1,2\n3,4\n");
    let u = ifp_host::data::object::S3Url::parse(&url).unwrap();
    let e = s.store.get_range(&u, 100..200, None).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("s3://data/short.csv changed while the job was reading it (bytes 100..200 are past its end"),
        "{e}"
    );
}
