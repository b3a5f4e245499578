//! The Lambda backend end to end, with real parts only: the real `bootstrap` running under
//! AWS's Lambda Runtime Interface Emulator (one emulator per concurrent invocation), invoked
//! by `ifp run --backend lambda` through aws-sdk-lambda (endpoint override, static test
//! credentials), synchronising through a real `redis-server`.
//!
//! The emulator binary comes from the aws-sam-cli wheel (`.ci/test.sh` fetches it into
//! `IFP_LAMBDA_RIE`, default `~/.cache/ifp/aws-lambda-rie-x86_64`).

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ifp_testkit::{assert_close, floats, load_json};
use ifp_testkit::{ifp_aws as ifp, Emulator, RedisServer, S3Server, KEY, SECRET};
use serde_json::{json, Value};

fn ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// A k-means data set: 3,000 × 4 blobs.
fn kmeans_data(dir: &Path) -> String {
    let p = dir.join("blobs.npy").display().to_string();
    ok(&ifp(&["gen", "kmeans", "--rows", "3000", "--cols", "4", "--k", "4", "--seed", "7", "--out", &p]), "ifp gen");
    p
}

const KMEANS: &[&str] =
    &["run", "kmeans", "--k", "4", "--max-iter", "25", "--seed", "3", "--workers", "3", "--inner", "2"];

fn local_reference(dir: &Path, data: &str) -> Value {
    let out = dir.join("local.json").display().to_string();
    let mut a = KMEANS.to_vec();
    a.extend(["--data", data, "--out", &out, "--quiet"]);
    ok(&ifp(&a), "the local reference run");
    load_json(Path::new(&out))
}

/// Asserts a k-means result equals the local reference run: iterations, centroids and
/// losses (1e-12 relative).
fn assert_same_job(what: &str, got: &Value, reference: &Value) {
    assert_eq!(got["iterations"], reference["iterations"], "{what}: iterations");
    let (g, r) = (&got["model"]["centroids"], &reference["model"]["centroids"]);
    assert_close(&format!("{what}: centroids"), &floats(g), &floats(r), 1e-12, 0.0);
    let (g, r) = (&got["losses"], &reference["losses"]);
    assert_close(&format!("{what}: losses"), &floats(g), &floats(r), 1e-12, 0.0);
}

fn lambda_args<'a>(data: &'a str, redis: &'a str, emulators: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = KMEANS.to_vec();
    a.extend(["--data", data, "--backend", "lambda", "--function", "function", "--redis", redis]);
    for e in emulators {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    a.extend(extra);
    a
}

