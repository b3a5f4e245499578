//! Plugins through the real `ifp` binary: the example plugin (`kernels/examples/linreg`)
//! against independent references computed here (the same gradient-descent update in a
//! plain f64 loop, and the closed-form least-squares solution), in process, as `ifp-worker`
//! processes over a real `redis-server`, and loaded from a real S3-compatible server
//! (`s3s-fs`); and the hostile sandbox plugins (`kernels/test-plugins`), each of which must
//! fail the job with one clear line naming the plugin and the function (and, under
//! `ifp-worker`, the worker), a non-zero exit and no output file, while the host exits on its
//! own (a generous timeout guards against a hang; it asserts no timing) and leaves no process.

use ifp_testkit::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ifp_test_plugins as plugins;

/// True coefficients of the regression data set, intercept last.
const TRUE_W: [f64; 4] = [1.5, -2.0, 0.5, 0.7];
const ROWS: usize = 2000;

/// A seeded regression data set: features uniform in [-1, 1), target `x·w + b + noise`,
/// all rounded to f32 (the CSV holds them exactly). Returns (features row-major, targets).
fn regression_data() -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let d = TRUE_W.len() - 1;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..ROWS {
        let row: Vec<f32> = (0..d).map(|_| uniform() as f32).collect();
        let t = row.iter().zip(&TRUE_W).map(|(&a, w)| a as f64 * w).sum::<f64>() + TRUE_W[d] + 0.1 * uniform();
        x.extend(row);
        y.push(t as f32);
    }
    (x, y)
}

fn write_csv(path: &Path, x: &[f32], y: &[f32]) {
    let d = x.len() / y.len();
    let mut s = String::new();
    for (row, t) in x.chunks(d).zip(y) {
        for v in row {
            s.push_str(&format!("{v},"));
        }
        s.push_str(&format!("{t}\n"));
    }
    std::fs::write(path, s).unwrap();
}

/// `iters` steps of `w ← w − lr · (Σ r x / n, Σ r / n)` from zero, in f64; returns the model
/// (intercept last) and the loss `Σ r² / 2n` of the model entering each iteration.
fn reference_gd(x: &[f32], y: &[f32], lr: f64, iters: usize) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (y.len(), x.len() / y.len());
    let mut w = vec![0.0; d + 1];
    let mut losses = Vec::new();
    for _ in 0..iters {
        let mut g = vec![0.0; d + 1];
        let mut sq = 0.0;
        for (row, &t) in x.chunks(d).zip(y) {
            let r = row.iter().zip(&w).map(|(&a, wi)| a as f64 * wi).sum::<f64>() + w[d] - t as f64;
            for j in 0..d {
                g[j] += r * row[j] as f64;
            }
            g[d] += r;
            sq += r * r;
        }
        losses.push(sq / (2.0 * n as f64));
        for j in 0..=d {
            w[j] -= lr * g[j] / n as f64;
        }
    }
    (w, losses)
}

/// The least-squares solution with an intercept, from the normal equations (Gaussian
/// elimination with partial pivoting, f64).
fn least_squares(x: &[f32], y: &[f32]) -> Vec<f64> {
    let d = x.len() / y.len() + 1;
    let mut a = vec![vec![0.0; d + 1]; d];
    for (row, &t) in x.chunks(d - 1).zip(y) {
        let z: Vec<f64> = row.iter().map(|&v| v as f64).chain([1.0]).collect();
        for i in 0..d {
            for j in 0..d {
                a[i][j] += z[i] * z[j];
            }
            a[i][d] += z[i] * t as f64;
        }
    }
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
        a.swap(c, p);
        for r in 0..d {
            if r != c {
                let f = a[r][c] / a[c][c];
                let pivot = a[c].clone();
                for (v, pv) in a[r].iter_mut().zip(&pivot) {
                    *v -= f * pv;
                }
            }
        }
    }
    (0..d).map(|i| a[i][d] / a[i][i]).collect()
}

fn model_of(result: &serde_json::Value) -> Vec<f64> {
    let mut m = floats(&result["model"]["weights"]);
    m.push(result["model"]["intercept"].as_f64().unwrap());
    m
}

