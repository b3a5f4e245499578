//! Compiles the example plugin (`kernels/examples/linreg`) and the hostile sandbox test
//! plugins beside this file to `wasm32-wasip2` components, and writes their paths as
//! constants for `src/lib.rs`, so that tests need no manual build step.

use std::path::PathBuf;

#[path = "../build_guests.rs"]
mod build_guests;

/// (constant, package).
const PLUGINS: &[(&str, &str)] = &[
    ("LINREG", "ifp-plugin-linreg"),
    ("LINREG_SPARSE", "ifp-plugin-linreg-sparse"),
    ("SPIN", "ifp-hostile-spin"),
    ("HOG", "ifp-hostile-hog"),
    ("PANIC", "ifp-hostile-panic"),
    ("SNOOP", "ifp-hostile-snoop"),
    ("CHATTY", "ifp-hostile-chatty"),
    ("CLOCKS", "ifp-hostile-clocks"),
    ("WRONG_WORLD", "ifp-hostile-wrong-world"),
];

fn main() {
    let root = build_guests::repo_root();
    for dir in
        ["wit", "kernels/math", "kernels/guest", "kernels/examples", "kernels/test-plugins", "kernels/build_guests.rs"]
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    let packages: Vec<&str> = PLUGINS.iter().map(|(_, p)| *p).collect();
    let files = build_guests::build(&root, &packages);
    let mut consts = String::new();
    for ((name, pkg), file) in PLUGINS.iter().zip(&files) {
        consts.push_str(&format!(
            "/// The `{pkg}` component file.\npub const {name}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    build_guests::write_new_file(&out_dir.join("plugins.rs"), &consts);
}
