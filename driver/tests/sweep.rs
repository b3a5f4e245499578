//! `ifp sweep` end to end with a real `redis-server`: a small grid of worker processes behind
//! the delay proxy; checks the files, the table's columns, the median and improvement
//! formulas against the individual runs, the round trips and the consistency check; the
//! model (`--model`) fitted to a measured grid; and a grid run as Lambda invocations of the
//! real `bootstrap` under AWS's Lambda Runtime Interface Emulator.

use ifp_testkit::*;

use serde_json::Value;

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `ifp sweep kmeans` over the blobs fixture into `out`, with a real Redis behind a 0.5 ms
/// delay proxy, the given sweep arguments, and k-means (k = 4, first rows, `max_iter`).
fn redis_sweep(out: &std::path::Path, sweep_args: &[&str], max_iter: &str) -> std::process::Output {
    let _ = worker_bin();
    let redis = RedisServer::start(None);
    let (blobs, url) = (fixture("blobs.npy"), redis.url());
    let mut a = vec!["sweep", "kmeans", "--data", blobs.to_str().unwrap(), "--out-dir", out.to_str().unwrap()];
    a.extend(["--redis", &url, "--latency-ms", "0.5"]);
    a.extend(sweep_args);
    a.extend(["--", "--k", "4", "--init", "first", "--max-iter", max_iter]);
    ifp_ok(&a)
}

#[test]
fn a_small_local_grid_with_redis_writes_consistent_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let o = redis_sweep(&out, &["--grid", "2x1,1x2,1x1", "--repeat", "3"], "30");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let header = stdout.lines().find(|l| l.starts_with("| config")).expect("a markdown table");
    for col in [
        "functions",
        "inner",
        "vCPUs",
        "memory MB",
        "total s (median)",
        "per-iter ms",
        "load s",
        "compute ms/iter",
        "sync ms/iter",
        "round trips/fn/iter",
        "cost $",
        "improvement",
        "same model",
    ] {
        assert!(header.contains(col), "table header lacks {col:?}: {header}");
    }
    assert!(stdout.contains("every configuration reached the same model"), "{stdout}");
    assert!(stdout.contains("emulation: 0.5 ms added to every Redis request"), "{stdout}");
    for f in ["time.svg", "breakdown.svg", "cost.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("2x1") && svg.contains("1x2"), "{f} lacks the configurations");
    }

    let json = load_json(&out.join("sweep.json"));
    assert_eq!(json["consistent"], true);
    assert_eq!(json["baseline"], "2x1");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let base = num(&rows[0]["total_s"]);
    for r in rows {
        let cfg = r["config"].as_str().unwrap();
        // The median comes from the individual runs' result files.
        let mut totals: Vec<f64> =
            (1..=3).map(|i| num(&load_json(&out.join(format!("run-{cfg}-{i}.json")))["timing"]["total_s"])).collect();
        totals.sort_by(f64::total_cmp);
        assert_eq!(num(&r["total_s"]), totals[1], "{cfg}: median of three runs");
        assert_eq!(num(&r["total_min_s"]), totals[0]);
        assert_eq!(num(&r["total_max_s"]), totals[2]);
        // The published improvement formula.
        let want = (base - num(&r["total_s"])) / base;
        assert!((num(&r["improvement"]) - want).abs() < 1e-12, "{cfg}: improvement");
        // Memory follows the vCPUs per function (1,769 MB each), cost is positive.
        assert_eq!(num(&r["memory_mb"]), 1769.0 * num(&r["inner"]));
        assert!(num(&r["cost_usd"]) > 0.0);
        // Two round trips per function per iteration (the sync protocol's bound).
        let rt = num(&r["round_trips_per_iter"]);
        assert!(rt > 0.0 && rt <= 2.0 + 1e-9, "{cfg}: {rt} round trips per iteration");
        assert_eq!(r["consistent"], true);
        assert_eq!(r["iterations"], rows[0]["iterations"]);
    }

    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "config",
        "functions",
        "inner",
        "total_s",
        "iter_ms",
        "load_s",
        "compute_ms",
        "sync_ms",
        "cost_usd",
        "improvement",
        "consistent",
    ] {
        assert!(head.contains(&col), "sweep.csv lacks column {col}");
    }
    assert_eq!(lines.count(), 3);
}