#[test]
fn linreg_plugin_matches_the_same_gradient_descent_in_f64() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = regression_data();
    let data = dir.path().join("regression.csv");
    write_csv(&data, &x, &y);
    let (lr, iters) = (0.3, 40);
    let (want, want_losses) = reference_gd(&x, &y, lr, iters);
    // Several functions and inner workers: the plugin's partials must add up.
    for (workers, inner) in [("1", "1"), ("3", "2")] {
        // linreg_args: learning rate 0.3, tol 0, 40 iterations, as `reference_gd` below.
        let args = linreg_args(plugins::LINREG, data.to_str().unwrap(), &["--workers", workers, "--inner", inner]);
        let got = run_json(dir.path(), &args);
        assert_eq!(got["algorithm"], "linreg");
        assert_eq!(got["iterations"], iters as u64, "iterations");
        assert_eq!(got["converged"], false);
        assert_close(&format!("model ({workers}x{inner})"), &model_of(&got), &want, 1e-9, 1e-12);
        assert_close(&format!("losses ({workers}x{inner})"), &floats(&got["losses"]), &want_losses, 1e-9, 1e-12);
    }
}

#[test]
fn linreg_plugin_converges_to_the_least_squares_solution() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = regression_data();
    let data = dir.path().join("regression.csv");
    write_csv(&data, &x, &y);
    let want = least_squares(&x, &y);
    // The data really is the planted linear model (a check on the reference itself).
    assert_close("least squares vs planted coefficients", &want, &TRUE_W, 0.0, 0.02);
    let got = run_json(
        dir.path(),
        &[
            "run",
            "--kernel",
            plugins::LINREG,
            "--data",
            data.to_str().unwrap(),
            "--label-col",
            "last",
            "--param",
            "learning-rate=0.5",
            "--param",
            "tol=1e-9",
            "--max-iter",
            "5000",
            "--workers",
            "2",
            "--inner",
            "2",
        ],
    );
    assert_eq!(got["converged"], true, "did not converge in 5000 iterations");
    // A gradient norm <= 1e-9 leaves the weights within ~1e-8 of the optimum here.
    assert_close("model vs normal equations", &model_of(&got), &want, 0.0, 1e-6);
}

#[test]
fn linreg_plugin_refuses_bad_parameters_and_builtin_flags() {
    let data = fixture("logreg.csv");
    let d = data.to_str().unwrap();
    let o =
        ifp(&["run", "--kernel", plugins::LINREG, "--data", d, "--label-col", "last", "--param", "learning-rate=-1"]);
    assert_one_error_line(&o, &[plugins::LINREG, "validate", "learning-rate", "-1"]);
    let o = ifp(&["run", "--kernel", plugins::LINREG, "--data", d, "--label-col", "last", "--param", "step=1"]);
    assert_one_error_line(&o, &["unknown parameter 'step'"]);
    let o = ifp(&["run", "--kernel", plugins::LINREG, "--data", d, "--label-col", "last", "--k", "3"]);
    assert_one_error_line(&o, &["--k applies to the builtin kernels"]);
    let o = ifp(&["run", "--kernel", plugins::LINREG, "--data", d, "--param", "oops"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected NAME=VALUE, got 'oops'"));
}

/// Asserts a failed run whose stderr is exactly one `error: ...` line containing `needles`.
fn assert_one_error_line(o: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "exit status (stderr: {err})");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing from: {err}");
    }
}

/// Runs a hostile plugin on the blobs fixture (2 inner workers) with `extra` flags, under a
/// generous guard against a hang; asserts the one-line error, the exit status and that no
/// result file was written.
fn run_hostile(plugin: &str, extra: &[&str], needles: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.json");
    let data = fixture("blobs.csv");
    let mut args = vec!["run", "--kernel", plugin, "--data", data.to_str().unwrap(), "--inner", "2", "--quiet"];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ifp"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if guard.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("ifp {args:?} still running after 300 s: the sandbox did not stop the plugin");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_one_error_line(&o, needles);
    assert!(!out.exists(), "a result file was written for a failed job");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("RUST_BACKTRACE"), "the host panicked");
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