#[test]
fn three_functions_of_two_inner_workers_under_the_emulator_match_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = kmeans_data(dir.path());
    let reference = local_reference(dir.path(), &data);
    let redis = RedisServer::start(None);
    let cache = dir.path().join("kernel-cache").display().to_string();
    let emulators: Vec<Emulator> = (0..3).map(|_| Emulator::start(&[("IFP_KERNEL_CACHE", cache.clone())])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let out = dir.path().join("lambda.json").display().to_string();
    let url = redis.url_db(0);
    let o = ifp(&lambda_args(&data, &url, &endpoints, &["--out", &out]));
    ok(&o, "ifp run --backend lambda");
    let got = load_json(Path::new(&out));

    assert_same_job("3 functions x 2 inner workers", &got, &reference);
    assert_eq!(got["config"]["workers"], 3);
    assert_eq!(got["config"]["inner"], 2);
    // Every invocation reports its billing inputs; the cost follows from them.
    let inv = got["lambda"]["invocations"].as_array().unwrap();
    assert_eq!(inv.len(), 3);
    let mut gb_s = 0.0;
    for (w, i) in inv.iter().enumerate() {
        assert_eq!(i["worker"], w);
        assert_eq!(i["memory_mb"], 3538);
        assert_eq!(i["cold"], true, "a fresh emulator's first invocation is cold");
        gb_s += 3538.0 / 1024.0 * i["billed_ms"].as_f64().unwrap() / 1e3;
    }
    let cost = got["lambda"]["cost_usd"].as_f64().unwrap();
    let want = gb_s * 0.0000166667 + 3.0 * 0.20 / 1e6;
    assert!((cost - want).abs() <= 1e-12 * want, "cost {cost}, want {want}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("lambda: 3 invocations (3 cold)") && stdout.contains("estimated cost $"), "{stdout}");

    // A second run on the same (now warm) execution environments: same model, kernel from memory.
    let out2 = dir.path().join("lambda2.json").display().to_string();
    ok(&ifp(&lambda_args(&data, &url, &endpoints, &["--out", &out2, "--quiet"])), "the warm run");
    let warm = load_json(Path::new(&out2));
    assert_same_job("warm functions", &warm, &reference);
    for i in warm["lambda"]["invocations"].as_array().unwrap() {
        assert_eq!(i["cold"], false);
        assert_eq!(i["kernel_source"], "memory");
    }
}

/// The k-means job with its data in S3 (`s3s-fs`), on three emulators that `start` makes;
/// returns the result and the local run's.
fn kmeans_from_s3(start: impl Fn(&S3Server, &Path) -> Vec<Emulator>) -> (Value, Value) {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let data = kmeans_data(dir.path());
    let reference = local_reference(dir.path(), &data);
    let uri = s3.put("blobs.npy", &std::fs::read(&data).unwrap());
    let redis = RedisServer::start(None);
    let emulators = start(&s3, dir.path());
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let url = redis.url_db(0);
    // S3Server::run_json passes `--s3-endpoint` to the driver.
    (s3.run_json(dir.path(), &lambda_args(&uri, &url, &endpoints, &[])), reference)
}

/// Each function streams only its share of the object into its shards, by ranged GETs, and
/// the model equals the local run's.
#[test]
fn three_functions_reading_their_shares_from_s3_match_the_local_run() {
    let (got, reference) = kmeans_from_s3(|s3, dir| s3.emulators(3, &dir.join("kernel-cache")));
    assert_same_job("data from S3", &got, &reference);
    // Every function fetched its own share and nothing more: 3,000 rows × 4 f32 split 3 ways.
    let workers = got["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    for w in workers {
        assert_eq!(w["rows"], 1000, "{w}");
        assert_eq!(w["share_bytes"], 1000 * 4 * 4, "{w}");
        assert_eq!(w["bytes_fetched"], w["share_bytes"], "{w}");
    }
}

/// `--s3-endpoint` reaches the functions through their tasks: emulators that have the
/// credentials but no `AWS_ENDPOINT_URL_S3` of their own read the data from the S3-compatible
/// server the driver names (without it they would ask AWS, which this machine cannot reach).
#[test]
fn the_drivers_s3_endpoint_reaches_the_functions() {
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    let (got, reference) = kmeans_from_s3(|_, _| (0..3).map(|_| Emulator::start(&env)).collect());
    assert_same_job("data from the driver's S3 endpoint", &got, &reference);
}

#[test]
fn a_function_that_fails_is_reported_with_its_worker_index_and_message() {
    let dir = tempfile::tempdir().unwrap();
    // 300 rows; worker 1 of 3 reads rows 101..200, where row 150 has a cell that is no number.
    let mut csv = String::new();
    for r in 1..=300 {
        let x = if r == 150 { "oops".to_string() } else { format!("{}", r % 7) };
        csv.push_str(&format!("{x},{}.5\n", r % 5));
    }
    let data = dir.path().join("bad.csv");
    std::fs::write(&data, csv).unwrap();
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..3).map(|_| Emulator::start(&[("IFP_KERNEL_CACHE", String::new())])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let url = redis.url_db(0);
    let out = dir.path().join("never.json");
    let mut a = vec![
        "run",
        "kmeans",
        "--k",
        "2",
        "--init",
        "first",
        "--workers",
        "3",
        "--inner",
        "2",
        "--quiet",
        "--sync-timeout",
        "30",
    ];
    let d = data.display().to_string();
    let o = out.display().to_string();
    a.extend(["--data", &d, "--backend", "lambda", "--function", "function", "--redis", &url, "--out", &o]);
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    let r = ifp(&a);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    let line = err.lines().last().unwrap_or_default();
    assert!(line.contains(": function 1 failed: "), "the root cause names the function: {err}");
    assert!(line.contains("row 150 column 1: 'oops' is not a number"), "{err}");
    assert!(!out.exists(), "no result file on failure");
}

#[test]
fn an_invocation_that_times_out_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let data = kmeans_data(dir.path());
    let redis = RedisServer::start(None);
    // The two functions are told different Redis databases, so they never meet: each waits for
    // the other until its 2-second function timeout ends it.
    let emulators: Vec<Emulator> = (0..2u32)
        .map(|w| Emulator::start(&[("AWS_LAMBDA_FUNCTION_TIMEOUT", "2".into()), ("IFP_REDIS_URL", redis.url_db(w))]))
        .collect();
    let mut a = vec!["run", "kmeans", "--k", "4", "--workers", "2", "--inner", "1", "--quiet", "--sync-timeout", "60"];
    a.extend(["--max-attempts", "1"]);
    a.extend(["--data", &data, "--backend", "lambda", "--function", "function"]);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    let r = ifp(&a);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    let line = err.lines().last().unwrap_or_default();
    assert!(line.contains("function 0 failed: ") && line.contains("; also function 1 failed: "), "{err}");
    assert_eq!(line.matches("timed out").count(), 2, "both invocations timed out: {err}");
}

