#!/usr/bin/env bash
# Every SIMD level this CPU has, from ONE build (the README's test command already ran at the
# best level): the suites that honour SS2D_ISA run again with each lower level pinned, the
# per-level TOLERANCE line is printed, and the dispatched kernels are compared bit for bit with
# the same level compiled in statically (RUSTFLAGS=-C target-cpu=x86-64-v4 / -v3).
#   - tests/ (ss2d-conformance: goldens, proptests, edges, special values) applies SS2D_ISA;
#   - ss2d-cli's tests run the `ss2d` binary, which applies it (scan, cross, layer goldens);
#   - ss2d-capi's tests go through the C ABI, which applies it;
#   - ss2d-core's own unit tests already run every available level in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The CLI that the README's test command built (`cargo test --workspace --release` builds the
# binary for ss2d-cli's tests); `cargo run -p ss2d-cli` would resolve features for that package
# alone and rebuild. Built here only when missing.
dyn=${CARGO_TARGET_DIR:-target}/release/ss2d
[ -x "$dyn" ] || cargo build --release -q -p ss2d-cli
levels=$("$dyn" isa --list)
best=$("$dyn" isa)
echo "== levels: available [$levels], best $best"
[ -n "$levels" ] || { echo "FAIL: no SIMD level reported"; exit 1; }

for l in $levels; do
  if [ "$l" != "$best" ]; then
    echo "== tests at $l (SS2D_ISA=$l, same build)"
    # One run: its log is trimmed on success and shown (tail) on failure.
    log=$(mktemp)
    # The whole workspace, as the README's command built it: a subset of packages resolves
    # dependency features differently and rebuilt (the first such run took 1 min 38 s of CI, the
    # next 11 s); the suites that do not read SS2D_ISA run again at the best level, in seconds.
    if SS2D_ISA=$l cargo test --release -q --workspace >"$log" 2>&1; then
      grep -E '^test result' "$log"
      rm -f "$log"
    else
      grep -E 'FAILED|panicked' "$log" || true
      tail -60 "$log"
      echo "FAIL: tests at $l"
      exit 1
    fi
  fi
  SS2D_ISA=$l cargo test --release -q --workspace --test edges -- --nocapture tolerance 2>&1 \
    | grep TOLERANCE
done

# Dispatched == statically compiled, bit for bit, at the best x86 level this CPU has above the
# baseline (x86-64-v4 or -v3; SS2D_STATIC_LEVELS="x86-64-v3 x86-64-v4" checks both): the CLI
# built with that level as its floor, against the plain build pinned to it with SS2D_ISA, on
# golden scans (N=16 and N=1, grouped B/C, z, last state) and a golden layer (fused N=1 scan,
# conv, GEMMs). One extra build of the CLI per level (every dependency is rebuilt for the new
# flags), unoptimized (opt-level 0, still without debug assertions): the values do not depend on
# the optimization level (no fast-math: the same operations in the same order), so the check
# also holds the optimizer to that. Measured on a 2-core Zen 3 VM: 4 min 25 s at level 1 (in a
# CI run), 28 s at level 0 (alone); the three files then take under a second.
# Same tensors bit for bit (names, shapes, data; the JSON metadata's key order may differ).
same_tensors() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    d = b[8 + n:]
    return {k: (v["shape"], d[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if a and a == b else 1)
PY
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
static_levels=${SS2D_STATIC_LEVELS:-}
if [ -z "$static_levels" ]; then
  case " $levels " in
    *" x86-64-v4 "*) static_levels=x86-64-v4 ;;
    *" x86-64-v3 "*) static_levels=x86-64-v3 ;;
  esac
fi
for l in $static_levels; do
  case " $levels " in *" $l "*) ;; *) echo "skip static $l: CPU lacks it"; continue ;; esac
  echo "== static $l == dispatched $l (bitwise)"
  RUSTFLAGS="-C target-cpu=$l" CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build --release -q -p ss2d-cli --target-dir "${CARGO_TARGET_DIR:-target}-static-$l"
  st="${CARGO_TARGET_DIR:-target}-static-$l/release/ss2d"
  for f in testdata/golden/selective_scan/ss_b2_d96_l197_n16_g4_z_last.safetensors \
           testdata/golden/selective_scan/ss_b1_d96_l197_n1_g4_vmamba.safetensors; do
    SS2D_ISA=$l "$dyn" scan "$f" "$work/dyn.st" --threads 1
    "$st" scan "$f" "$work/st.st" --threads 1
    same_tensors "$work/dyn.st" "$work/st.st" || { echo "FAIL: $l scan $f differs"; exit 1; }
  done
  f=testdata/golden/ss2d/ss2d_stage1_s1l8_v05noz_ds1_r1_cf_d96_56x56.safetensors
  SS2D_ISA=$l "$dyn" layer "$f" "$work/dyn.st" --threads 2
  "$st" layer "$f" "$work/st.st" --threads 2
  same_tensors "$work/dyn.st" "$work/st.st" || { echo "FAIL: $l layer differs"; exit 1; }
  echo "ok: $l static and dispatched outputs are identical (2 scans, 1 layer)"
done
