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

step "cargo test (debug profile, default members: everything but the wasm-only guest crates)"
cargo test 2>&1
