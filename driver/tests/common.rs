//! Helpers shared by the driver's integration tests: running the real `ifp` binary,
//! reading fixtures and comparing numbers with explicit tolerances.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

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

/// A `redis-server` on 127.0.0.1 and a free port, killed on drop.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    pub password: Option<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    pub fn start(password: Option<&str>) -> Self {
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; .ci/test.sh does it)");
        let s = Self { child, port, password: password.map(str::to_string) };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ifp-worker` binary next to `ifp` (built on demand when only this crate is tested).
pub fn worker_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let p = Path::new(env!("CARGO_BIN_EXE_ifp")).with_file_name("ifp-worker");
    BUILD.call_once(|| {
        if !p.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-p", "ifp-host", "--bin", "ifp-worker"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "building ifp-worker");
        }
    });
    p
}
