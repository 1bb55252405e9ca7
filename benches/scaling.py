#!/usr/bin/env python3
"""Summarize benches/scaling.sh output: median over rounds of each case's median time, and the
speedup over 1 thread, as a Markdown table (plus the layer's stage times at the largest thread
count, to show which stage stops the scaling)."""
import json
import statistics
import sys
from collections import defaultdict


def key_of(j):
    if j["case"] == "layer":
        return ("layer", j["config"], int(j["params"]["batch"]))
    s = j["shape"]
    if j["case"] == "ss2d":
        name = {1: "N=1", 16: "N=16"}.get(s["N"], f"N={s['N']}")
        return ("ss2d", f"D{s['D']} {name} {j['layout']}", s["B"])
    return ("scan1d", f"D{s['D']} N={s['N']}", s["B"])


def time_of(j):
    if j["case"] == "layer":
        return j["total"]["median_s"]
    if j["case"] == "ss2d":
        return j["fused"]["median_s"]
    return j["kernel"]["median_s"]


def main(path):
    times = defaultdict(list)
    stages = defaultdict(lambda: defaultdict(list))
    threads = set()
    for line in open(path):
        j = json.loads(line)
        k = key_of(j)
        t = j["threads"]
        threads.add(t)
        times[(k, t)].append(time_of(j))
        if j["case"] == "layer":
            for name, st in j["stages"].items():
                stages[(k, t)][name].append(st["median_s"])
    threads = sorted(threads)
    keys = sorted({k for (k, _) in times})
    print("| op | case | batch | " + " | ".join(f"{t} thr" for t in threads) + " |")
    print("|---|---|---|" + "---|" * len(threads))
    for k in keys:
        base = statistics.median(times[(k, threads[0])]) if (k, threads[0]) in times else None
        cells = []
        for t in threads:
            if (k, t) not in times:
                cells.append("-")
                continue
            m = statistics.median(times[(k, t)])
            sp = f" ({base / m:.1f}x)" if base and t != threads[0] else ""
            cells.append(f"{m * 1e3:.3g} ms{sp}")
        print(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " |")
    print()
    print("Layer stages (median ms), 1 thread -> " + f"{threads[-1]} threads (speedup):")
    print()
    for k in keys:
        if k[0] != "layer":
            continue
        lo, hi = stages.get((k, threads[0])), stages.get((k, threads[-1]))
        if not lo or not hi:
            continue
        parts = []
        for name in lo:
            a, b = statistics.median(lo[name]), statistics.median(hi[name])
            parts.append(f"{name} {a * 1e3:.3g} -> {b * 1e3:.3g} ({a / b:.1f}x)")
        print(f"- {k[1]} batch {k[2]}: " + ", ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scaling-out/scaling.jsonl")
