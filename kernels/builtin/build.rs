//! Compiles the guest kernel crates for `wasm32-wasip2` (with SIMD128 and relaxed SIMD) and
//! exposes the component files to `src/lib.rs`, so that building any host needs no extra step.
//!
//! The guests are built by a nested `cargo build` into their own target directory beside the
//! outer one (`<target>/wasm-kernels`), which keeps the outer build's lock free and lets every
//! host profile share one guest build.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[(&str, &str)] = &[("kmeans", "ifp-kernel-kmeans"), ("logreg", "ifp-kernel-logreg")];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().parent().unwrap().to_path_buf();
    for dir in ["wit", "kernels/math", "kernels/guest", "kernels/kmeans", "kernels/logreg"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // One guest build per checkout, so that checkouts sharing a target directory never
    // embed each other's kernels.
    let target_dir = guest_target_dir(&out_dir).join(format!("{:016x}", fnv1a(root.to_string_lossy().as_bytes())));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", "wasm", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for (_, pkg) in GUESTS {
        cmd.args(["-p", pkg]);
    }
    // The outer build's flags and wrappers are for the host, not for the guests.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTFLAGS"] {
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
    let mut consts = String::new();
    for (name, pkg) in GUESTS {
        let file = target_dir.join(TARGET).join("wasm").join(format!("{}.wasm", pkg.replace('-', "_")));
        assert!(file.exists(), "missing guest output {}", file.display());
        consts.push_str(&format!(
            "/// The `{name}` kernel component (wasm32-wasip2).\npub const {}: &[u8] = include_bytes!({:?});\n",
            name.to_uppercase(),
            file.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("kernels.rs"), consts).unwrap();
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
