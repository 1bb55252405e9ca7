#!/usr/bin/env bash
# Time-boxed fuzzing for CI (style.md 7.6): builds the cargo-fuzz targets (nightly, ASan) and runs
# each for FUZZ_SECONDS (default 60) on a scratch corpus seeded from the committed one
# (fuzz/corpus/<target>), so CI never rewrites the repository. Any crash, panic, timeout or
# oversized allocation fails the script and leaves the reproducer in fuzz/artifacts/<target>/.
# Reproduce one with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`;
# `SS2D_FUZZ_DEBUG=1` prints the decoded input.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"api differential files"}

if ! cargo +nightly --version >/dev/null 2>&1; then
  if [ "${SS2D_REQUIRE_FUZZ:-0}" = 1 ]; then echo "FAIL: no nightly toolchain"; exit 1; fi
  echo "skip fuzz: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (once; takes a few minutes)"
  cargo install cargo-fuzz --locked
fi

echo "== fuzz: build"
cargo +nightly fuzz build

status=0
for t in $targets; do
  scratch=$(mktemp -d)
  mkdir -p "corpus/$t" "artifacts/$t"
  extra=()
  case $t in
    files) extra=(-dict=files.dict -max_len=65536) ;;
    api) extra=(-max_len=1024) ;;
  esac
  echo "== fuzz: $t for ${secs}s"
  if cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -print_final_stats=1 "${extra[@]}" 2>"$scratch.log"; then
    grep -E '^stat::number_of_executed_units|^Done' "$scratch.log" || true
  else
    status=1
    tail -60 "$scratch.log"
    echo "FAIL: fuzz target $t found a problem (reproducer in fuzz/artifacts/$t/)"
  fi
  rm -rf "$scratch" "$scratch.log"
done
exit $status
