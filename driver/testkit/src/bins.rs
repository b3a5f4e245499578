//! Locating the binaries the tests run (`ifp`, `ifp-worker`, `bootstrap`): those of the same
//! build as the running test, or another build named by an environment variable.
//!
//! A test executable is `<target>/<profile>/deps/<test>-<hash>`, so the binaries of its build
//! are two directories up. Cargo builds `ifp` before the driver's tests; `ifp-worker` and
//! `bootstrap` belong to other packages, so a binary that is missing there is built
//! (`cargo build -p …`, once per test process): `.ci/test.sh` builds every binary before the
//! tests, but `cargo test -p ifp-driver` alone does not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// `ifp` (the driver): `IFP_BIN`, to test another build such as a release binary against the
/// same services, or the one of the running test's build.
pub fn ifp_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    locate("ifp", "IFP_BIN", "ifp-driver", &BUILD)
}

/// `ifp-worker` (one function as a process): `IFP_WORKER_BIN`, or the one of the running
/// test's build, built if missing.
pub fn worker_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    locate("ifp-worker", "IFP_WORKER_BIN", "ifp-host", &BUILD)
}

/// `bootstrap` (the Lambda host): `IFP_BOOTSTRAP`, to run the Lambda tests against another
/// build such as a packaged arm64 `bootstrap` behind a `qemu-aarch64` wrapper script, or the
/// one of the running test's build, built if missing.
pub fn bootstrap() -> PathBuf {
    static BUILD: Once = Once::new();
    locate("bootstrap", "IFP_BOOTSTRAP", "ifp-host-lambda", &BUILD)
}

/// Binary `name` of `package`: the path in `var` when set, else the one next to the test
/// executable, built by `cargo build` (in the same profile) if it is not there.
fn locate(name: &str, var: &str, package: &str, build: &Once) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let dir = build_dir();
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    build.call_once(|| {
        if p.is_file() {
            return;
        }
        // The profile directory `debug` is the `dev` profile; the others carry their names.
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root");
        let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "-q", "--profile", profile, "-p", package, "--bin", name])
            .status()
            .unwrap_or_else(|e| panic!("running cargo to build {name}: {e}"))
            .success();
        assert!(ok, "building {name}");
        assert!(p.is_file(), "{name} is not at {} after building it (set {var} to its path)", p.display());
    });
    p
}

/// `<target>/<profile>`: two directories up from the test executable (`…/deps/<test>-<hash>`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()))
        .to_path_buf()
}