/// Invokes one worker through aws-sdk-lambda, as the driver does; `Err` on a function error
/// or a lost connection.
async fn invoke(endpoint: String, event: Value) -> Result<Value, String> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "static"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let client =
        aws_sdk_lambda::Client::from_conf(aws_sdk_lambda::config::Builder::from(&sdk).endpoint_url(endpoint).build());
    let out = client
        .invoke()
        .function_name("function")
        .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(&event).unwrap()))
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&e)))?;
    let body: Value =
        serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or(b"null")).unwrap_or(Value::Null);
    // The emulator sends error documents without Lambda's X-Amz-Function-Error header.
    match out.function_error().is_some() || body.get("errorType").is_some() || body.is_null() {
        true => Err(format!("{body} {:?}", out.payload())),
        false => Ok(body),
    }
}

/// A function that cannot load its kernel stops the job through Redis: the other function is
/// told which worker failed and why, instead of waiting out a sync timeout of ten minutes.
#[test]
fn a_function_that_cannot_load_its_kernel_aborts_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = kmeans_data(dir.path());
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let event = |w: u32, sha: Option<&str>| {
        let mut e = json!({ "job": "bad-kernel", "function": w, "functions": 2, "inner": 1, "data": data,
            "kernel": "kmeans", "params": { "k": "4" }, "max_iter": 25, "redis": redis.url_db(0),
            "sync_timeout_s": 600 });
        if let Some(h) = sha {
            e["kernel_sha256"] = json!(h);
        }
        e
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w0 = rt.spawn(invoke(emulators[0].endpoint(), event(0, None)));
    let w1 = rt.spawn(invoke(emulators[1].endpoint(), event(1, Some(&"0".repeat(64)))));
    let e1 = rt.block_on(w1).unwrap().expect_err("worker 1's kernel has another hash");
    assert!(e1.contains("sha256"), "{e1}");
    let e0 = rt.block_on(w0).unwrap().expect_err("worker 0 cannot finish without worker 1");
    assert!(e0.contains("aborted: function 1 failed") && e0.contains("sha256"), "{e0}");
    assert!(!e0.contains("timed out"), "{e0}");
}

