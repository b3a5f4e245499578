//! `--labels-out s3://bucket/key.npy|.csv` against a real S3-compatible server (`s3s-fs`):
//! each function writes its labels as a part object, and the driver assembles the one object
//! at the key only after the job succeeded ([`S3Store::concat`]). The object equals the local
//! run's labels file; a failing job leaves nothing (no object at the key, no part); an
//! unwritable destination fails before any data is read, in one line.

use std::process::Output;

use ifp_host::data::assemble::MIN_PART_BYTES;
use ifp_host::data::object::S3Url;
use ifp_testkit::*;

fn ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Every key in the test bucket.
fn keys(s3: &S3Server) -> Vec<String> {
    s3.store.list(BUCKET, "").unwrap().into_iter().map(|(k, _)| k).collect()
}

const JOB: &[&str] = &["run", "kmeans", "--k", "3", "--max-iter", "5", "--init", "first", "--inner", "2", "--quiet"];

#[test]
fn labels_written_to_s3_equal_the_local_runs_file_for_threads_and_processes() {
    let s3 = S3Server::start();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("blobs.csv").display().to_string();
    let url = redis.url_db(0);
    for ext in ["npy", "csv"] {
        let local = dir.path().join(format!("local.{ext}"));
        let mut a = JOB.to_vec();
        a.extend(["--data", &data, "--workers", "1", "--labels-out", local.to_str().unwrap()]);
        ok(&ifp(&a), "the local run");
        let want = std::fs::read(&local).unwrap();
        for (backend, extra) in [("threads", vec![]), ("processes", vec!["--redis", url.as_str()])] {
            let key = format!("out/{backend}/labels.{ext}");
            let dest = S3Server::url(&key);
            let mut a = JOB.to_vec();
            a.extend(["--data", &data, "--workers", "3", "--labels-out", &dest]);
            a.extend(extra);
            ok(&s3.ifp(&a), &format!("--labels-out {dest}"));
            assert!(s3.get(&key) == want, "{dest} differs from the local run's labels");
        }
    }
    // Only the four label objects: every part and probe is gone.
    let mut got = keys(&s3);
    got.sort();
    let want =
        ["out/processes/labels.csv", "out/processes/labels.npy", "out/threads/labels.csv", "out/threads/labels.npy"];
    assert_eq!(got, want);
}

#[test]
fn a_failing_job_leaves_no_object_and_no_part() {
    let s3 = S3Server::start();
    // Function 2's share holds a cell that is not a number: it fails while the others load.
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&if i == 250 { "1,x\n".to_string() } else { format!("{i},{}\n", i % 7) });
    }
    let data = s3.put("bad.csv", text.as_bytes());
    let dest = S3Server::url("out/labels.npy");
    let mut a = JOB.to_vec();
    a.extend(["--data", &data, "--workers", "3", "--labels-out", &dest]);
    let o = s3.ifp(&a);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("'x' is not a number"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(keys(&s3), ["bad.csv"], "only the data is left");
}

#[test]
fn an_unwritable_destination_fails_before_any_data_is_read_in_one_line() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // Data that would fail on reading: the destination's error must come first.
    let data = dir.path().join("bad.csv");
    std::fs::write(&data, "1,2\n3,x\n").unwrap();
    let mut a = JOB.to_vec();
    a.extend(["--data", data.to_str().unwrap(), "--labels-out", "s3://no-such-bucket/l.npy"]);
    let o = s3.ifp(&a);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--labels-out") && lines[0].contains("bucket 'no-such-bucket' does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("not a number") && !stderr.contains("iteration"), "{stderr}");
    // With wrong credentials: access denied, in one line.
    let mut a = JOB.to_vec();
    a.extend(["--data", data.to_str().unwrap(), "--labels-out", "s3://data/l.npy"]);
    let o = s3.ifp_with(&a, "wrong-secret");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.trim().lines().count() == 1, "{stderr}");
    assert!(stderr.contains("--labels-out") && stderr.contains("access denied"), "{stderr}");
    assert!(keys(&s3).is_empty());
}

