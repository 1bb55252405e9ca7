#!/usr/bin/env bash
# Embedded check (embedded/README.md): ss2d-core on Cortex-M under QEMU, with a code-size
# budget.
#  1. builds the example firmware embedded/ (its own workspace) for thumbv7em-none-eabihf and
#     thumbv8m.main-none-eabihf with Debian's rustc-web and -Zbuild-std=core;
#  2. runs it under qemu-system-arm on mps2-an386 (Cortex-M4F), mps2-an500 (Cortex-M7) and
#     mps2-an505 (Cortex-M33): every golden/generated case must pass (exit status 0);
#  3. reports the scan's code size (.ci/embedded-size.py); the full-speed build is reported
#     only, a build with BUDGET_FEATURES must keep the scan code under 48 KiB;
#  4. counts the instructions each scan executes on the Cortex-M4 (QEMU -singlestep with an
#     exec trace between two marker functions) and prints instructions per element.
#
# Usage: .ci/embedded.sh [BUDGET_FEATURES]   or   .ci/embedded.sh --measure ELF
#   BUDGET_FEATURES: cargo features of the firmware build held to the budget, e.g.
#   "ss2d-core/compact". Empty (the default): the budget build is skipped with a message.
# Tools come from Debian (rustc-web rust-web-src rust-web-clippy lld qemu-system-arm llvm);
# missing ones are installed with apt-get when running as root. With CI=true a tool that is
# still missing is a failure; otherwise the check is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
export CARGO_TERM_COLOR=never
# The workspace's host RUSTFLAGS must not reach the firmware (embedded/.cargo/config.toml has
# the target's flags).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS

budget_features=${1-}
budget_bytes=$((48 * 1024))
rustc_emb=${RUSTC_EMBEDDED:-/usr/bin/rustc}
clippy_emb=$(dirname "$rustc_emb")/cargo-clippy
target_dir=${CARGO_TARGET_DIR:-$PWD/target}/embedded
qemu_timeout=300

missing() {
  local m=()
  [[ -x $rustc_emb ]] || m+=("rustc-web ($rustc_emb)")
  if [[ -x $rustc_emb ]]; then
    local sysroot
    sysroot=$("$rustc_emb" --print sysroot)
    [[ -d $sysroot/lib/rustlib/src/rust/library/core ]] || m+=("rust-web-src ($sysroot/lib/rustlib/src/rust/library)")
  fi
  [[ -x $clippy_emb ]] || m+=("rust-web-clippy ($clippy_emb)")
  for t in ld.lld qemu-system-arm llvm-nm llvm-size python3 cargo; do
    command -v "$t" >/dev/null || m+=("$t")
  done
  echo "${m[@]+"${m[@]}"}"
}

if [[ -n $(missing) ]]; then
  echo "== embedded: installing $(missing)"
  apt_install "${EMBEDDED_PKGS[@]}" || echo "apt-get install failed"
