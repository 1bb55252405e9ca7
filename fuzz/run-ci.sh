#!/usr/bin/env bash
# Fuzzing for CI. Always: builds the cargo-fuzz targets (nightly, ASan) and replays every input
# of the committed corpora (fuzz/corpus/<target>, the regression inputs of fixed bugs included)
# once. Then runs each target for FUZZ_SECONDS (default 60; 0 skips this part) on a scratch
# corpus seeded with a sample of the committed one, so CI never rewrites the repository. Both
# parts run the targets at once. Any crash, panic, timeout or oversized allocation fails the
# script and leaves the reproducer in fuzz/artifacts/<target>/. Reproduce one with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`, or in exactly the build CI
# used (flags below) with `CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo +nightly fuzz run
# --codegen-units 16 <target> <file>`; `SS2D_FUZZ_DEBUG=1` prints the decoded input.
#
# Without a nightly toolchain this is a failure under CI (`CI` set to anything but empty, 0 or
# false) or with SS2D_REQUIRE_FUZZ=1, and a visible skip (exit 0) elsewhere.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"api differential files"}

required() {
  [ "${SS2D_REQUIRE_FUZZ:-0}" = 1 ] && return 0
  case "${CI:-}" in "" | 0 | false) return 1 ;; *) return 0 ;; esac
}

if ! cargo +nightly --version >/dev/null 2>&1; then
  if required; then echo "FAIL: fuzz: no nightly toolchain (rustup toolchain install nightly)"; exit 1; fi
  echo "SKIP fuzz: no nightly toolchain (rustup toolchain install nightly); CI fails here"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (once)"
  # Unoptimized (--debug): a thin wrapper around cargo whose speed does not matter, and an
  # optimized build of its dependencies took minutes of a fresh CI machine's budget.
  cargo install cargo-fuzz --locked --debug
fi

# Every build and run below passes the same flags (different ones would rebuild). Codegen
# units: 16 instead of cargo-fuzz's 1 for optimized builds, so that the instrumented ss2d-core
# compiles on every core (a clean-clone CI spent 7 of its 40 minutes here; 420 -> 311 s for
# the ss2d crates on the 2-core dev VM); fuzzing throughput hardly matters for a smoke run.
flags=(--codegen-units 16)
# Optimization level 1 instead of 3 for the same reason: measured back to back on the dev VM
# (`touch ss2d-core/src/lib.rs`, then build and replay the three corpora), level 3 built in
# 348 s and replayed in 51 s, level 1 in 249 s and 80 s. Fuzzing runs at about two thirds of the
# executions per second. A local `cargo +nightly fuzz run` (level 3) rebuilds once.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=1

echo "== fuzz: build"
cargo +nightly fuzz build "${flags[@]}"

# After a failure, the facts a reader of a truncated CI log needs, printed last: the panic or
# sanitizer message, the decoded input, and the reproducer itself (base64), so that a failure
# on a machine nobody can log into can be replayed locally
# (`base64 -d > crash && cargo +nightly fuzz run <target> crash`, with the level and codegen
# units above for CI's exact build).
report() {
  local t=$1 log=$2 art
  art=$(ls -t "artifacts/$t"/* 2>/dev/null | head -1 || true)
  echo "== fuzz: $t: failure summary"
  grep -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY:" "$log" | head -4 || true
  grep -A3 "panicked at" "$log" | sed -n 2,4p | cut -c1-400 || true
  if [ -n "$art" ]; then
    echo "decoded input:"
    # With the replay's time limit: libFuzzer's default for one input is 1200 s, and a timeout
    # artifact run without it once held a CI run for those 20 minutes.
    SS2D_FUZZ_DEBUG=1 cargo +nightly fuzz run "${flags[@]}" "$t" "$art" -- -runs=1 -timeout=20 2>&1 |
      awk '/^[A-Z][A-Za-z0-9_]* ?[({]$/ { p = 1 } p { print } p && /^[)}]$/ { exit }' |
      tr -s ' \n' ' ' | cut -c1-1500
    echo
    echo "reproducer $art ($(wc -c <"$art") bytes), base64:"
    head -c 4096 "$art" | base64 -w0
    echo
  fi
}

# The replays and the timed runs below run all targets at once (each is one process; CI's
# machine has 2 cores, and 3 x 30 s one after the other was 90 s of its 40-minute budget); each
# target's output goes to its own log, printed in order once all have finished.
status=0
declare -A pid log
for t in $targets; do
  n=$(find "corpus/$t" -type f 2>/dev/null | wc -l)
  if [ "$n" -eq 0 ]; then
    echo "FAIL: fuzz: corpus/$t is empty (zero inputs is not a replay)"
    status=1
    continue
  fi
  echo "== fuzz: $t: replay $n corpus inputs"
  log[$t]=$(mktemp)
  # -runs=0: execute every input of the given corpus once, then stop.
  cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- -runs=0 -timeout=20 -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 >"${log[$t]}" 2>&1 &
  pid[$t]=$!
done
for t in $targets; do
  [ -n "${pid[$t]:-}" ] || continue
  if wait "${pid[$t]}"; then
    echo "== fuzz: $t: replay: $(grep -E 'INITED|DONE' "${log[$t]}" | tail -2 | tr '\n' ' ')"
  else
    status=1
    tail -60 "${log[$t]}"
    echo "FAIL: fuzz target $t fails on a committed corpus input"
  fi
  rm -f "${log[$t]}"
done

if [ "$secs" -gt 0 ]; then
  declare -A scratch
  pid=()
  for t in $targets; do
    scratch[$t]=$(mktemp -d)
    mkdir -p "corpus/$t" "artifacts/$t"
    extra=()
    case $t in
      files) extra=(-dict=files.dict -max_len=65536) ;;
      api) extra=(-max_len=1024) ;;
    esac
    # Seeds: a random sample of the committed corpus (up to 128 inputs, copied into the
    # scratch corpus), not all of it. libFuzzer first runs every seed once whatever the time
    # limit, and with the whole corpus (1180 and 2036 inputs) `differential` and `api` spent
    # their 30 s on that alone: the replay above again, no input of their own.
    find "corpus/$t" -type f | shuf -n 128 | xargs -r cp -t "${scratch[$t]}"
    echo "== fuzz: $t for ${secs}s (seeds: $(find "${scratch[$t]}" -type f | wc -l) corpus inputs)"
    cargo +nightly fuzz run "${flags[@]}" "$t" "${scratch[$t]}" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -print_final_stats=1 "${extra[@]}" 2>"${scratch[$t]}.log" &
    pid[$t]=$!
  done
  for t in $targets; do
    s=${scratch[$t]}
    if wait "${pid[$t]}"; then
      echo "== fuzz: $t: $(grep -E '^stat::number_of_executed_units|^Done' "$s.log" | tr '\n' ' ')"
    else
      status=1
      tail -60 "$s.log"
      report "$t" "$s.log"
      echo "FAIL: fuzz target $t found a problem (reproducer in fuzz/artifacts/$t/)"
    fi
    rm -rf "$s" "$s.log"
  done
fi
exit $status