/// The assembly itself, on objects around S3's part minimum (which `s3s-fs` enforces like
/// S3): sources smaller than a part gathered, large ones copied inside S3 (whole, or their
/// remainder after topping up a started part), and a total under one part as a single PUT.
#[test]
fn concatenation_copies_large_parts_gathers_small_ones_and_equals_the_bytes() {
    let s3 = S3Server::start();
    let m = MIN_PART_BYTES;
    let cases: [&[u64]; 4] = [&[10, m + 1000, 300, 2 * m + 5, 7], &[2 * m, m], &[1, 1, 0, 1], &[m - 1, 1, 0, m, 1]];
    for (c, sizes) in cases.iter().enumerate() {
        let mut want = Vec::new();
        let mut sources = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..n).map(|b| (b % 251 + i as u64 * 7) as u8).collect();
            want.extend_from_slice(&bytes);
            let key = format!("parts-{c}/{i:03}");
            s3.put(&key, &bytes);
            sources.push((S3Url::parse(&S3Server::url(&key)).unwrap(), n));
        }
        let dest = S3Url::parse(&S3Server::url(&format!("whole-{c}"))).unwrap();
        s3.store.concat(&dest, &sources).unwrap();
        assert!(s3.get(&format!("whole-{c}")) == want, "case {c} {sizes:?}");
        assert_eq!(s3.store.delete_prefix(BUCKET, &format!("parts-{c}/")).unwrap(), sizes.len());
    }
    // A source gone missing after the first part: nothing appears at the key.
    let dest = S3Url::parse(&S3Server::url("never")).unwrap();
    let missing = S3Url::parse(&S3Server::url("missing")).unwrap();
    s3.put("large", &vec![1; m as usize + 1]);
    let large = S3Url::parse(&S3Server::url("large")).unwrap();
    assert!(s3.store.concat(&dest, &[(large, m + 1), (missing, 2000)]).is_err());
    assert!(!keys(&s3).contains(&"never".to_string()));
}

/// On the Lambda backend (two emulators, no file system shared with the driver needed): each
/// function's labels are larger than S3's part minimum, so the object at the key is made of
/// the functions' parts copied inside S3; it equals the local run's file, and no part is left.
#[test]
fn lambda_functions_write_their_labels_to_s3_and_the_object_equals_the_local_file() {
    const ROWS_PER_FUNCTION: u64 = 1_600_000; // 6.4 MB of int32 labels each
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.npy").display().to_string();
    let rows = (2 * ROWS_PER_FUNCTION).to_string();
    ok(&ifp(&["gen", "kmeans", "--rows", &rows, "--cols", "2", "--k", "3", "--seed", "5", "--out", &data]), "ifp gen");
    let job = ["run", "kmeans", "--k", "3", "--max-iter", "2", "--init", "first", "--inner", "1", "--quiet"];
    let local = dir.path().join("local.npy");
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "1", "--labels-out", local.to_str().unwrap()]);
    ok(&ifp(&a), "the local run");

    let redis = RedisServer::start(None);
    let emulators = s3.emulators(2, &dir.path().join("kernel-cache"));
    let url = redis.url_db(0);
    let dest = S3Server::url("out/labels.npy");
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "2", "--backend", "lambda", "--function", "function", "--redis", &url]);
    a.extend(["--labels-out", &dest]);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    ok(&s3.ifp(&a), "ifp run --backend lambda --labels-out s3://");
    assert!(s3.get("out/labels.npy") == std::fs::read(&local).unwrap(), "the labels differ from the local run's");
    assert_eq!(keys(&s3), ["out/labels.npy"]);
}

/// Initial centroids whose JSON is larger than a Lambda event may be (8,000 × 48 values,
/// about 7 MB as JSON), and a final model as large as a response may not be: the driver
/// stores the first model once in the job's Redis keys, the events carry only its reference,
/// function 0 stores the final one there for the driver, and the job equals the local run.
#[test]
fn a_first_model_larger_than_an_event_goes_through_redis_and_the_job_equals_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (data, centroids) = (p("data.npy"), p("centroids.npy"));
    ok(&ifp(&["gen", "kmeans", "--rows", "10000", "--cols", "48", "--k", "8", "--seed", "5", "--out", &data]), "gen");
    ok(
        &ifp(&["gen", "kmeans", "--rows", "8000", "--cols", "48", "--k", "8", "--seed", "9", "--out", &centroids]),
        "gen",
    );
    let job = ["run", "kmeans", "--init-centroids", &centroids, "--max-iter", "2", "--inner", "1", "--quiet"];
    let local = p("local.json");
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "1", "--out", &local]);
    ok(&ifp(&a), "the local run");

    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let url = redis.url_db(0);
    let out = p("lambda.json");
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "2", "--backend", "lambda", "--function", "function", "--redis", &url]);
    a.extend(["--out", &out]);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    ok(&ifp_aws(&a), "ifp run --backend lambda --init-centroids (large)");
    let (got, want) = (load_json(std::path::Path::new(&out)), load_json(std::path::Path::new(&local)));
    assert_eq!(got["iterations"], want["iterations"]);
    let (g, w) = (floats(&got["model"]["centroids"]), floats(&want["model"]["centroids"]));
    assert_eq!(w.len(), 8000 * 48);
    assert_close("centroids", &g, &w, 1e-12, 0.0);
    assert_close("losses", &floats(&got["losses"]), &floats(&want["losses"]), 1e-12, 0.0);
    for i in got["lambda"]["invocations"].as_array().unwrap() {
        let (event, response) = (i["event_bytes"].as_u64().unwrap(), i["response_bytes"].as_u64().unwrap());
        println!("event {event} bytes, response {response} bytes");
        assert!(event < 64 << 10 && response < 64 << 10, "event {event}, response {response} bytes: {i}");
    }
    // The job's keys, the model's included, are gone.
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
