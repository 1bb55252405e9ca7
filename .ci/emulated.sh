#!/usr/bin/env bash
# Cross-target checks under QEMU user emulation.
#
#   aarch64   Cross-builds for aarch64-unknown-linux-gnu with Debian's rustc (package rustc-web,
#             whose arm64 std is libstd-rust-web-dev:arm64) and runs, under qemu-aarch64:
#             the single-threaded conformance runner (tests/tests/single_thread.rs) and the CLI
#             on the goldens with --threads 1 (scan, cross-scan, cross-merge, layer). Threads
#             cannot run there: under Debian's qemu-user 7.2 on this host a thread spawn never
#             returns (libtest and rayon pools hang), so everything runs on the calling thread.
#   x86-cpus  Takes the CLI and libss2d_capi.so from the README's test command's build (`cargo
#             test --workspace --release --no-run`: nothing to do after CI's test stage; a
#             `cargo build` resolves dependency features without the dev-dependencies and would
#             rebuild the ss2d crates; the caller's RUSTFLAGS and .cargo/config.toml, no flags
#             of ours) and runs them under qemu-x86_64 on CPUs
#             without AVX-512 (-cpu Haswell: AVX2+FMA) and without AVX (-cpu Nehalem): the C
#             example (all exec modes, threads included: qemu-x86_64 runs them) over the
#             selective-scan and small layer goldens, and the CLI's scans plus one 56x56 layer.
#             (The full conformance runner takes over 10 minutes under x86 emulation.)
#
# Usage: .ci/emulated.sh [aarch64] [x86-cpus]      (no argument: both)
# Golden data: $SS2D_GOLDEN_DIR, else testdata/golden.
# Missing tools are installed with apt-get when running as root. A tool still missing is a
# failure when CI=true, otherwise a counted skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
export CARGO_TERM_COLOR=never

GOLDEN=$(realpath -m "${SS2D_GOLDEN_DIR:-testdata/golden}")
export SS2D_GOLDEN_DIR=$GOLDEN
A64=aarch64-unknown-linux-gnu
A64_SYSROOT=/usr/aarch64-linux-gnu
A64_RUSTC=${SS2D_AARCH64_RUSTC:-/usr/bin/rustc}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
skips=0
failures=0

unavailable() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $1 (CI=true: a missing tool is a failure)"
    exit 1
  fi
  echo "SKIP: $1"
  skips=$((skips + 1))
}

fail() {
  echo "FAIL: $1" >&2
  failures=$((failures + 1))
}

# The `Executable` path that `cargo test --no-run` prints for the single_thread runner.
runner_path() {
  sed -n 's/.*Executable tests\/single_thread.rs (\(.*\))$/\1/p' | tail -1
}

# cli_case CMD GOLDEN TOL: `ss2d CMD GOLDEN OUT --threads 1` through ${EMU[@]}, then the
# runner's `compare OUT GOLDEN TOL` through ${CMP[@]}. Needs $CLI and $RUNNER.
cli_case() {
  local cmd=$1 f=$2 tol=$3 out
  out=$TMP/$cmd-$(basename "$f")
  "${EMU[@]}" "$CLI" "$cmd" "$f" "$out" --threads 1 2>&1 | quiet \
    && "${CMP[@]}" "$RUNNER" compare "$out" "$f" "$tol" 2>&1 | quiet \
    || fail "ss2d $cmd $(basename "$f") under ${EMU[*]}"
  cli_n=$((cli_n + 1))
}

# The output of a command under qemu-x86_64 without its warnings about CPUID bits it ignores.
quiet() {
  grep -v "TCG doesn't support requested feature" || true
}