#[test]
fn plugin_looping_forever_is_interrupted_by_the_step_timeout() {
    run_hostile(
        plugins::SPIN,
        &["--step-timeout", "0.5"],
        &[plugins::SPIN, "shard.step", "exceeded its time limit per call"],
    );
}

#[test]
fn plugin_allocating_without_bound_hits_the_memory_cap() {
    run_hostile(
        plugins::HOG,
        &["--kernel-memory-mb", "64"],
        &[plugins::HOG, "shard.step", "exceeded its memory limit of 64 MiB"],
    );
}

#[test]
fn plugin_panicking_is_reported_as_a_trap_with_its_message() {
    run_hostile(
        plugins::PANIC,
        &[],
        &[
            plugins::PANIC,
            "shard.step",
            "trapped: wasm `unreachable` instruction executed",
            "hostile kernel panics on purpose",
        ],
    );
}

#[test]
fn plugin_opening_a_host_file_fails_without_preopens() {
    // Were the file readable, the step would succeed and so would the job.
    run_hostile(plugins::SNOOP, &[], &[plugins::SNOOP, "shard.step", "cannot read /etc/passwd"]);
}

#[test]
fn plugin_of_the_wrong_world_is_refused_with_what_it_lacks() {
    let needles = [
        plugins::WRONG_WORLD,
        "is not an ifp:kernel@0.1.0 component",
        "`validate`",
        "`plan-sample`",
        "`init`",
        "`update`",
        "`describe`",
        "`shard`",
        "`[method]shard.step`",
    ];
    run_hostile(plugins::WRONG_WORLD, &[], &needles);
    let o = ifp(&["run", "--kernel", plugins::WRONG_WORLD, "--data", fixture("blobs.csv").to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("`name`"), "`name` is exported, not missing");
}

#[test]
fn plugin_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    run_hostile(junk.to_str().unwrap(), &[], &[junk.to_str().unwrap(), "is not a valid WebAssembly component"]);
    let missing = dir.path().join("missing.wasm");
    run_hostile(missing.to_str().unwrap(), &[], &["cannot read kernel", missing.to_str().unwrap()]);
}

/// The regression data set as a CSV in `dir`.
fn regression_csv(dir: &Path) -> (String, Vec<f32>, Vec<f32>) {
    let (x, y) = regression_data();
    let data = dir.join("regression.csv");
    write_csv(&data, &x, &y);
    (data.display().to_string(), x, y)
}

/// `ifp run --kernel KERNEL` on the regression data: 40 gradient steps of 0.3, then `extra`.
fn linreg_args<'a>(kernel: &'a str, data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "--kernel", kernel, "--data", data, "--label-col", "last"];
    a.extend(["--param", "learning-rate=0.3", "--param", "tol=0", "--max-iter", "40"]);
    a.extend(extra);
    a
}

/// Asserts a linreg result equals the f64 reference (40 steps of 0.3) and `other` (1e-9).
fn check_linreg(what: &str, got: &serde_json::Value, other: &serde_json::Value, x: &[f32], y: &[f32]) {
    let (want, want_losses) = reference_gd(x, y, 0.3, 40);
    assert_eq!(got["iterations"], 40, "{what}: iterations");
    assert_close(&format!("{what}: model vs reference"), &model_of(got), &want, 1e-9, 1e-12);
    assert_close(&format!("{what}: losses vs reference"), &floats(&got["losses"]), &want_losses, 1e-9, 1e-12);
    assert_close(&format!("{what}: model vs in-process"), &model_of(got), &model_of(other), 1e-9, 0.0);
    let sha = got["kernel_sha256"].as_str().unwrap_or_default();
    assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{what}: kernel_sha256 {sha:?}");
}

