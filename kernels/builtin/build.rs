//! Compiles the guest kernel crates for `wasm32-wasip2` (with SIMD128 and relaxed SIMD) and
//! exposes the component files to `src/lib.rs`, so that building any host needs no extra step.
//! The nested build itself lives in `kernels/build_guests.rs`.

use std::path::PathBuf;

#[path = "../build_guests.rs"]
mod build_guests;

const GUESTS: &[(&str, &str)] = &[("kmeans", "ifp-kernel-kmeans"), ("logreg", "ifp-kernel-logreg")];

fn main() {
    let root = build_guests::repo_root();
    for dir in ["wit", "kernels/math", "kernels/guest", "kernels/kmeans", "kernels/logreg", "kernels/build_guests.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());

    let packages: Vec<&str> = GUESTS.iter().map(|(_, p)| *p).collect();
    let files = build_guests::build(&root, &packages);
    let mut consts = String::new();
    for ((name, _), file) in GUESTS.iter().zip(&files) {
        consts.push_str(&format!(
            "/// The `{name}` kernel component (wasm32-wasip2).\npub const {}: &[u8] = include_bytes!({:?});\n",
            name.to_uppercase(),
            file.display().to_string()
        ));
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    build_guests::write_new_file(&out_dir.join("kernels.rs"), &consts);
}
