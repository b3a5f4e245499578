//! Running the `ifp` binary under test ([`ifp_bin`]): as it is, with static AWS test
//! credentials, or required to succeed and read back through the result file it writes.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::bins::ifp_bin;
use crate::json::load_json;

/// Runs `ifp` with `args`.
pub fn ifp(args: &[&str]) -> Output {
    Command::new(ifp_bin()).args(args).output().expect("run ifp")
}

/// Runs `ifp` with static test credentials for the AWS SDK (and no shared AWS config), as the
/// Lambda backend needs for the emulator.
pub fn ifp_aws(args: &[&str]) -> Output {
    aws_command(args).output().expect("run ifp")
}

/// [`ifp_aws`] started in the background, its output piped.
pub fn ifp_aws_child(args: &[&str]) -> Child {
    aws_command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start ifp")
}

fn aws_command(args: &[&str]) -> Command {
    let mut c = Command::new(ifp_bin());
    c.args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    c
}

/// Runs `ifp` and panics with its stderr unless it succeeds.
pub fn ifp_ok(args: &[&str]) -> Output {
    let o = ifp(args);
    assert!(o.status.success(), "ifp {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Runs `ifp` with `args`, which must fail as bad input does: a non-zero exit, no panic, and
/// exactly one line on stderr, which is returned.
pub fn failure_line(args: &[&str]) -> String {
    let r = ifp(args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{args:?} succeeded; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got: {stderr}");
    lines[0].to_string()
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
