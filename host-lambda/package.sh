#!/usr/bin/env bash
# Builds `bootstrap` for AWS Lambda's provided.al2023 runtime and zips it, in the layout
# `cargo lambda build` uses: target/lambda/bootstrap/bootstrap (+ bootstrap.zip) for x86_64,
# and the same under target/lambda-arm64/ for arm64.
#
#   host-lambda/package.sh [x86_64|arm64|all]      (default: x86_64)
#
# The x86_64 build is native (glibc; provided.al2023 ships glibc 2.34, so build on a machine
# whose glibc is not newer, or use the musl target: IFP_LAMBDA_LIBC=musl). The zip also holds
# the builtin kernels precompiled for that machine (kernels/*.cwasm), so a cold start
# deserializes them instead of compiling. arm64 needs the aarch64 target and a cross linker
# (rustup target add aarch64-unknown-linux-gnu; apt-get install gcc-aarch64-linux-gnu); with
# qemu-user installed its kernels are precompiled under emulation, else they are compiled on
# first use and cached in /tmp. Debian's cross glibc is 2.36, but the binary only asks for
# symbols up to GLIBC_2.34 (check: aarch64-linux-gnu-objdump -T bootstrap | grep GLIBC_).
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-x86_64}"
libc="${IFP_LAMBDA_LIBC:-gnu}"
target_dir="${CARGO_TARGET_DIR:-target}"

build() {
  local arch="$1" triple
  case "$arch" in
    x86_64) triple="x86_64-unknown-linux-$libc" ;;
    arm64) triple="aarch64-unknown-linux-$libc" ;;
    *) echo "unknown architecture '$arch' (x86_64, arm64, all)" >&2; exit 2 ;;
  esac
  if ! rustup target list --installed | grep -qx "$triple"; then
    echo "skipping $arch: the Rust target $triple is not installed (rustup target add $triple)" >&2
    return 0
  fi
  local linker_env=()
  if [[ "$arch" == arm64 && "$(uname -m)" != aarch64 ]]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || { echo "skipping arm64: no aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)" >&2; return 0; }
    linker_env=(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc)
  fi
  env "${linker_env[@]}" cargo build --release --locked -p ifp-host-lambda --bin bootstrap --target "$triple"
  local dir="target/lambda/bootstrap"
  [[ "$arch" == arm64 ]] && dir="target/lambda-arm64/bootstrap"
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$target_dir/$triple/release/bootstrap" "$dir/bootstrap"
  local strip=strip
  [[ "$arch" == arm64 && "$(uname -m)" != aarch64 ]] && strip=aarch64-linux-gnu-strip
  "$strip" "$dir/bootstrap" 2>/dev/null || echo "note: $strip could not strip $dir/bootstrap" >&2
  if [[ "$arch" == "$(uname -m | sed 's/aarch64/arm64/')" ]]; then
    "$dir/bootstrap" precompile "$dir/kernels" >/dev/null
  elif [[ "$arch" == arm64 ]] && command -v qemu-aarch64 >/dev/null && [[ -d /usr/aarch64-linux-gnu ]]; then
    # Cross-built: precompile under user-mode emulation (apt-get install qemu-user). A kernel
    # compiled for features a Graviton lacks is refused at load, and the host compiles instead.
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$dir/bootstrap" precompile "$dir/kernels" >/dev/null
  else
    echo "note: no precompiled kernels in the $arch zip (they are compiled on first use and cached in /tmp)" >&2
  fi
  (cd "$dir" && rm -f bootstrap.zip && python3 - <<'PY'
import os, zipfile
with zipfile.ZipFile("bootstrap.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for root, _, files in os.walk("."):
        for f in sorted(files):
            p = os.path.join(root, f)[2:]
            if p != "bootstrap.zip":
                z.write(p, p)
PY
  )
  echo "$dir/bootstrap.zip: $(stat -c %s "$dir/bootstrap.zip") bytes ($arch)"
}

case "$arch" in
  all) build x86_64; build arm64 ;;
  *) build "$arch" ;;
esac
