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

step "cargo test (debug profile, default members: everything but the wasm-only guest crates)"
cargo test 2>&1
