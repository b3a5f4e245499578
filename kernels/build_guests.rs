//! Shared by the build scripts that compile guest crates to `wasm32-wasip2` components
//! (`kernels/builtin/build.rs`, `kernels/test-plugins/build.rs`): one nested `cargo build`
//! with SIMD128 and relaxed SIMD, into a guest target directory beside the outer one
//! (`<target>/wasm-kernels/<checkout hash>`), which keeps the outer build's lock free and
//! lets every host profile share one guest build.

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
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128,+relaxed-simd");
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