# cli_cases: the CLI on every golden of the given groups (cross-scan/merge bitwise).
cli_cases() {
  cli_n=0
  local f
  for f in "$GOLDEN"/selective_scan/*.safetensors; do cli_case scan "$f" 1e-4; done
  for f in "$GOLDEN"/cross_scan/*.safetensors; do
    cli_case cross-scan "$f" 0
    cli_case cross-merge "$f" 0
  done
  for f in "$GOLDEN"/ss2d/*.safetensors; do cli_case layer "$f" 1e-4; done
  echo "CLI cases: $cli_n"
  [ "$cli_n" -gt 0 ] || fail "no CLI cases (golden data in $GOLDEN?)"
}

run_aarch64() {
  echo "== aarch64 (QEMU user, single-threaded)"
  local libdir
  has_a64() {
    libdir=$("$A64_RUSTC" --print target-libdir --target "$A64" 2>/dev/null) \
      && compgen -G "$libdir/libstd-*.rlib" >/dev/null \
      && command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null \
      && [ -d "$A64_SYSROOT/lib" ]
  }
  has_a64 || apt_install "${EMULATED_PKGS[@]}"
  if ! has_a64; then
    unavailable "aarch64: needs $A64_RUSTC with the $A64 std, aarch64-linux-gnu-gcc, qemu-aarch64, $A64_SYSROOT"
    return
  fi
  local start=$SECONDS q=(qemu-aarch64 -L "$A64_SYSROOT")
  # RUSTFLAGS="": the workspace's [build] rustflags are for x86 (target-cpu=native).
  # Optimization level 1: the values do not depend on it (no fast-math), and the cross build
  # (every dependency, for a target no other stage builds) takes less time than at level 3.
  local env=(env RUSTC="$A64_RUSTC" RUSTFLAGS= CARGO_TARGET_DIR=target/aarch64
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc)
  "${env[@]}" cargo build -q --release --target "$A64" -p ss2d-cli
  RUNNER=$("${env[@]}" cargo test --release --target "$A64" -p ss2d-conformance \
    --test single_thread --no-run 2>&1 | tee "$TMP/build.log" | runner_path)
  [ -n "$RUNNER" ] || { cat "$TMP/build.log"; fail "aarch64: no runner built"; return; }
  CLI=target/aarch64/$A64/release/ss2d
  echo "built in $((SECONDS - start)) s ($("$A64_RUSTC" --version))"
  start=$SECONDS
  "${q[@]}" "$RUNNER" || fail "aarch64: conformance runner"
  echo "aarch64 runner: $((SECONDS - start)) s"
  start=$SECONDS
  EMU=("${q[@]}") CMP=("${q[@]}")
  cli_cases
  echo "aarch64 CLI: $((SECONDS - start)) s"
}

run_x86_cpus() {
  echo "== x86-64 CPUs without AVX-512 / AVX (QEMU user)"
  command -v qemu-x86_64 >/dev/null || apt_install qemu-user
  if ! command -v qemu-x86_64 >/dev/null || ! command -v "${CC:-cc}" >/dev/null; then
    unavailable "x86-cpus: needs qemu-x86_64 and a C compiler"
    return
  fi
  local start=$SECONDS td=${CARGO_TARGET_DIR:-target}
  # The README's build: no flags of ours (RUSTFLAGS and .cargo/config.toml as the caller has them).
  RUNNER=$(cargo test --release --workspace --no-run 2>&1 \
    | tee "$TMP/build.log" | runner_path)
  [ -n "$RUNNER" ] || { cat "$TMP/build.log"; fail "x86: no runner built"; return; }
  CLI=$td/release/ss2d
  local lib
  # The test build leaves the cdylib in deps/ (only `cargo build` copies it up a level).
  lib=$(realpath "$td/release/deps")
  [ -e "$lib/libss2d_capi.so" ] || lib=$(realpath "$td/release")
  "${CC:-cc}" -std=c11 -O2 -I ss2d-capi/include ss2d-capi/examples/golden.c -L "$lib" \
    -lss2d_capi -Wl,-rpath,"$lib" -lpthread -lm -o "$TMP/golden_shared"
  echo "built in $((SECONDS - start)) s (RUSTFLAGS=${RUSTFLAGS-<unset>})"
  # The C example over the selective-scan goldens and the small layer goldens (the 56x56
  # layers in all of its exec modes take minutes under emulation; the CLI runs one below).
  local small=$TMP/golden-small f
  mkdir -p "$small/ss2d"
  ln -s "$GOLDEN/selective_scan" "$small/selective_scan"
  for f in "$GOLDEN"/ss2d/*.safetensors; do
    [ "$(stat -c %s "$f")" -gt 1000000 ] || ln -s "$f" "$small/ss2d/"
  done
  local cpu
  for cpu in Haswell Nehalem; do
    start=$SECONDS
    EMU=(qemu-x86_64 -cpu "$cpu") CMP=()
    echo "-- -cpu $cpu: C example (libss2d_capi.so)"
    if "${EMU[@]}" "$TMP/golden_shared" "$small" >"$TMP/c.log" 2>&1 \
      && grep -q ", 0 failures" "$TMP/c.log"; then
      quiet <"$TMP/c.log" | sed -n '1p;$p'
    else
      quiet <"$TMP/c.log"
      fail "x86 -cpu $cpu: C example"
    fi
    echo "-- -cpu $cpu: CLI (ss2d scan on the selective-scan goldens, one 56x56 layer)"
    cli_n=0
    for f in "$GOLDEN"/selective_scan/*.safetensors; do cli_case scan "$f" 1e-4 >/dev/null; done
    f=$(find "$GOLDEN/ss2d" -name '*s1l8*56x56*.safetensors' | head -1)
    [ -z "$f" ] || cli_case layer "$f" 1e-4
    echo "$cli_n CLI cases"
    [ "$cli_n" -gt 0 ] || fail "x86 -cpu $cpu: no CLI cases"
    echo "-cpu $cpu: $((SECONDS - start)) s"
  done
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(aarch64 x86-cpus)
for p in "${parts[@]}"; do
  case $p in
  aarch64) run_aarch64 ;;
  x86-cpus) run_x86_cpus ;;
  *) echo "unknown part $p (aarch64, x86-cpus)"; exit 2 ;;
  esac
done
echo "emulated: $failures failures, $skips skipped"
[ "$failures" -eq 0 ]
