#!/usr/bin/env bash
# Checks that building the kernels on a toolchain WITHOUT the wasm32-wasip2 target adds it
# through rustup (kernels/build_guests.rs), without touching the installed toolchain (other
# builds may share it): a hard-linked copy of the toolchain minus its wasm targets builds
# `ifp-kernels`, with a stand-in `rustup` on PATH whose `target add` links the real target's
# files into the copy. Also checks the one-line failure where rustup is absent.
# Takes ~2 minutes on 2 cores (the guest kernels are built from scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
target=wasm32-wasip2
real_sysroot="$(rustc --print sysroot)"
[[ -d "$real_sysroot/lib/rustlib/$target" ]] || { echo "target-install-check: $target is not installed in $real_sysroot to copy from"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tc="$work/toolchain"
cp -al "$(readlink -f "$real_sysroot")" "$tc"
# Never delete through a link into the real toolchain.
[[ ! -L "$tc" && "$(readlink -f "$tc")" == "$work/toolchain" ]]
rm -rf "$tc/lib/rustlib/wasm32-"*/
mkdir "$work/stub"
cat >"$work/stub/rustup" <<STUB
#!/bin/sh
echo "\$*" >>"$work/rustup-calls"
case "\$1 \$2" in
  "target add") cp -al "$real_sysroot/lib/rustlib/\$3" "$tc/lib/rustlib/\$3" ;;
  *) [ "\$1" = --version ] || exit 2 ;;
esac
STUB
chmod +x "$work/stub/rustup"
build() { env -u RUSTUP_TOOLCHAIN -u RUSTC CARGO_TARGET_DIR="$work/target" PATH="$1" cargo build -p ifp-kernels 2>&1; }

# No rustup: one line saying what is missing and how to add it.
if out="$(build "$tc/bin:/usr/bin:/bin")"; then echo "target-install-check: built without $target and rustup"; exit 1; fi
grep -q "error: the $target target is not installed and rustup is not on PATH" <<<"$out" \
  || { echo "target-install-check: unexpected failure without rustup:"; echo "$out" | tail -5; exit 1; }

# With rustup: the build adds the target, says so in one line, and succeeds.
out="$(build "$work/stub:$tc/bin:/usr/bin:/bin")" || { echo "$out" | tail -20; exit 1; }
grep -q "adding the $target target" <<<"$out" || { echo "target-install-check: no line about adding the target"; exit 1; }
grep -qx "target add $target" "$work/rustup-calls"
[[ -d "$tc/lib/rustlib/$target" ]]
echo "target-install-check: ok (missing $target added through rustup; one-line error without rustup)"
