#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (the Rust targets,
# the service stand-ins) and runs every test. Services are started by the tests themselves
# on 127.0.0.1 and free ports. Safe to rerun; a persistent CARGO_TARGET_DIR keeps builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ifp-target}"
export CARGO_TERM_COLOR=never

step() { echo "== $*"; }

step "toolchain and wasm targets (rust-toolchain.toml)"
rustup toolchain install 2>&1 | tail -1

# Debian packages the integration tests use.
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
if ((${#need_pkgs[@]})); then
  step "apt-get install ${need_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The S3-compatible server the S3 tests start (s3s-fs 0.14.1; later versions need a newer rustc).
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v s3s-fs >/dev/null; then
  step "cargo install s3s-fs@0.14.1"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

step "cargo test (debug profile, default members: everything but the wasm-only guest crates)"
cargo test 2>&1