#[test]
fn a_retried_invocation_of_one_worker_leaves_the_model_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = kmeans_data(dir.path());
    let reference = local_reference(dir.path(), &data);
    let redis = RedisServer::start(None);
    let mut emulators: Vec<Emulator> = (0..4).map(|_| Emulator::start(&[])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    // The initial model the driver would send: the local run's first model is not in its
    // output, so every function computes it from the data (the same for all).
    let event = |w: u32| {
        json!({ "job": "retry-1", "function": w, "functions": 3, "inner": 2, "data": data, "kernel": "kmeans",
                "params": { "k": "4", "seed": "3" }, "max_iter": 25, "redis": redis.url_db(0), "sync_timeout_s": 60 })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Workers 0 and 1 start; worker 2 is late, so the census (the first synchronisation,
    // before iteration 0: row counts and init sample) cannot complete. (Its arrivals are the
    // hash `p:c:r`: round `c`, the root node of the summation tree.)
    let w0 = rt.spawn(invoke(endpoints[0].clone(), event(0)));
    let w1 = rt.spawn(invoke(endpoints[1].clone(), event(1)));
    let started = Instant::now();
    while redis.cli(&["HLEN", "ifp:{retry-1}:p:c:r"]) != "2" {
        assert!(started.elapsed() < Duration::from_secs(60), "workers 0 and 1 never arrived at the census");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Worker 1's execution environment dies after it arrived; Lambda (here: the test) retries
    // it on a fresh environment, while worker 2 finally starts.
    emulators[1].kill();
    assert!(rt.block_on(w1).unwrap().is_err(), "the killed invocation cannot have succeeded");
    let w2 = rt.spawn(invoke(endpoints[2].clone(), event(2)));
    let retry = rt.spawn(invoke(endpoints[3].clone(), event(1)));
    let results: Vec<Value> =
        [w0, w2, retry].into_iter().map(|h| rt.block_on(h).unwrap().expect("invocation")).collect();
    assert_eq!(results[2]["function"], 1);
    // The dead attempt's census entry is already in Redis, so worker 2 can complete the census
    // before the retry arrives: the retry joins at iteration 0 or 1, never later.
    let joined = results[2]["joined_at"].as_u64().unwrap();
    assert!(joined <= 1, "the retry joined at iteration {joined}, after the job moved on without worker 1");
    let want = floats(&reference["model"]["centroids"]);
    for (i, r) in results.iter().enumerate() {
        let model = floats(&r["model"]);
        // The kernel's raw model: the centroids (k × cols, as describe() lays them out), then
        // k-means' algorithm code.
        assert_eq!(model.len(), want.len() + 1, "raw k-means model length");
        assert_close("model after a retried worker", &model[..want.len()], &want, 1e-12, 0.0);
        // A retried function reports the iterations since it rejoined.
        let skipped = if i == 2 { joined } else { 0 };
        assert_eq!(
            r["iterations"].as_array().unwrap().len() as u64,
            reference["iterations"].as_u64().unwrap() - skipped
        );
    }
}

/// Logistic regression on Lambda: its model carries a non-finite bookkeeping value, which
/// must cross the event and the response intact (JSON has no NaN: the tasks and reports
/// encode it as "NaN"); the result equals the local run's.
#[test]
fn logistic_regression_under_the_emulator_matches_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("linear.npy").display().to_string();
    ok(&ifp(&["gen", "logreg", "--rows", "2000", "--cols", "5", "--seed", "4", "--out", &data]), "ifp gen");
    let run = ["run", "logreg", "--max-iter", "30", "--learning-rate", "0.5", "--functions", "2", "--inner", "1"];
    let local_out = dir.path().join("local.json").display().to_string();
    let mut a = run.to_vec();
    a.extend(["--data", &data, "--out", &local_out, "--quiet"]);
    ok(&ifp(&a), "the local logreg run");
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let out = dir.path().join("lambda.json").display().to_string();
    let url = redis.url_db(0);
    let mut a = run.to_vec();
    a.extend(["--data", &data, "--backend", "lambda", "--function", "function", "--redis", &url, "--out", &out]);
    a.push("--quiet");
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    ok(&ifp(&a), "ifp run logreg --backend lambda");
    let (got, want) = (load_json(Path::new(&out)), load_json(Path::new(&local_out)));
    assert_eq!(got["iterations"], want["iterations"]);
    assert_eq!(got["iterations"], 30);
    let fields: Vec<&String> = want["model"].as_object().unwrap().keys().collect();
    assert!(!fields.is_empty());
    for f in fields {
        assert_close(&format!("logreg {f}"), &floats(&got["model"][f]), &floats(&want["model"][f]), 1e-12, 0.0);
    }
    assert_close("logreg losses", &floats(&got["losses"]), &floats(&want["losses"]), 1e-12, 0.0);
}

/// Rows whose labels alone would make each function's response larger than Lambda's 6 MB
/// cap (3.2 million labels, about 6.4 MB as JSON, per function): the functions write them
/// straight to the destination, and the file equals the local run's, row for row.
#[test]
fn labels_of_more_rows_than_a_response_could_hold_are_written_by_the_functions() {
    const ROWS_PER_FUNCTION: u64 = 3_200_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.npy").display().to_string();
    let rows = (2 * ROWS_PER_FUNCTION).to_string();
    ok(&ifp(&["gen", "kmeans", "--rows", &rows, "--cols", "2", "--k", "3", "--seed", "5", "--out", &data]), "ifp gen");
    let job = ["run", "kmeans", "--k", "3", "--max-iter", "2", "--init", "first", "--inner", "1", "--quiet"];
    let (local_labels, lambda_labels) = (dir.path().join("local.npy"), dir.path().join("lambda.npy"));
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "1", "--labels-out", local_labels.to_str().unwrap()]);
    ok(&ifp(&a), "the local run");

    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let url = redis.url_db(0);
    let mut a = job.to_vec();
    a.extend(["--data", &data, "--workers", "2", "--backend", "lambda", "--function", "function", "--redis", &url]);
    let out = dir.path().join("lambda.json");
    a.extend(["--labels-out", lambda_labels.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    ok(&ifp(&a), "ifp run --backend lambda --labels-out");
    for i in load_json(&out)["lambda"]["invocations"].as_array().unwrap() {
        let (event, response) = (i["event_bytes"].as_u64().unwrap(), i["response_bytes"].as_u64().unwrap());
        assert!(event < 16 << 10 && response < 64 << 10, "event {event} and response {response} bytes: {i}");
    }

    let (got, want) = (std::fs::read(&lambda_labels).unwrap(), std::fs::read(&local_labels).unwrap());
    let npy = npyz::NpyFile::new(&got[..]).unwrap();
    assert_eq!(npy.shape(), &[2 * ROWS_PER_FUNCTION], "one label per row");
    let labels: Vec<i32> = npy.into_vec().unwrap();
    assert!(labels.iter().all(|l| (0..3).contains(l)), "labels are cluster indices");
    assert!(got == want, "the labels differ from the local run's");
    // Nothing is left next to the destination but the two label files, the result and the data.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

/// A logistic regression of `rows` x `cols` (seeded) in `dir`, run with `run` flags locally
/// (2 functions in process): returns the data path and the local result.
fn logreg_reference(dir: &Path, rows: &str, cols: &str, run: &[&str]) -> (String, Value) {
    let data = dir.join("linear.npy").display().to_string();
    ok(&ifp(&["gen", "logreg", "--rows", rows, "--cols", cols, "--seed", "5", "--out", &data]), "ifp gen");
    let out = dir.join("local.json").display().to_string();
    let mut a = run.to_vec();
    a.extend(["--data", &data, "--out", &out, "--quiet"]);
    ok(&ifp(&a), "the local logreg run");
    (data, load_json(Path::new(&out)))
}

fn assert_same_logreg(what: &str, got: &Value, want: &Value) {
    assert_eq!(got["iterations"], want["iterations"], "{what}: iterations");
    for f in want["model"].as_object().unwrap().keys() {
        assert_close(&format!("{what}: {f}"), &floats(&got["model"][f]), &floats(&want["model"][f]), 1e-12, 0.0);
    }
}

/// The flags of `ifp run --backend lambda` on `endpoints` with `redis`.
fn on_lambda<'a>(
    run: &[&'a str],
    data: &'a str,
    redis: &'a str,
    endpoints: &'a [String],
    out: &'a str,
) -> Vec<&'a str> {
    let mut a = run.to_vec();
    a.extend(["--data", data, "--backend", "lambda", "--function", "function", "--redis", redis, "--out", out]);
    for e in endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    a
}

/// A function's execution environment crashes mid-job (its emulator and function killed)
/// and comes back on the same endpoint: the driver invokes the function again, it rejoins the
/// job where it is, the job ends with the uninterrupted run's model (1e-12) and the result
/// records the lost attempt.
#[test]
fn a_function_whose_emulator_dies_mid_job_is_invoked_again_and_the_model_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let run = ["run", "logreg", "--max-iter", "3000", "--tol", "0", "--learning-rate", "0.5", "--functions", "2"];
    let run = [&run[..], &["--inner", "1"]].concat();
    let (data, want) = logreg_reference(dir.path(), "2000", "5", &run);
    let redis = RedisServer::start(None);
    let mut emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let (url, out) = (redis.url_db(0), dir.path().join("lambda.json").display().to_string());
    let mut a = on_lambda(&run, &data, &url, &endpoints, &out);
    a.extend(["--job", "crash", "--max-attempts", "6"]);
    let mut driver = ifp_testkit::ifp_aws_child(&a);
    // Wait until the job is under way, then crash function 1's environment.
    let t0 = Instant::now();
    while redis.cli(&["GET", "ifp:{crash}:cur"]).parse::<u32>().unwrap_or(0) < 5 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the job never started");
        assert!(driver.try_wait().unwrap().is_none(), "the job ended before the crash");
        std::thread::sleep(Duration::from_millis(10));
    }
    emulators[1].restart();
    let o = driver.wait_with_output().unwrap();
    ok(&o, "ifp run --backend lambda with a crash");
    let got = load_json(Path::new(&out));
    assert_same_logreg("after a crash", &got, &want);
    let attempts = got["attempts"].as_array().unwrap();
    assert!(
        !attempts.is_empty() && attempts.iter().all(|a| a["function"] == 1 && a["outcome"] == "lost"),
        "{attempts:?}"
    );
}

