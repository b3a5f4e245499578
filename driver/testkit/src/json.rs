//! Test data and numbers: the fixtures in `driver/tests/fixtures`, JSON files read back, their
//! numbers flattened, and element-wise comparison with explicit tolerances.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `driver/tests/fixtures/<name>` (reference results and the data they were computed from).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("driver/").join("tests/fixtures").join(name)
}

/// The JSON in the file at `path`; panics naming the file when it cannot be read.
pub fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Every number in `v` (a number or nested arrays of numbers), in order.
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
