#!/usr/bin/env bash
# no_std gate for ss2d-core:
#  1. `ensure-no-std` (a #![no_std] staticlib with its own #[panic_handler] that calls the
#     scans) passes `cargo clippy -D warnings`: if std leaks into ss2d-core's graph the check
#     fails with E0152 (the duplicate lang item is found by the analysis, no code generation
#     needed: a debug and a release build here took 3 of CI's minutes for the same answer);
#  2. the gate's self-test: the same crate with `--features leak-std` (links std on purpose)
#     must fail `cargo check` with E0152, so a gate that silently stopped working is noticed;
#  3. `cargo tree -p ss2d-core -e normal,features` shows no `std` feature on any dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
target=${CARGO_TARGET_DIR:-target}/ensure-no-std
manifest=ensure-no-std/Cargo.toml

echo "== no_std: ensure-no-std checks (clippy -D warnings)"
CARGO_TARGET_DIR="$target" cargo clippy -q --manifest-path "$manifest" -- -D warnings

echo "== no_std: the gate catches a std leak (expects E0152)"
if log=$(CARGO_TARGET_DIR="$target" cargo check -q --manifest-path "$manifest" --features leak-std 2>&1); then
  echo "FAIL: ensure-no-std built with std linked in; the gate is broken"
  exit 1
fi
if ! grep -q 'E0152' <<<"$log"; then
  echo "FAIL: the leak-std build failed, but not with E0152:"
  echo "$log"
  exit 1
fi

echo "== no_std: no \`std\` feature in ss2d-core's dependency tree"
tree=$(cargo tree -p ss2d-core -e normal,features --prefix none)
if grep -E 'feature "std"' <<<"$tree"; then
  echo "FAIL: a dependency of ss2d-core has its std feature enabled (above)"
  exit 1
fi
grep -q '^ss2d-core ' <<<"$tree" || { echo "FAIL: cargo tree printed no ss2d-core"; echo "$tree"; exit 1; }
echo "ok: ss2d-core is no_std"