/// Emulators whose invocations have a 3-second time limit and whose functions 0 and 1 sleep
/// `delay_ms` in every step (the test-only `IFP_TEST_DELAY`): the delay makes a job outlive
/// one invocation on any machine, however fast its kernels (a 2-function job of 1,500
/// iterations took 2.2 s without it on a Zen 5, and a wall-clock threshold on it failed CI).
fn emulators_with_a_3_s_limit(delay_ms: u32) -> Vec<Emulator> {
    let delay = format!("0:{delay_ms},1:{delay_ms}");
    (0..2)
        .map(|_| Emulator::start(&[("AWS_LAMBDA_FUNCTION_TIMEOUT", "3".into()), ("IFP_TEST_DELAY", delay.clone())]))
        .collect()
}

/// The attempts of a job that outlived one invocation: every function left before its limit
/// at least once, each such invocation after completing iterations; attempts lost at the
/// limit (an iteration longer than the margin foresaw on a loaded machine) are allowed.
fn assert_every_function_continued(what: &str, got: &Value) {
    let attempts = got["attempts"].as_array().unwrap();
    for f in 0..2 {
        assert!(
            attempts.iter().any(|a| a["function"] == f && a["outcome"] == "continued"),
            "{what}: function {f} was never continued: {attempts:?}"
        );
    }
    for a in attempts.iter().filter(|a| a["outcome"] == "continued") {
        assert!(a["iterations"].as_u64().unwrap() > 0, "{what}: an invocation left without an iteration: {a:?}");
    }
    // Each invocation that returned was billed: one per function plus one per continuation.
    let n = got["lambda"]["invocations"].as_array().unwrap().len();
    let lost = attempts.iter().filter(|a| a["outcome"] == "lost").count();
    assert_eq!(n + lost, 2 + attempts.len(), "{what}: every invocation that returned was billed");
}

