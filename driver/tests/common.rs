//! Helpers shared by the driver's integration tests: running the real `ifp` binary,
//! reading fixtures and comparing numbers with explicit tolerances, and the real services
//! the tests start (a `redis-server`, an `s3s-fs` S3-compatible server).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ifp_host::object::{S3Store, S3Url};
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

/// Runs `ifp` with static test credentials for the AWS SDK (and no shared AWS config), as the
/// Lambda backend needs for the emulator.
pub fn ifp_aws(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ifp"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("run ifp")
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

/// Starts a server on a port picked free, retrying on fresh ports. A port picked free can be
/// taken by a parallel test before the server binds it: the server then exits, or another
/// process answers on that port. So a start counts only when something listens on the port,
/// the child still runs a moment later, and `ours` (when given) confirms that the listener is
/// this child.
pub fn start_on_free_port(
    what: &str,
    timeout: Duration,
    mut spawn: impl FnMut(u16) -> Child,
    ours: impl Fn(&Child, u16) -> bool,
) -> (Child, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = spawn(port);
        let started = Instant::now();
        let mut listening = false;
        while started.elapsed() < timeout && child.try_wait().unwrap().is_none() {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                listening = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if listening {
            std::thread::sleep(Duration::from_millis(100));
            if child.try_wait().unwrap().is_none() && ours(&child, port) {
                return (child, port);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start (three tries on fresh ports)");
}

impl RedisServer {
    pub fn start(password: Option<&str>) -> Self {
        let spawn = |port: u16| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            if let Some(p) = password {
                cmd.args(["--requirepass", p]);
            }
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server; .ci/test.sh does it)")
        };
        // The server that answers must report this child's pid.
        let ours = |child: &Child, port: u16| {
            let s = Self::url_of(port, password);
            let info: Option<String> = redis::Client::open(s.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut con| redis::cmd("INFO").arg("server").query(&mut con))
                .ok();
            info.is_some_and(|i| i.lines().any(|l| l.trim() == format!("process_id:{}", child.id())))
        };
        let (child, port) = start_on_free_port("redis-server", Duration::from_secs(10), spawn, ours);
        Self { child, port, password: password.map(str::to_string) }
    }

    fn url_of(port: u16, password: Option<&str>) -> String {
        match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self) -> String {
        Self::url_of(self.port, self.password.as_deref())
    }

    /// The URL of logical database `db` (so that concurrent jobs or workers stay apart).
    pub fn url_db(&self, db: u32) -> String {
        format!("{}/{db}", self.url())
    }

    /// `redis-cli` against this server; its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["-a", p, "--no-auth-warning"]);
        }
        let o = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
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

pub const KEY: &str = "ifp-test-key";
pub const SECRET: &str = "ifp-test-secret";
pub const BUCKET: &str = "data";

/// Credentials for this process's own client (the `ifp` child processes get theirs from
/// [`S3Server::ifp`]). Every test sets the same values, once, before any client exists.
pub fn test_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
        // Small parts, so that the fixtures are read through many concurrent GETs.
        std::env::set_var("IFP_S3_PART_BYTES", "4096");
    });
}

/// The `ifp` binary under test: this package's, or `IFP_BIN` (to test another build, such as
/// a release binary, against the same server).
pub fn ifp_bin() -> std::path::PathBuf {
    std::env::var_os("IFP_BIN").map(Into::into).unwrap_or_else(|| env!("CARGO_BIN_EXE_ifp").into())
}

/// An `s3s-fs` server with one bucket, on its own port and directory.
pub struct S3Server {
    child: Child,
    _root: tempfile::TempDir,
    pub endpoint: String,
    pub store: Arc<S3Store>,
}

