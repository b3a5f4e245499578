//! A local CSV file is read like a CSV object in S3: each function (an `ifp-worker` process
//! synchronising through a real `redis-server`) reads its line-aligned byte range plus at
//! most a line, never the whole file to count rows; the row count comes from the functions at
//! the census. Counted with the functions' own read statistics (`bytes_fetched`).

use ifp_testkit::*;

use std::path::Path;

const FUNCTIONS: u64 = 12;
const INNER: u64 = 2;

fn gen(path: &Path) {
    let a = ["gen", "kmeans", "--rows", "60000", "--cols", "6", "--k", "5", "--seed", "7"];
    let o = ifp(&[&a[..], &["--out", path.to_str().unwrap()]].concat());
    assert!(o.status.success(), "gen: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn twelve_worker_processes_read_a_local_csv_about_once_and_give_the_single_function_model() {
    worker_bin();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (csv, npy) = (dir.path().join("x.csv"), dir.path().join("x.npy"));
    gen(&csv);
    gen(&npy);
    let job = ["run", "kmeans", "--k", "5", "--init", "kmeans++", "--seed", "3", "--max-iter", "20"];
    // The reference: one function over the same rows as an .npy (read by row numbers).
    let want = run_json(dir.path(), &[&job[..], &["--data", npy.to_str().unwrap(), "--workers", "1"]].concat());

    let (functions, inner, url) = (FUNCTIONS.to_string(), INNER.to_string(), redis.url());
    let mut a = job.to_vec();
    a.extend(["--data", csv.to_str().unwrap(), "--workers", &functions, "--inner", &inner, "--redis", &url]);
    let got = run_json(dir.path(), &a);

    let size = std::fs::metadata(&csv).unwrap().len();
    let read: u64 = got["workers"].as_array().unwrap().iter().map(|w| w["bytes_fetched"].as_u64().unwrap()).sum();
    println!(
        "x.csv: {size} bytes, {read} read by {FUNCTIONS} functions x {INNER} inner ({:.4}x)",
        read as f64 / size as f64
    );
    assert!(read >= size, "{read} bytes read, less than the file's {size}: not counted?");
    // Each part reads its range, the line crossing its end, and a few hundred bytes to find
    // its two cut points.
    assert!(read <= size + FUNCTIONS * INNER * 2048, "{read} bytes read for a {size}-byte file");
    assert_eq!(got["config"]["rows"], 60000, "the census counts every row once");
    assert_eq!(got["iterations"], want["iterations"]);
    for (field, v) in got["model"].as_object().unwrap() {
        assert_close(field, &floats(v), &floats(&want["model"][field]), 1e-9, 1e-12);
    }
}