/// Every function has a 3-second time limit and the job needs more than that (1,500
/// iterations of at least 3 ms each): each function leaves before its limit with a
/// continuation, the driver invokes it again, and the job ends with the uninterrupted run's
/// model (1e-12).
#[test]
fn a_job_longer_than_the_function_timeout_continues_across_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let run = ["run", "logreg", "--max-iter", "1500", "--tol", "0", "--learning-rate", "0.5", "--functions", "2"];
    let run = [&run[..], &["--inner", "1"]].concat();
    let (data, want) = logreg_reference(dir.path(), "100000", "16", &run);
    let redis = RedisServer::start(None);
    let emulators = emulators_with_a_3_s_limit(3);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let (url, out) = (redis.url_db(0), dir.path().join("lambda.json").display().to_string());
    let started = Instant::now();
    // On a loaded machine an invocation may still hit its 3-second limit (its iteration took
    // longer than the margin foresaw): it is then lost and invoked again, which is allowed.
    let mut a = on_lambda(&run, &data, &url, &endpoints, &out);
    a.extend(["--max-attempts", "10"]);
    ok(&ifp(&a), "a job longer than the function timeout");
    let got = load_json(Path::new(&out));
    eprintln!(
        "the job took {:.1} s with {} continued or lost attempts",
        started.elapsed().as_secs_f64(),
        got["attempts"].as_array().unwrap().len()
    );
    assert_same_logreg("across invocations", &got, &want);
    assert_every_function_continued("across invocations", &got);
}

