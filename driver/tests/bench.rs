//! `ifp bench` end to end on a small data set: our side prints every row of the table, and a
//! Python interpreter that cannot run is reported in one line naming it. (No timing is
//! asserted: speed lives in the benchmark's output, not in tests.)

use ifp_testkit::ifp;

#[test]
fn bench_without_python_prints_our_rows() {
    let o =
        ifp(&["bench", "--no-python", "--rows", "3000", "--cols", "5", "--k", "3", "--inner", "2", "--repeats", "1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for row in [
        "k-means Lloyd iteration",
        "logreg iteration",
        "k-means speed-up 1 -> 2 inner workers",
        "precompiled kernel + 2 instances ready",
        "converge from kmeans++: Hamerly (no peers)",
        "converge from first: Hamerly vs our Lloyd",
        "repeats: the slowest repeat of one measure took ",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
    let cpu = out.lines().next().unwrap_or("");
    assert!(cpu.starts_with("CPU: ") && cpu.contains("SIMD: "), "the first line names the CPU: {cpu}");
}

#[test]
fn bench_with_a_missing_python_fails_in_one_line_naming_it() {
    let o = ifp(&["bench", "--rows", "100", "--cols", "2", "--k", "2", "--python", "/nonexistent/python3"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: cannot run python '/nonexistent/python3'"), "{err}");
    assert!(o.stdout.is_empty(), "no table for a failed run");
}

#[test]
fn bench_refuses_more_clusters_than_rows() {
    let o = ifp(&["bench", "--no-python", "--rows", "10", "--k", "11"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--k is 11, more than the 10 rows"));
}