#[test]
fn sweep_refuses_bad_grids_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (grid, msg) in [("3y2", "'3y2' is not FUNCTIONSxINNER"), ("0x2", "'0x2': functions must be a positive integer")]
    {
        let o = ifp(&["sweep", "kmeans", "--grid", grid, "--out-dir", d]);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(msg), "{e}");
    }
    let o = ifp(&["sweep", "kmeans", "--total-vcpus", "2", "--out-dir", d, "--", "--workers", "3"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--workers is set by the sweep itself"));
}

/// `--model` after a measured grid: the model's files, its labelling, its parameters fitted
/// from the measured rows, and the check against every measured configuration.
#[test]
fn the_model_is_fitted_to_the_measured_grid_and_checked_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let model = [
        "--model",
        "--model-functions",
        "50,400",
        "--model-inner",
        "1,6",
        "--model-data-gb",
        "8",
        "--simulate-sync",
        "20,40",
    ];
    let mut a = vec!["--grid", "1x1,2x1,1x2", "--repeat", "1", "--s3-mbps", "80"];
    a.extend(model);
    let o = redis_sweep(&out, &a, "10");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("MODEL (predicted, not measured)"), "{stdout}");
    assert!(stdout.contains("assumption (--s3-mbps 80)"), "the assumed bandwidth is labelled: {stdout}");
    let head = stdout.lines().find(|l| l.starts_with("| config | vCPUs")).expect("the model table");
    assert!(head.contains("model total s") && head.contains("model cost $") && !head.contains("measured"));
    let check_head = stdout.lines().find(|l| l.contains("measured total s")).expect("the check table");
    assert!(check_head.contains("model total s") && check_head.contains("error"), "{check_head}");
    let worst_line = stdout.lines().find(|l| l.starts_with("worst model error:")).expect("the worst error");

    let sweep = load_json(&out.join("sweep.json"));
    let measured = sweep["rows"].as_array().unwrap();
    let m = load_json(&out.join("model.json"));
    assert_eq!(m["kind"], "model");
    assert!(m["label"].as_str().unwrap().contains("not measured"));
    let p = &m["parameters"];
    // T1 from the Fx1 configurations: the median (here the mean of two) of rows per function
    // over the slowest function's compute per iteration.
    let thr = |r: &Value| {
        let rows =
            num(&load_json(&out.join(format!("run-{}-1.json", r["config"].as_str().unwrap())))["config"]["rows"]);
        rows / num(&r["functions"]) / num(&r["inner"]) / (num(&r["compute_ms"]) / 1e3)
    };
    let t1 = (thr(&measured[0]) + thr(&measured[1])) / 2.0;
    assert!((num(&p["rows_per_s_per_vcpu"]) - t1).abs() <= 1e-9 * t1, "T1 {} vs {t1}", p["rows_per_s_per_vcpu"]);
    // σ from the 1x2 configuration.
    let sigma = (t1 / thr(&measured[2]) - 1.0).max(0.0);
    assert!((num(&p["inner_sigma"]) - sigma).abs() <= 1e-9 * sigma.max(1.0), "σ {} vs {sigma}", p["inner_sigma"]);
    // The RTT is measured through the delay proxy (which waits 0.5 ms per request), the direct
    // one without it; Redis's service time comes from its counters.
    assert!(num(&p["rtt_s"]) >= 0.0005, "rtt through the proxy {}", p["rtt_s"]);
    assert!(num(&p["store"]["direct_rtt_s"]) > 0.0);
    assert!(num(&p["service_s"]) > 0.0, "service time {}", p["service_s"]);
    assert_eq!(num(&p["load_bytes_per_s"]), 80e6);
    // 8 GB of 20 B rows (5 f32 features, no label): 4e8 rows; 2 x 2 predictions.
    assert_eq!(num(&p["bytes_per_row"]), 20.0);
    assert_eq!(m["rows"], 400_000_000u64);
    let preds = m["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 4);
    for q in preds {
        let (f, mm) = (num(&q["functions"]), num(&q["inner"]));
        let eff = 1.0 / (1.0 + num(&p["inner_sigma"]) * (mm - 1.0));
        let compute = 4e8 / (f * mm) / (num(&p["rows_per_s_per_vcpu"]) * eff);
        let sync = num(&p["round_trips"]) * num(&p["rtt_s"])
            + f * (num(&p["round_trips"]) * num(&p["service_s"]) + num(&p["per_function_sync_s"]));
        let load = 4e8 / f * 20.0 / 80e6;
        let total = num(&p["overhead_s"]) + load + num(&m["iterations"]) * (compute + sync);
        let got = num(&q["model_total_s"]);
        assert!((got - total).abs() <= 1e-9 * total, "{}: {got} vs {total}", q["config"]);
        assert_eq!(num(&q["memory_mb"]), (1769.0 * mm).min(10240.0));
    }
    // The check: one row per measured configuration, error against the measured median.
    let check = m["check"].as_array().unwrap();
    assert_eq!(check.len(), 3);
    let mut worst: f64 = 0.0;
    for (c, r) in check.iter().zip(measured) {
        assert_eq!(c["config"], r["config"]);
        assert_eq!(num(&c["measured_total_s"]), num(&r["total_s"]));
        let e = (num(&c["model_total_s"]) - num(&r["total_s"])) / num(&r["total_s"]);
        assert!((num(&c["total_error"]) - e).abs() < 1e-12, "{}", c["config"]);
        worst = if e.abs() > worst.abs() { e } else { worst };
    }
    assert!((num(&m["worst_error"]["total_error"]) - worst).abs() < 1e-12);
    assert!(worst_line.contains(&format!("{:+.1}%", worst * 100.0)), "{worst_line}");

    // Error bars: the sync term's 95 % prediction interval from the γ fit's residuals
    // (3 configurations: 2 degrees of freedom, t = 4.303), carried into the total.
    let sd = num(&p["sync_residual_sd_s"]);
    assert_eq!(num(&p["sync_dof"]), 2.0);
    for q in preds {
        let f = num(&q["functions"]);
        let half = 4.303 * sd * (1.0 + f * f / num(&p["sync_sum_f2"])).sqrt() * 1e3;
        let (mid, high) = (num(&q["model_sync_ms"]), num(&q["model_sync_ms_high"]));
        assert!((high - (mid + half)).abs() <= 1e-9 * high, "{}: {high} vs {mid} + {half}", q["config"]);
        assert!((num(&q["model_sync_ms_low"]) - (mid - half).max(0.0)).abs() <= 1e-9 * high);
        let total_high = num(&q["model_total_s"]) + num(&m["iterations"]) * half / 1e3;
        assert!((num(&q["model_total_s_high"]) - total_high).abs() <= 1e-9 * total_high);
    }
    // Out of sample: the model's sync term against 20 and 40 simulated functions.
    assert!(stdout.contains("model check out of sample"), "{stdout}");
    let sim = m["sync_check_out_of_sample"].as_array().unwrap();
    assert_eq!(sim.iter().map(|r| num(&r["functions"])).collect::<Vec<_>>(), [20.0, 40.0]);
    for r in sim {
        let (model_ms, sim_ms) = (num(&r["model_sync_ms"]), num(&r["simulated_sync_ms"]));
        assert!(sim_ms > 0.5, "the simulation waits 0.5 ms per request: {r}");
        let sync = num(&p["round_trips"]) * num(&p["rtt_s"])
            + num(&r["functions"]) * (num(&p["round_trips"]) * num(&p["service_s"]) + num(&p["per_function_sync_s"]));
        assert!((model_ms - sync * 1e3).abs() <= 1e-9 * model_ms);
        assert!((num(&r["error"]) - (model_ms - sim_ms) / sim_ms).abs() < 1e-12, "{r}");
        let inside = num(&r["model_sync_ms_low"]) <= sim_ms && sim_ms <= num(&r["model_sync_ms_high"]);
        assert_eq!(r["within_interval"].as_bool(), Some(inside), "{r}");
    }
    let sim_csv = std::fs::read_to_string(out.join("model-check-sync.csv")).unwrap();
    assert!(sim_csv.lines().next().unwrap().contains("simulated_sync_ms,model_sync_ms"), "{sim_csv}");
    assert_eq!(sim_csv.lines().count(), 3);
    let csv = std::fs::read_to_string(out.join("model.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "config",
        "functions",
        "inner",
        "model_total_s",
        "model_cost_usd",
        "model_iter_ms",
        "model_sync_ms_low",
        "model_sync_ms_high",
        "model_total_s_low",
        "model_total_s_high",
        "model_cost_usd_low",
        "model_cost_usd_high",
    ] {
        assert!(head.contains(&col), "model.csv lacks {col}");
    }
    assert_eq!(csv.lines().count(), 5);
    let check_csv = std::fs::read_to_string(out.join("model-check.csv")).unwrap();
    assert!(check_csv.lines().next().unwrap().contains("total_error"));
    assert_eq!(check_csv.lines().count(), 4);
    for f in ["model-time.svg", "model-cost.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("MODEL"), "{f} is not labelled as a model");
    }
}

/// A mini-batch multinomial job through the sweep: the flags after `--` reach every run
/// (batch size, epochs, optimiser, classes), every configuration reaches the same model, and
/// `--model` fits the throughput to the rows an iteration steps (the batch), predicts a
/// compute per iteration that does not grow with the data, and the measured epochs' iterations
/// over the predicted data.
#[test]
fn a_minibatch_sweep_passes_its_flags_and_models_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let data = fixture("softmax.npy");
    let mut a = vec!["sweep", "logreg", "--data", data.to_str().unwrap(), "--out-dir", out.to_str().unwrap()];
    a.extend(["--grid", "1x1,2x1,1x2", "--repeat", "1", "--model", "--model-functions", "50"]);
    a.extend(["--model-inner", "1,2", "--model-data-gb", "0.28"]);
    a.extend(["--", "--classes", "5", "--batch-size", "300", "--epochs", "3", "--optimizer", "momentum"]);
    let o = ifp_ok(&a);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("every configuration reached the same model"), "{stdout}");
    assert!(stdout.contains("mini-batch: every iteration steps 300 rows"), "{stdout}");
    let sweep = load_json(&out.join("sweep.json"));
    let measured = sweep["rows"].as_array().unwrap();
    let run = |r: &Value| load_json(&out.join(format!("run-{}-1.json", r["config"].as_str().unwrap())));
    for r in measured {
        let p = &run(r)["config"]["params"];
        let got: Vec<&str> = ["classes", "batch-size", "optimizer"].iter().map(|k| p[k].as_str().unwrap()).collect();
        assert_eq!(got, ["5", "300", "momentum"], "{}", r["config"]);
        assert_eq!(r["iterations"], 30, "3 epochs of 10 batches");
    }
    let m = load_json(&out.join("model.json"));
    let p = &m["parameters"];
    assert_eq!(p["batch_rows"], 300);
    // T1: the batch's rows per inner worker over the slowest compute, on the Fx1 runs.
    let thr = |r: &Value| 300.0 / num(&r["functions"]) / num(&r["inner"]) / (num(&r["compute_ms"]) / 1e3);
    let t1 = (thr(&measured[0]) + thr(&measured[1])) / 2.0;
    assert!((num(&p["rows_per_s_per_vcpu"]) - t1).abs() <= 1e-9 * t1, "T1 {} vs {t1}", p["rows_per_s_per_vcpu"]);
    // 0.28 GB of 28 B rows (6 features and the label, f32): 1e7 rows, 3 epochs of 33,334 batches.
    assert_eq!(m["rows"], 10_000_000u64);
    assert_eq!(m["iterations"], 3 * 33_334);
    for q in m["predictions"].as_array().unwrap() {
        let (f, mm) = (num(&q["functions"]), num(&q["inner"]));
        let eff = 1.0 / (1.0 + num(&p["inner_sigma"]) * (mm - 1.0));
        let compute_ms = 300.0 / (f * mm) / (num(&p["rows_per_s_per_vcpu"]) * eff) * 1e3;
        let got = num(&q["model_compute_ms"]);
        assert!((got - compute_ms).abs() <= 1e-9 * compute_ms, "{}: {got} vs {compute_ms}", q["config"]);
    }
}

