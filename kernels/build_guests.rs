//! Shared by the build scripts that compile guest crates to `wasm32-wasip2` components
//! (`kernels/builtin/build.rs`, `kernels/test-plugins/build.rs`): one nested `cargo build`
//! with SIMD128 and relaxed SIMD, into a guest target directory beside the outer one
//! (`<target>/wasm-kernels/<checkout hash>`), which keeps the outer build's lock free and
//! lets every host profile share one guest build.
//!
//! A toolchain installed before this repository was cloned lacks the wasm target (rustup
//! adds the targets of `rust-toolchain.toml` only when it installs the toolchain), so the
//! build adds it through rustup, saying so in one line, and stops with one line where
//! rustup is absent.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// The repository root, from a build script's `CARGO_MANIFEST_DIR` two levels below it.
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    manifest_dir.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds `packages` for [`TARGET`] with the `wasm` profile and returns the component file
/// of each (in order). Panics with a hint when the build fails.
pub fn build(root: &Path, packages: &[&str]) -> Vec<PathBuf> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // One guest build per checkout, so that checkouts sharing a target directory never
    // embed each other's kernels.
    let target_dir = guest_target_dir(&out_dir).join(format!("{:016x}", fnv1a(root.to_string_lossy().as_bytes())));
    ensure_target(&target_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--profile", "wasm", "--target", TARGET, "--target-dir"]).arg(&target_dir);
    for pkg in packages {
        cmd.args(["-p", pkg]);
    }
    // The outer build's flags and wrappers are for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    // `-disable-lsr`: LLVM's loop strength reduction rewrites a loop's addresses as
    // `pointer + constant` without the no-wrap flag, so the wasm backend cannot fold the
    // constant into the load's offset, and cranelift (wasm addresses wrap at 2^32) then
    // compiles every such add to its own `lea`. Without the pass the kernels run fewer
    // instructions (cachegrind, 100,000 × 32, k = 16, three steps: Lloyd 350 M → 320 M, the
    // scoring loop 69 → 62 instructions per column of three rows; logistic regression −1.6 %)
    // and Lloyd's step took 62.8 against 70.4 ms (1,000,000 rows, one inner worker, fastest
    // of 6 interleaved runs).
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128,+relaxed-simd\x1f-Cllvm-args=-disable-lsr");
    let status = cmd.status().expect("could not run cargo to build the wasm kernels");
    if !status.success() {
        panic!(
            "building the wasm kernels failed; if the target is missing, run `rustup target add {TARGET}` \
             (or `rustup toolchain install` in the repository root)"
        );
    }
    packages
        .iter()
        .map(|pkg| {
            let file = target_dir.join(TARGET).join("wasm").join(format!("{}.wasm", pkg.replace('-', "_")));
            assert!(file.exists(), "missing guest output {}", file.display());
            file
        })
        .collect()
}

/// Writes `contents` to `path` as a new file (written beside it, then renamed over it), never
/// into the existing one: target directories copied with hard links (`cp -al`, as CI caches
/// and parallel checkouts do) share their files' inodes, and writing in place would change
/// every copy, so one checkout's build would embed another's kernels.
pub fn write_new_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Whether the toolchain's standard library for [`TARGET`] is installed: the directory
/// `rustc` would load it from holds `core`.
fn target_installed(rustc: &str) -> bool {
    let Ok(out) = Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]).output() else {
        return false;
    };
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && std::fs::read_dir(libdir)
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
            .unwrap_or(false)
}

/// Adds [`TARGET`] to the building toolchain with `rustup target add` when it is missing (one
/// line, as a cargo warning). Two build scripts may get here at once: a lock file beside the
/// guest build makes the second wait and find the target installed. Exits with one line
/// when the target is missing and rustup is absent or fails.
fn ensure_target(lock_dir: &Path) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if target_installed(&rustc) {
        return;
    }
    std::fs::create_dir_all(lock_dir).expect("creating the guest target directory");
    let lock = std::fs::File::create(lock_dir.join(".rustup-target-add.lock")).expect("creating a lock file");
    lock.lock().expect("locking the rustup lock file");
    if target_installed(&rustc) {
        return;
    }
    let fail = |why: &str| -> ! {
        eprintln!(
            "error: the {TARGET} target is not installed and {why}; install it with `rustup target add {TARGET}` \
             (rustup: https://rustup.rs)"
        );
        std::process::exit(1)
    };
    if Command::new("rustup").arg("--version").output().is_err() {
        fail("rustup is not on PATH to add it");
    }
    // rustup's proxies set RUSTUP_TOOLCHAIN for the build; `rustup target add` reads it too,
    // so the target goes to the toolchain that builds (the one rust-toolchain.toml names).
    let toolchain =
        std::env::var("RUSTUP_TOOLCHAIN").map(|t| format!("toolchain {t}")).unwrap_or("the toolchain".into());
    println!("cargo:warning=adding the {TARGET} target to {toolchain}, which lacks it (rustup target add {TARGET})");
    let added = Command::new("rustup").args(["target", "add", TARGET]).stdout(std::process::Stdio::null()).output();
    match added {
        Err(e) => fail(&format!("rustup could not be run ({e})")),
        Ok(o) if !o.status.success() => fail(&format!(
            "`rustup target add {TARGET}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
        )),
        Ok(_) if !target_installed(&rustc) => {
            fail(&format!("`rustup target add {TARGET}` did not install it for {rustc}"))
        }
        Ok(_) => {}
    }
}

/// `<target>/wasm-kernels`, where `<target>` is the outer build's target directory (the
/// nearest ancestor of `OUT_DIR` holding cargo's `CACHEDIR.TAG`).
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let target = out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .unwrap_or_else(|| out_dir.ancestors().nth(3).expect("OUT_DIR is <target>/<profile>/build/<pkg>/out"));
    target.join("wasm-kernels")
}

/// FNV-1a, to name a checkout's guest directory after its path.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}
