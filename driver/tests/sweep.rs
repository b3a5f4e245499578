//! `ifp sweep` end to end with a real `redis-server`: a small grid of worker processes behind
//! the delay proxy; checks the files, the table's columns, the median and improvement
//! formulas against the individual runs, the round trips and the consistency check.

mod common;
use common::*;

use serde_json::Value;

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_small_local_grid_with_redis_writes_consistent_reports() {
    let _ = worker_bin();
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let blobs = fixture("blobs.npy");
    let url = redis.url();
    let o = ifp_ok(&[
        "sweep",
        "kmeans",
        "--data",
        blobs.to_str().unwrap(),
        "--grid",
        "2x1,1x2,1x1",
        "--repeat",
        "3",
        "--out-dir",
        out.to_str().unwrap(),
        "--redis",
        &url,
        "--latency-ms",
        "0.5",
        "--",
        "--k",
        "4",
        "--init",
        "first",
        "--max-iter",
        "30",
    ]);
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