#[test]
fn linreg_plugin_under_redis_workers_equals_in_process_and_the_reference() {
    let redis = RedisServer::start(None);
    worker_bin();
    let dir = tempfile::tempdir().unwrap();
    let (data, x, y) = regression_csv(dir.path());
    let local = run_json(dir.path(), &linreg_args(plugins::LINREG, &data, &["--workers", "3", "--inner", "1"]));
    let url = redis.url();
    for inner in ["1", "2"] {
        let remote = run_json(
            dir.path(),
            &linreg_args(plugins::LINREG, &data, &["--workers", "3", "--inner", inner, "--redis", &url]),
        );
        assert_eq!(remote["sync"]["store"], "redis");
        assert_eq!(remote["workers"].as_array().map(Vec::len), Some(3));
        check_linreg(&format!("3 ifp-workers x {inner}"), &remote, &local, &x, &y);
        assert_eq!(remote["kernel_sha256"], local["kernel_sha256"]);
    }
}

#[test]
fn linreg_plugin_from_s3_gives_the_same_model_in_process_and_in_workers() {
    let s3 = S3Server::start();
    let redis = RedisServer::start(None);
    worker_bin();
    let dir = tempfile::tempdir().unwrap();
    let (data, x, y) = regression_csv(dir.path());
    let local = run_json(dir.path(), &linreg_args(plugins::LINREG, &data, &["--workers", "2", "--inner", "1"]));
    let uri = s3.put("plugins/linreg.wasm", &std::fs::read(plugins::LINREG).unwrap());
    let from_s3 = s3.run_json(dir.path(), &linreg_args(&uri, &data, &["--workers", "2", "--inner", "1"]));
    assert_eq!(from_s3["kernel"], uri.as_str());
    assert_eq!(from_s3["kernel_sha256"], local["kernel_sha256"], "the same bytes");
    check_linreg("in process, kernel from S3", &from_s3, &local, &x, &y);
    // Every worker process fetches the component from S3 itself and checks its hash.
    let url = redis.url();
    let workers =
        s3.run_json(dir.path(), &linreg_args(&uri, &data, &["--workers", "3", "--inner", "1", "--redis", &url]));
    check_linreg("3 ifp-workers, kernel from S3", &workers, &local, &x, &y);
}

#[test]
fn bad_s3_kernels_are_refused_with_one_line_before_any_work() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (data, _, _) = regression_csv(dir.path());
    let out = dir.path().join("result.json");
    let run = |uri: &str| -> Output {
        let mut a = linreg_args(uri, &data, &["--out", out.to_str().unwrap()]);
        a.push("--quiet");
        s3.ifp(&a)
    };
    let missing = format!("s3://{BUCKET}/plugins/missing.wasm");
    assert_one_error_line(
        &run(&missing),
        &[&format!("cannot read kernel '{missing}'"), "no such key 'plugins/missing.wasm' in bucket 'data'"],
    );
    assert_one_error_line(
        &run("s3://no-such-bucket/k.wasm"),
        &["s3://no-such-bucket/k.wasm", "bucket 'no-such-bucket' does not exist"],
    );
    let junk = s3.put("plugins/junk.wasm", b"not wasm at all");
    assert_one_error_line(&run(&junk), &[&junk, "is not a valid WebAssembly component"]);
    let wrong = s3.put("plugins/wrong.wasm", &std::fs::read(plugins::WRONG_WORLD).unwrap());
    assert_one_error_line(&run(&wrong), &[&wrong, "is not an ifp:kernel@0.1.0 component", "`[method]shard.step`"]);
    assert!(!out.exists(), "no result for a refused kernel");
}

#[test]
fn hostile_plugins_under_ifp_worker_fail_the_job_naming_plugin_and_worker_and_leave_no_process() {
    let redis = RedisServer::start(None);
    worker_bin();
    let url = redis.url();
    let cases: [(&str, &[&str], &[&str]); 2] = [
        (plugins::SPIN, &["--step-timeout", "0.5"], &["shard.step", "exceeded its time limit per call"]),
        (plugins::PANIC, &[], &["shard.step", "trapped: wasm `unreachable` instruction executed"]),
    ];
    for (i, (plugin, limits, what)) in cases.iter().enumerate() {
        let job = format!("hostile-plugin-{i}");
        let mut extra = vec!["--workers", "3", "--redis", &url, "--job", &job];
        extra.extend(*limits);
        let mut needles = vec![*plugin, &job];
        needles.extend(*what);
        let err = run_hostile(plugin, &extra, &needles);
        assert!(
            err.starts_with(&format!("error: job {job}: function ")) && err.contains(" failed"),
            "names the function: {err}"
        );
        assert_eq!(processes_with_arg(&job), Vec::<u32>::new(), "processes of job {job} left running");
    }
}