fi
if [[ -n $(missing) ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "FAIL embedded: missing $(missing)"
    exit 1
  fi
  echo "SKIP embedded (1 skipped): missing $(missing); install ${EMBEDDED_PKGS[*]}"
  exit 0
fi
echo "== embedded: $("$rustc_emb" --version), $(qemu-system-arm --version | head -1)"

# build TARGET PROFILE DIR [FEATURES]: prints the ELF's path (and the build's time on stderr).
# With FAST=1 in the environment, the profile's fat LTO, single codegen unit and debug info are
# overridden for a faster build (the same code, optimized in pieces): for a firmware that is
# only run. The builds whose size or instruction count is reported keep the profile.
build() {
  local target=$1 profile=$2 dir=$3 features=${4-} start=$SECONDS fast=()
  if [[ ${FAST:-0} == 1 ]]; then
    fast=(CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
      CARGO_PROFILE_RELEASE_DEBUG=false)
  fi
  (cd embedded && env "${fast[@]}" RUSTC=$rustc_emb RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$dir \
    cargo build -q --profile "$profile" --target "$target" ${features:+--features "$features"} >&2)
  echo "   (built $target${features:+ with $features} in $((SECONDS - start)) s)" >&2
  echo "$dir/$target/$profile/ss2d-embedded"
}

# run MACHINE CPU ELF: the firmware's output; fails unless it exits 0 with a clean summary.
run() {
  local machine=$1 cpu=$2 elf=$3 log rc=0
  echo "== embedded: $cpu on $machine"
  log=$(timeout "$qemu_timeout" qemu-system-arm -machine "$machine" -cpu "$cpu" -nographic \
    -monitor none -serial none -semihosting-config enable=on,target=native -kernel "$elf") || rc=$?
  echo "$log"
  if [[ $rc != 0 ]] || ! grep -Eq '^summary: [1-9][0-9]* passed, 0 failed, 0 skipped' <<<"$log"; then
    echo "FAIL embedded: $cpu on $machine (exit status $rc)"
    exit 1
  fi
}

# icount ELF: instructions executed between ss2d_mark_begin and ss2d_mark_end per case, as
# counted by QEMU's exec trace with one instruction per translation block.
icount() {
  local elf=$1 begin end out
  # llvm-nm prints Thumb function addresses without the Thumb bit, 8 hex digits like the trace.
  begin=$(llvm-nm "$elf" | awk '$3 == "ss2d_mark_begin" { print $1 }')
  end=$(llvm-nm "$elf" | awk '$3 == "ss2d_mark_end" { print $1 }')
  [[ -n $begin && -n $end && $begin != "$end" ]] || { echo "FAIL embedded: marker symbols not found"; exit 1; }
  local fifo
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  # Trace lines: "Trace 0: 0x... [flags/PC/...] symbol"; the PC is the second field.
  awk -F'[[/]' -v b="$begin" -v e="$end" '
    /^Trace/ { n++; pc = $3
      if (pc == b) start = n
      else if (pc == e && start) { print n - start - 1; start = 0 } }' "$fifo" >"$fifo.counts" &
  local awk_pid=$!
  out=$(timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -serial none -semihosting-config enable=on,target=native -singlestep -d exec,nochain \
    -D "$fifo" -kernel "$elf")
  wait "$awk_pid"
  rm -f "$fifo"
  # Join with the shapes the firmware printed (same order).
  local join
  join=$(cat <<'PY'
import re, sys
counts = [int(x) for x in open(sys.argv[1]).read().split()]
cases = [m.groups() for m in re.finditer(r"^case (\S+): B=(\d+) D=(\d+) L=(\d+) N=(\d+)", sys.stdin.read(), re.M)]
if not cases or len(cases) != len(counts):
    sys.exit(f"FAIL embedded icount: {len(cases)} cases but {len(counts)} counts")
print(f"{'case':<40} {'instructions':>12} {'per (b,d,l)':>12} {'per (b,d,l,n)':>14}")
for (name, b, d, l, n), c in zip(cases, counts):
    bdl = int(b) * int(d) * int(l)
    print(f"{name:<40} {c:>12} {c / bdl:>12.1f} {c / (bdl * int(n)):>14.1f}")
PY
)
  python3 -c "$join" "$fifo.counts" <<<"$out"
  rm -f "$fifo.counts"
}

# .ci/embedded.sh --measure ELF: run, size and count one Cortex-M4 build made by hand (e.g.
# `cargo build --profile release-size` in embedded/), nothing else.
if [[ $budget_features == --measure ]]; then
  elf=${2:?usage: .ci/embedded.sh --measure ELF}
  run mps2-an386 cortex-m4 "$elf"
  llvm-size "$elf"
  python3 .ci/embedded-size.py "$elf"
  icount "$elf"
  exit 0
fi

echo "== embedded: clippy (firmware and build.rs)"
start=$SECONDS
(cd embedded && RUSTC=$rustc_emb RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$target_dir \
  "$clippy_emb" clippy -q --release -- -D warnings)
echo "   (linted in $((SECONDS - start)) s)"

echo "== embedded: build (full speed: every N instantiated)"
m4=$(build thumbv7em-none-eabihf release "$target_dir")
run mps2-an386 cortex-m4 "$m4"
run mps2-an500 cortex-m7 "$m4"
m33=$(FAST=1 build thumbv8m.main-none-eabihf release "$target_dir")
run mps2-an505 cortex-m33 "$m33"

echo "== embedded: code size, full-speed build (reported, no budget)"
llvm-size "$m4"
python3 .ci/embedded-size.py "$m4"

echo "== embedded: instructions per element on the Cortex-M4 (QEMU exec trace)"
start=$SECONDS
icount "$m4"
echo "   (traced in $((SECONDS - start)) s)"

echo "== embedded: code-size budget ($budget_bytes B of scan code)"
if [[ -z $budget_features ]]; then
  echo "SKIP budget (1 skipped): no BUDGET_FEATURES given (.ci/embedded.sh ss2d-core/compact once that feature exists)"
else
  # The same target folder: the core library built for this target above is reused (the
  # features change only ss2d-core and the firmware; the full-speed ELF is not needed again).
  small=$(build thumbv7em-none-eabihf release "$target_dir" "$budget_features")
  run mps2-an386 cortex-m4 "$small"
  llvm-size "$small"
  python3 .ci/embedded-size.py "$small" "$budget_bytes"
fi
echo "ok: embedded"
