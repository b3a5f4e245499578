//! AWS's Lambda Runtime Interface Emulator running the real `bootstrap`, for the tests that
//! drive `ifp --backend lambda` (lambda.rs, sweep.rs). The emulator binary comes from the
//! aws-sam-cli wheel (`.ci/test.sh` fetches it into `IFP_LAMBDA_RIE`, default
//! `~/.cache/ifp/aws-lambda-rie-x86_64`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `bootstrap` next to `ifp`, rebuilt if needed (cargo builds it with the workspace's tests,
/// but not when only this crate is tested).
pub fn bootstrap() -> PathBuf {
    static BUILD: Once = Once::new();
    let p = Path::new(env!("CARGO_BIN_EXE_ifp")).with_file_name("bootstrap");
    BUILD.call_once(|| {
        if p.is_file() {
            return; // .ci/test.sh builds every binary before the tests
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ok = Command::new("cargo")
            .current_dir(root)
            .args(["build", "-q", "-p", "ifp-host-lambda", "--bin", "bootstrap"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building bootstrap");
    });
    p
}

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

/// One Lambda Runtime Interface Emulator running `bootstrap`, in its own process group so
/// that dropping (or killing) it also ends the function process.
pub struct Emulator {
    child: Child,
    port: u16,
    killed: bool,
}

impl Emulator {
    pub fn start(env: &[(&str, String)]) -> Self {
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
        wait_for_port(port, "the Lambda Runtime Interface Emulator");
        Self { child, port, killed: false }
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

/// Runs `ifp` with static test credentials for the AWS SDK.
pub fn ifp(args: &[&str]) -> Output {
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