/// Runs `ifp-worker` for function `function` of 2 on the regression data with `kernel`,
/// expecting `sha256` (the task on stdin).
fn spawn_worker(url: &str, job: &str, function: u32, data: &str, kernel: &str, sha256: &str) -> std::process::Child {
    let task = serde_json::json!({ "job": job, "function": function, "functions": 2, "data": data,
        "label_col": "last", "kernel": kernel, "kernel_sha256": sha256, "max_iter": 40,
        "params": { "learning-rate": "0.3" }, "sync_timeout_s": 120 });
    let mut c = Command::new(worker_bin())
        .env("IFP_REDIS_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), task.to_string().as_bytes()).unwrap();
    c
}

#[test]
fn a_worker_with_other_plugin_bytes_fails_the_job_at_once_naming_both_hashes() {
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (data, _, _) = regression_csv(dir.path());
    let sha =
        run_json(dir.path(), &linreg_args(plugins::LINREG, &data, &[]))["kernel_sha256"].as_str().unwrap().to_string();
    // Worker 1's file holds other bytes (another component) than the job's.
    let other = dir.path().join("linreg.wasm");
    std::fs::copy(plugins::PANIC, &other).unwrap();
    let url = redis.url();
    let w0 = spawn_worker(&url, "mismatch", 0, &data, plugins::LINREG, &sha);
    let w1 = spawn_worker(&url, "mismatch", 1, &data, other.to_str().unwrap(), &sha);
    let o1 = w1.wait_with_output().unwrap();
    let err1 = String::from_utf8_lossy(&o1.stderr);
    assert_eq!(o1.status.code(), Some(1), "{err1}");
    let line = err1.lines().last().unwrap_or_default();
    assert!(line.contains(&format!("kernel '{}' has sha256 ", other.display())), "{err1}");
    assert!(line.contains(&format!("but the job runs sha256 {sha}")), "{err1}");
    // Worker 0 learns it through Redis and stops as aborted, well before its sync timeout.
    let o0 = w0.wait_with_output().unwrap();
    let err0 = String::from_utf8_lossy(&o0.stderr);
    assert_eq!(o0.status.code(), Some(3), "function 0 stops because function 1 failed: {err0}");
    assert!(err0.contains("function 1") && err0.contains("has sha256"), "{err0}");
}

#[test]
fn sweep_passes_the_plugin_and_its_parameters_to_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (data, x, y) = regression_csv(dir.path());
    let out = dir.path().join("sweep");
    let mut a = vec!["sweep", "linreg", "--data", &data, "--grid", "1x1,2x1", "--repeat", "1"];
    a.extend(["--out-dir", out.to_str().unwrap(), "--", "--kernel", plugins::LINREG, "--label-col", "last"]);
    a.extend(["--param", "learning-rate=0.3", "--param", "tol=0", "--max-iter", "40"]);
    ifp_ok(&a);
    let local = run_json(dir.path(), &linreg_args(plugins::LINREG, &data, &[]));
    for c in ["1x1", "2x1"] {
        let r = load_json(&out.join(format!("run-{c}-1.json")));
        assert_eq!(r["kernel"], plugins::LINREG, "{c}");
        check_linreg(&format!("sweep {c}"), &r, &local, &x, &y);
    }
}