#[test]
fn the_model_refuses_bad_input_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let d = out.to_str().unwrap();
    for (args, msg) in [
        (vec!["--grid", "2x2,1x2", "--model"], "--model needs a configuration with 1 inner worker"),
        (vec!["--grid", "1x1", "--model", "--s3-mbps=-5"], "--s3-mbps must be a positive number, got -5"),
        (vec!["--grid", "1x1", "--model", "--model-functions", "50,0"], "--model-functions entry '0'"),
        (
            vec!["--grid", "1x1", "--model", "--redis", "redis://127.0.0.1:1", "--simulate-sync", "64,x"],
            "--simulate-sync entry 'x' is not a positive integer",
        ),
        (vec!["--grid", "1x1", "--function", "f"], "--function applies to --backend lambda"),
        (vec!["--grid", "1x1", "--backend", "lambda", "--data", "x.npy"], "--backend lambda needs --function"),
    ] {
        let mut a = vec!["sweep", "kmeans", "--out-dir", d];
        a.extend(args);
        let o = ifp(&a);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(msg), "{e}");
        assert!(!out.exists(), "nothing is written on bad input");
    }
}

/// `--backend lambda`: each configuration runs through `ifp run --backend lambda` against
/// two emulators of 1,769 MB functions; the 1x2 configuration needs 3,538 MB and is flagged.
#[test]
fn a_grid_runs_as_lambda_invocations_under_the_emulator() {
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> =
        (0..2).map(|_| Emulator::start(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769".into())])).collect();
    let endpoints = emulators.iter().map(Emulator::endpoint).collect::<Vec<_>>().join(",");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let blobs = fixture("blobs.npy");
    let url = redis.url();
    let o = ifp_aws(&[
        "sweep",
        "kmeans",
        "--data",
        blobs.to_str().unwrap(),
        "--grid",
        "2x1,1x2",
        "--repeat",
        "1",
        "--out-dir",
        out.to_str().unwrap(),
        "--redis",
        &url,
        "--backend",
        "lambda",
        "--function",
        "function",
        "--lambda-endpoint",
        &endpoints,
        "--",
        "--k",
        "4",
        "--init",
        "first",
        "--max-iter",
        "10",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("every configuration reached the same model"), "{stdout}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(warnings[0].contains("1x2 ran on functions of 1769 MB, but 2 inner workers need 3538 MB"), "{stdout}");
    let json = load_json(&out.join("sweep.json"));
    assert_eq!(json["backend"], "lambda");
    for r in json["rows"].as_array().unwrap() {
        let cfg = r["config"].as_str().unwrap();
        let run = load_json(&out.join(format!("run-{cfg}-1.json")));
        // Ran through the Lambda backend, with the configuration's functions and inner workers.
        assert_eq!(run["lambda"]["function"], "function", "{cfg}");
        assert_eq!(run["lambda"]["invocations"].as_array().unwrap().len() as f64, num(&r["functions"]));
        assert_eq!(run["config"]["inner"], r["inner"], "{cfg}");
        // The emulator sends no REPORT log line, so no billed duration came from Lambda: the
        // cost is an estimate from the functions' own times, and says so.
        let invocations = run["lambda"]["invocations"].as_array().unwrap();
        assert!(invocations.iter().all(|i| i["billed_from"] == "function"), "{cfg}");
        assert_eq!(r["cost_from"], "estimate");
        assert!(num(&r["cost_usd"]) > 0.0);
        assert_eq!(num(&r["memory_mb"]), 1769.0);
        assert_eq!(r["consistent"], true);
    }
}
