#!/usr/bin/env bash
# Thread-scaling table: the fused SS2D scan, the layer and the 1D scans at several thread counts,
# batch 1 and 8, in interleaved rounds (every thread count once per round, so drift on a shared
# machine spreads over all of them). JSON lines go to OUT/scaling.jsonl; summarize them with
# `python3 benches/scaling.py OUT/scaling.jsonl`.
#
#   benches/scaling.sh [BIN] [OUT] [THREADS] [ROUNDS]
#   e.g. benches/scaling.sh target/release/ss2d /tmp/scaling "1 2 4 8 16" 3
set -euo pipefail
bin=${1:-target/release/ss2d}
out=${2:-scaling-out}
threads=${3:-"1 2 4 8 16"}
rounds=${4:-3}
reps=${REPS:-5}
mkdir -p "$out"
log="$out/scaling.jsonl"
: >"$log"
"$bin" isa >"$out/isa.txt" 2>&1 || true
for round in $(seq 1 "$rounds"); do
  for t in $threads; do
    for b in 1 8; do
      # Fused SS2D scan: s1l8 (cf, N=1, D=96), s2l5 (cf, N=1, D=192), vanilla v0 (cl, N=16, D=192).
      "$bin" bench --op ss2d --threads "$t" --reps "$reps" --json --layout cf \
        --shape "B=$b,D=96,H=56,W=56,N=1,R=6" --shape "B=$b,D=192,H=56,W=56,N=1,R=6" |
        sed "s/^{/{\"round\":$round,\"case\":\"ss2d\",/" >>"$log"
      "$bin" bench --op ss2d --threads "$t" --reps "$reps" --json --layout cl \
        --shape "B=$b,D=192,H=56,W=56,N=16,R=6" |
        sed "s/^{/{\"round\":$round,\"case\":\"ss2d\",/" >>"$log"
      # 1D scans (4 directions stacked): N=16 D=768 and N=1 D=384 (softplus, bias).
      "$bin" bench --op scan --threads "$t" --reps "$reps" --reference-reps 1 --json \
        --shape "B=$b,D=768,L=3136,N=16,G=4" --shape "B=$b,D=384,L=3136,N=1,G=4" |
        sed "s/^{/{\"round\":$round,\"case\":\"scan\",/" >>"$log"
    done
    "$bin" bench --op layer --threads "$t" --reps "$reps" --json --sweep batch=1,8 |
      sed "s/^{/{\"round\":$round,\"case\":\"layer\",/" >>"$log"
    echo "round $round threads $t done ($(wc -l <"$log") lines)" >&2
  done
done