impl S3Server {
    pub fn start() -> Self {
        test_credentials();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let spawn = |port: u16| {
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", KEY, "--secret-key", SECRET])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs is not installed (.ci/test.sh installs it: cargo install s3s-fs@0.14.1 --locked --features binary)")
        };
        let (child, port) = start_on_free_port("s3s-fs", Duration::from_secs(20), spawn, |_, _| true);
        let endpoint = format!("http://127.0.0.1:{port}");
        let store = S3Store::connect(Some(&endpoint)).unwrap();
        Self { child, _root: root, endpoint, store }
    }

    pub fn url(key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> String {
        let url = Self::url(key);
        self.store.put_bytes(&S3Url::parse(&url).unwrap(), bytes.to_vec()).unwrap();
        url
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        let url = S3Url::parse(&Self::url(key)).unwrap();
        let (_, size) = self.store.head_bytes(&url, 1).unwrap();
        self.store.get_range(&url, 0..size).unwrap().to_vec()
    }

    /// `ifp` with this server's endpoint and credentials (`secret` overrides the secret key).
    pub fn ifp_with(&self, args: &[&str], secret: &str) -> Output {
        Command::new(ifp_bin())
            .args(args)
            .args(["--s3-endpoint", &self.endpoint])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("IFP_S3_PART_BYTES", "4096")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run ifp")
    }

    pub fn ifp(&self, args: &[&str]) -> Output {
        self.ifp_with(args, SECRET)
    }

    /// `n` Lambda emulators whose functions reach this server (endpoint and credentials) and
    /// cache compiled kernels in `cache`.
    pub fn emulators(&self, n: usize, cache: &Path) -> Vec<Emulator> {
        let env = [
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("IFP_S3_PART_BYTES", "4096".to_string()),
            ("IFP_KERNEL_CACHE", cache.display().to_string()),
        ];
        (0..n).map(|_| Emulator::start(&env)).collect()
    }

    /// `ifp run … --out FILE --quiet`, which must succeed; returns the result JSON.
    pub fn run_json(&self, dir: &Path, args: &[&str]) -> serde_json::Value {
        let out = dir.join("s3-result.json");
        let mut a = args.to_vec();
        a.extend(["--out", out.to_str().unwrap(), "--quiet"]);
        let o = self.ifp(&a);
        assert!(o.status.success(), "ifp {a:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        load_json(&out)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes (other than zombies) whose command line has an argument equal to `arg`: what a
/// job left running, found by its unique job id.
pub fn processes_with_arg(arg: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')));
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !zombie && cmd.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Waits until something listens on `port` of 127.0.0.1.
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `bootstrap` (the Lambda host) next to `ifp`, built if missing (`.ci/test.sh` builds every
/// binary before the tests, but testing only this crate does not); or `IFP_BOOTSTRAP`, to run
/// the Lambda tests against another build, such as a packaged arm64 `bootstrap` behind a
/// `qemu-aarch64` wrapper script.
pub fn bootstrap() -> PathBuf {
    if let Some(p) = std::env::var_os("IFP_BOOTSTRAP") {
        return p.into();
    }
    static BUILD: Once = Once::new();
    let p = Path::new(env!("CARGO_BIN_EXE_ifp")).with_file_name("bootstrap");
    BUILD.call_once(|| {
        if p.is_file() {
            return;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "-q", "-p", "ifp-host-lambda", "--bin", "bootstrap"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building bootstrap");
    });
    p
}

/// The Lambda Runtime Interface Emulator: `IFP_LAMBDA_RIE`, default
/// `~/.cache/ifp/aws-lambda-rie-x86_64` (`.ci/test.sh` fetches it there).
pub fn rie_path() -> PathBuf {
    let p = std::env::var_os("IFP_LAMBDA_RIE").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/ifp/aws-lambda-rie-x86_64")
    });
    assert!(
        p.is_file(),
        "the Lambda Runtime Interface Emulator is missing at {} (run .ci/test.sh, which fetches it)",
        p.display()
    );
    p
}

/// One Lambda Runtime Interface Emulator running `bootstrap` (3,538 MB configured), in its
/// own process group so that dropping it also ends the function process.
pub struct Emulator {
    child: Child,
    pub port: u16,
    killed: bool,
}

impl Emulator {
    /// Starts an emulator on fresh ports. A port picked free can be taken again before the
    /// emulator binds it (tests run in parallel), so an emulator that exits or does not listen
    /// within 15 s is killed and started again on other ports, up to three times.
    pub fn start(env: &[(&str, String)]) -> Self {
        use std::os::unix::process::CommandExt as _;
        for _ in 0..3 {
            let (port, api) = (free_port(), free_port());
            let mut cmd = Command::new(rie_path());
            cmd.args(["--log-level", "error", "--runtime-interface-emulator-address", &format!("127.0.0.1:{port}")])
                .args(["--runtime-api-address", &format!("127.0.0.1:{api}")])
                .arg(bootstrap())
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3538")
                .env("IFP_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .process_group(0);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("start the Lambda Runtime Interface Emulator");
            let mut emulator = Self { child, port, killed: false };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return emulator;
                }
                if emulator.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            emulator.kill();
        }
        panic!("the Lambda Runtime Interface Emulator did not start (three tries on fresh ports)");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL to the emulator and the function: a crashed execution environment.
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        // The emulator starts the function in a session of its own: kill its descendants by
        // pid first, then the emulator's process group.
        let mut pids = vec![self.child.id()];
        let mut i = 0;
        while i < pids.len() {
            let o = Command::new("pgrep").args(["-P", &pids[i].to_string()]).output().expect("pgrep");
            pids.extend(String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            i += 1;
        }
        for p in pids.iter().rev() {
            let _ = Command::new("kill").args(["-KILL", &p.to_string()]).stderr(Stdio::null()).status();
        }
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}