#[test]
fn linreg_plugin_from_s3_under_the_lambda_emulator_matches_the_reference_and_is_compiled_once() {
    let s3 = S3Server::start();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (data, x, y) = regression_csv(dir.path());
    let local = run_json(dir.path(), &linreg_args(plugins::LINREG, &data, &["--workers", "2", "--inner", "1"]));
    let uri = s3.put("plugins/linreg.wasm", &std::fs::read(plugins::LINREG).unwrap());
    let cache = dir.path().join("kernel-cache");
    let emus = s3.emulators(2, &cache);
    let url = redis.url();
    let mut lambda = vec!["--workers", "2", "--inner", "1", "--backend", "lambda", "--function", "function"];
    lambda.extend(["--redis", &url]);
    let endpoints: Vec<String> = emus.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        lambda.extend(["--lambda-endpoint", e.as_str()]);
    }
    let sources = |r: &serde_json::Value| -> Vec<String> {
        r["lambda"]["invocations"].as_array().unwrap().iter().map(|i| i["kernel_source"].to_string()).collect()
    };
    let cold = s3.run_json(dir.path(), &linreg_args(&uri, &data, &lambda));
    check_linreg("2 Lambda functions, kernel from S3", &cold, &local, &x, &y);
    assert!(sources(&cold).iter().all(|s| s == "\"compiled\"" || s == "\"precompiled\""), "{:?}", sources(&cold));
    // Cached in the functions' /tmp by content hash.
    let sha = local["kernel_sha256"].as_str().unwrap();
    let files: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(files.iter().any(|f| f.starts_with(sha) && f.ends_with(".cwasm")), "{files:?}");
    // Warm environments: the engine in memory, nothing fetched or compiled.
    let warm = s3.run_json(dir.path(), &linreg_args(&uri, &data, &lambda));
    check_linreg("warm Lambda functions", &warm, &local, &x, &y);
    assert_eq!(sources(&warm), vec!["\"memory\""; 2]);
}

#[test]
fn a_hostile_plugin_under_the_lambda_emulator_is_stopped_by_the_step_timeout() {
    let s3 = S3Server::start();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let emus = s3.emulators(2, &dir.path().join("kernel-cache"));
    let data = fixture("blobs.csv");
    let url = redis.url();
    let mut a = vec!["run", "--kernel", plugins::SPIN, "--data", data.to_str().unwrap(), "--step-timeout", "0.5"];
    a.extend(["--workers", "2", "--inner", "1", "--backend", "lambda", "--function", "function", "--redis", &url]);
    let endpoints: Vec<String> = emus.iter().map(Emulator::endpoint).collect();
    for e in &endpoints {
        a.extend(["--lambda-endpoint", e.as_str()]);
    }
    a.push("--quiet");
    let o = s3.ifp(&a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: job ")
            && line.contains(": function ")
            && line.contains(" failed during iteration 0: "),
        "{err}"
    );
    assert!(line.contains(plugins::SPIN) && line.contains("exceeded its time limit per call"), "{err}");
}

/// A plugin that writes far more than the kept 16 KiB of stderr in every step still runs
/// to the end: its stderr is a tail, never a reason to fail.
#[test]
fn plugin_writing_much_to_stderr_is_not_failed_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("blobs.csv");
    let r =
        run_json(dir.path(), &["run", "--kernel", plugins::CHATTY, "--data", data.to_str().unwrap(), "--inner", "2"]);
    assert_eq!(r["model"]["rows"], serde_json::json!(3000.0), "both inner workers counted their rows");
}

/// Clocks are frozen and "random" bytes are fixed: a plugin that reads the wall clock, the
/// monotonic clock and random bytes twice gets the same values each time (and the same on
/// every run), so a kernel cannot make the model depend on time or chance.
#[test]
fn plugin_reading_clocks_and_random_bytes_twice_gets_identical_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("blobs.csv");
    let args = ["run", "--kernel", plugins::CLOCKS, "--data", data.to_str().unwrap(), "--inner", "1"];
    let (a, b) = (run_json(dir.path(), &args), run_json(dir.path(), &args));
    let v = floats(&a["model"]["rows"]);
    assert_eq!(v.len(), 6, "{v:?}");
    let [rows, wall1, wall2, mono, random1, random2] = v[..] else { unreachable!() };
    assert_eq!(rows, 3000.0);
    assert_eq!((wall1, wall2), (0.0, 0.0), "the wall clock is frozen at the epoch");
    assert_eq!(mono, 0.0, "the monotonic clock never advances");
    assert_eq!(random1, random2, "random bytes are fixed");
    assert_eq!(floats(&b["model"]["rows"]), v, "the same on every run");
}
