#!/usr/bin/env bash
# The whole test suite on a fresh machine (Rust, JavaScript, Python): installs what the tests need (the Rust targets,
# the service stand-ins) and runs every test. Services are started by the tests themselves
# on 127.0.0.1 and free ports. Safe to rerun; a persistent CARGO_TARGET_DIR keeps builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ifp-target}"
export CARGO_TERM_COLOR=never

step() { echo "== $*"; }

# A clean build takes about 4 GB here (debug binaries carry no dependency debug info, see the
# workspace Cargo.toml); say how much room there is, so a full disk is recognisable at once.
mkdir -p "$CARGO_TARGET_DIR"
step "disk: $(df -h --output=avail "$CARGO_TARGET_DIR" | tail -1 | tr -d ' ') free for $CARGO_TARGET_DIR"

# The toolchain of rust-toolchain.toml WITHOUT its wasm targets, as a user who installed Rust
# before cloning has it: the build below must add wasm32-wasip2 by itself (the kernels' build
# script runs `rustup target add`), and the README's main command must then work. Where the
# targets are already installed (a reused machine), the install path is checked on a
# hard-linked copy of the toolchain instead; the shared toolchain is never modified.
channel=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
step "toolchain $channel (without the wasm targets: the build adds what it needs)"
rustup toolchain install "$channel" --profile minimal --component rustfmt,clippy 2>&1 | tail -1
if [[ -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]]; then
  step "wasm32-wasip2 already installed: check the build script's install path on a copy of the toolchain"
  bash .ci/target-install-check.sh
fi

# Debian packages the integration tests use.
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v chromium >/dev/null || need_pkgs+=(chromium)          # the browser test of kernels/js/www
command -v openssl >/dev/null || need_pkgs+=(openssl)            # certificates for the rediss:// test
if ((${#need_pkgs[@]})); then
  step "apt-get install ${need_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# wasm-bindgen-cli must be the exact version of the wasm-bindgen crate (pinned in Cargo.toml).
wb_version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' Cargo.toml)
if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb_version" ]]; then
  step "cargo install wasm-bindgen-cli $wb_version"
  cargo install -q wasm-bindgen-cli --version "$wb_version"
fi

# AWS's Lambda Runtime Interface Emulator, shipped inside the aws-sam-cli wheel on PyPI: the
# Lambda tests run the real `bootstrap` under it (driver/tests/lambda.rs reads IFP_LAMBDA_RIE).
export IFP_LAMBDA_RIE="${IFP_LAMBDA_RIE:-$HOME/.cache/ifp/aws-lambda-rie-x86_64}"
if [[ ! -x "$IFP_LAMBDA_RIE" ]]; then
  step "fetch the Lambda Runtime Interface Emulator (aws-sam-cli wheel)"
  rie_tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: aws-sam-cli -d "$rie_tmp"
  python3 - "$rie_tmp" "$IFP_LAMBDA_RIE" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "aws_sam_cli-*.whl"))[0]
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
with zipfile.ZipFile(wheel) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read("samcli/local/rapid/aws-lambda-rie-x86_64"))
os.chmod(sys.argv[2] + ".part", 0o755)
os.replace(sys.argv[2] + ".part", sys.argv[2])
PY
  rm -rf "$rie_tmp"
fi

# The S3-compatible server the S3 tests start (s3s-fs 0.14.1; later versions need a newer rustc).
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v s3s-fs >/dev/null; then
  step "cargo install s3s-fs@0.14.1"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

step "cargo build (debug profile): every binary the tests run (ifp, ifp-worker, bootstrap)"
cargo build 2>&1

step "the README's main command (\`ifp run kmeans\`, debug build of the same binary)"
cargo run -q -p ifp-driver -- run kmeans 2>&1

step "the README's plugin in one step: build the example plugin, run it with --kernel"
cargo build -q -p ifp-plugin-linreg --target wasm32-wasip2 --profile wasm 2>&1
plugin_tmp="$(mktemp -d)"
cargo run -q -p ifp-driver -- gen logreg --rows 20000 --cols 8 --out "$plugin_tmp/linear.csv" 2>&1
cargo run -q -p ifp-driver -- run --kernel "$CARGO_TARGET_DIR/wasm32-wasip2/wasm/ifp_plugin_linreg.wasm" \
  --data "$plugin_tmp/linear.csv" --label-col last --param learning-rate=0.3 2>&1 | tail -3
rm -rf "$plugin_tmp"

step "cargo test (debug profile, default members: everything but the wasm-only guest crates)"
cargo test 2>&1

step "the criterion benchmarks compile (built like tests; \`cargo bench\` times them)"
cargo test --benches --no-run 2>&1

step "kernels/js: build for wasm32-unknown-unknown, bind for Node.js and the browser, run the JS tests"
rustup target add wasm32-unknown-unknown 2>&1 | tail -1
js_target="$CARGO_TARGET_DIR/js"
CARGO_ENCODED_RUSTFLAGS="-Ctarget-feature=+simd128" CARGO_PROFILE_WASM_STRIP=false \
  cargo build -q --target wasm32-unknown-unknown --profile wasm -p ifp-kernels-js --target-dir "$js_target"
js_wasm="$js_target/wasm32-unknown-unknown/wasm/ifp_kernels_js.wasm"
wasm-bindgen --target nodejs --out-dir "$js_target/pkg-node" "$js_wasm"
wasm-bindgen --target web --out-dir kernels/js/www/pkg "$js_wasm"
IFP_JS_NODE_PKG="$js_target/pkg-node" node --test kernels/js/tests/ 2>&1

step "python/: build the ifp wheel (debug profile, reusing the target dir's builds) into a virtual environment, run the Python tests"
py_venv="$CARGO_TARGET_DIR/venv-py"
[[ -x "$py_venv/bin/python" ]] || python3 -m venv "$py_venv"
"$py_venv/bin/pip" install -q -r python/requirements-test.txt
rm -rf "$CARGO_TARGET_DIR/wheels"
"$py_venv/bin/maturin" build -q -m python/Cargo.toml -o "$CARGO_TARGET_DIR/wheels" 2>&1
"$py_venv/bin/pip" install -q --force-reinstall --no-deps "$CARGO_TARGET_DIR"/wheels/ifp-*.whl
# From the repository root, so `import ifp` is the installed wheel, not python/ifp.
"$py_venv/bin/python" -m pytest -q -p no:cacheprovider python/tests 2>&1
