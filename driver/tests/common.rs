//! Helpers shared by the driver's integration tests: running the real `ifp` binary,
//! reading fixtures and comparing numbers with explicit tolerances.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Runs `ifp` with `args`.
pub fn ifp(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ifp")).args(args).output().expect("run ifp")
}

/// Runs `ifp` and panics with its stderr unless it succeeds.
pub fn ifp_ok(args: &[&str]) -> Output {
    let o = ifp(args);
    assert!(o.status.success(), "ifp {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Runs `ifp run ... --out FILE` and returns the parsed result.
pub fn run_json(dir: &Path, args: &[&str]) -> Value {
    let out = dir.join(format!("result-{}.json", rand_suffix()));
    let mut a: Vec<&str> = args.to_vec();
    let o = out.to_str().unwrap().to_string();
    a.extend(["--out", &o, "--quiet"]);
    ifp_ok(&a);
    load_json(&out)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not numbers: {other}"),
    }
}

/// Asserts `|got - want| <= rel * |want| + abs` element-wise.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs() + abs, "{what}[{i}]: got {g}, want {w} (rel {rel}, abs {abs})");
    }
}