/// Mini-batch Adam and momentum across invocations: with a 3-second time limit every
/// function leaves before it with a continuation and is invoked again, rejoining at the
/// iteration the job is at; the optimiser's state (moments or velocity, and the update
/// count) is part of the model kept in Redis, so the job ends with the uninterrupted local
/// run's model (1e-12) after the same iterations.
#[test]
fn minibatch_adam_and_momentum_continue_across_invocations_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(None);
    // 5 epochs of 1,000 batches, at least 1 ms each: every job outlives one invocation.
    let emulators = emulators_with_a_3_s_limit(1);
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    for (opt, lr) in [("adam", "0.01"), ("momentum", "0.05")] {
        let run = ["run", "logreg", "--batch-size", "20", "--epochs", "5", "--optimizer", opt, "--learning-rate", lr];
        let run = [&run[..], &["--functions", "2", "--inner", "1", "--seed", "4"]].concat();
        let (data, want) = logreg_reference(dir.path(), "20000", "8", &run);
        let (url, out) = (redis.url_db(0), dir.path().join(format!("{opt}.json")).display().to_string());
        let started = Instant::now();
        // As above: an invocation that still hits its limit is lost and invoked again.
        let mut a = on_lambda(&run, &data, &url, &endpoints, &out);
        a.extend(["--max-attempts", "10"]);
        ok(&ifp(&a), &format!("{opt} longer than the function timeout"));
        let got = load_json(Path::new(&out));
        let n = got["attempts"].as_array().unwrap().len();
        eprintln!("{opt}: the job took {:.1} s with {n} continued or lost attempts", started.elapsed().as_secs_f64());
        assert_eq!(got["iterations"], json!(5 * 1000), "{opt}: 5 epochs of 1,000 batches");
        assert_same_logreg(&format!("{opt} across invocations"), &got, &want);
        assert_every_function_continued(&format!("{opt} across invocations"), &got);
    }
}

