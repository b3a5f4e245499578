//! AWS's Lambda Runtime Interface Emulator running the real `bootstrap` (the Lambda host):
//! one emulator per concurrent invocation, on fresh ports, in its own process group, killed
//! together with its function process on drop (or on demand, as a crashed environment).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::bootstrap;
use crate::ports::free_port;

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
    env: Vec<(String, String)>,
}

impl Emulator {
    /// Starts an emulator on fresh ports. A port picked free can be taken again before the
    /// emulator binds it (tests run in parallel), so an emulator that exits or does not listen
    /// within 15 s is killed and started again on other ports, up to three times.
    pub fn start(env: &[(&str, String)]) -> Self {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        for _ in 0..3 {
            if let Some(e) = Self::start_on(free_port(), &env) {
                return e;
            }
        }
        panic!("the Lambda Runtime Interface Emulator did not start (three tries on fresh ports)");
    }

    /// Kills this emulator and its function (a crashed execution environment) and starts a
    /// fresh one on the same port, as a new execution environment behind the same endpoint.
    pub fn restart(&mut self) {
        self.kill();
        let env = std::mem::take(&mut self.env);
        *self = Self::start_on(self.port, &env).expect("the emulator restarts on its port");
    }

    fn start_on(port: u16, env: &[(String, String)]) -> Option<Self> {
        use std::os::unix::process::CommandExt as _;
        {
            let api = free_port();
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
            let mut emulator = Self { child, port, killed: false, env: env.to_vec() };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(emulator);
                }
                if emulator.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            emulator.kill();
        }
        None
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