/// Job ids on the Lambda backend: a run stopped by SIGTERM leaves its job in Redis (marked
/// aborted); the same job id is then refused without --resume (the functions of a new run
/// cannot join another run's job), and --resume continues it to the uninterrupted model.
#[test]
fn a_job_id_of_a_stopped_lambda_run_is_refused_unless_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let run = ["run", "logreg", "--max-iter", "3000", "--tol", "0", "--learning-rate", "0.5", "--functions", "2"];
    let run = [&run[..], &["--inner", "1", "--job", "lambda-owned"]].concat();
    let local: Vec<&str> = run.iter().copied().filter(|a| *a != "--job" && *a != "lambda-owned").collect();
    let (data, want) = logreg_reference(dir.path(), "2000", "5", &local);
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let (url, out) = (redis.url_db(0), dir.path().join("lambda.json").display().to_string());
    let driver = ifp_testkit::ifp_aws_child(&on_lambda(&run, &data, &url, &endpoints, &out));
    let t0 = Instant::now();
    while redis.cli(&["GET", "ifp:{lambda-owned}:cur"]).parse::<u32>().unwrap_or(0) < 5 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the job never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::process::Command::new("kill").args(["-TERM", &driver.id().to_string()]).status().unwrap().success());
    let stopped = driver.wait_with_output().unwrap();
    assert!(!stopped.status.success());
    let err = String::from_utf8_lossy(&stopped.stderr);
    assert!(err.lines().last().unwrap_or_default().contains("stopped on SIGTERM"), "{err}");
    let again = ifp(&on_lambda(&run, &data, &url, &endpoints, &out));
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("the job id is in use by another run") && err.contains("--resume"), "{err}");
    let mut resume = on_lambda(&run, &data, &url, &endpoints, &out);
    resume.push("--resume");
    ok(&ifp(&resume), "the resumed run");
    let got = load_json(Path::new(&out));
    assert_same_logreg("resumed on Lambda", &got, &want);
    // Finished: the driver removed the job's keys.
    assert!(redis.cli(&["--scan", "--pattern", "ifp:{lambda-owned}:*"]).trim().is_empty());
}

/// The logistic-regression component used as a plugin (`--kernel FILE.wasm`) on the Lambda
/// backend: the functions read it, check its SHA-256 and run it; the result equals the
/// builtin's local run (1e-12), the model's non-finite bookkeeping value included.
#[test]
fn the_logreg_component_as_a_plugin_on_lambda_matches_the_local_builtin_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = ["run", "logreg", "--max-iter", "30", "--learning-rate", "0.5", "--functions", "2", "--inner", "1"];
    let (data, want) = logreg_reference(dir.path(), "2000", "5", &run);
    let plugin = dir.path().join("logreg.wasm");
    std::fs::write(&plugin, ifp_kernels::builtin("logreg").unwrap()).unwrap();
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let endpoints: Vec<String> = emulators.iter().map(Emulator::endpoint).collect();
    let (url, out) = (redis.url_db(0), dir.path().join("lambda.json").display().to_string());
    let p = plugin.to_str().unwrap();
    let as_plugin = ["run", "--kernel", p, "--label-col", "last", "--max-iter", "30", "--param", "learning-rate=0.5"];
    let as_plugin = [&as_plugin[..], &["--functions", "2", "--inner", "1"]].concat();
    ok(&ifp(&on_lambda(&as_plugin, &data, &url, &endpoints, &out)), "the logreg component as --kernel on Lambda");
    let got = load_json(Path::new(&out));
    assert_same_logreg("logreg component on Lambda", &got, &want);
}
