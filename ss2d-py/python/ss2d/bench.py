"""``python -m ss2d.bench``: the ss2d kernels from Python against a NumPy reference (and torch
eager, when torch is installed) on VMamba's stage-1 shapes, printing the speedups.

- ``scan``: the selective scan at ``B=1, D=768, L=3136, N=16, G=4`` (Vanilla-VMamba stage 1,
  four directions stacked as channels) and ``D=384, N=1`` (VMamba-T s1l8), with the inputs of
  ``ss2d bench --op scan`` (softplus, ``D``, ``delta_bias``; no ``z``), so the ``ss2d elem/s``
  column compares directly with the CLI's kernel column at the same ``--threads`` (the output
  buffer is reused across runs through ``out=``, as the CLI bench reuses its buffer).
- ``layer``: the whole SS2D module (``s1l8``, ``s2l5``, ``vanilla``) on a 56 x 56 map.

Times are medians over ``--reps`` runs after one warm-up (references: one run, they are slow).
"""

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np

import ss2d
from ss2d import reference

SCAN_SHAPES = [dict(B=1, D=768, L=3136, N=16, G=4), dict(B=1, D=384, L=3136, N=1, G=4)]
LAYERS = {
    # name: (d_model, d_state, ssm_ratio, forward_type, channel_first, conv_bias)
    "s1l8": (96, 1, 1.0, "v05_noz", True, False),
    "s2l5": (96, 1, 2.0, "v05_noz", True, False),
    "vanilla": (96, 16, 2.0, "v0", False, True),
}


def median_time(f, reps, warmup=True):
    if warmup:
        f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def scan_inputs(s, seed=0):
    rng = np.random.default_rng(seed)
    b, d, l, n, g = s["B"], s["D"], s["L"], s["N"], s["G"]
    f = lambda lo, hi, *shape: rng.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    dt = rng.uniform(1e-3, 1e-1, d)
    return dict(
        u=f(-1, 1, b, d, l), delta=f(-4, -2, b, d, l),
        A=np.tile(-np.arange(1, n + 1, dtype=np.float32), (d, 1)),
        B=f(-1, 1, b, g, n, l), C=f(-1, 1, b, g, n, l), D=np.ones(d, np.float32),
        delta_bias=(dt + np.log(-np.expm1(-dt))).astype(np.float32),
    )


def torch_or_none():
    try:
        import torch

        return torch
    except ImportError:
        return None


def bench_scan(args, rows):
    torch = torch_or_none()
    for s in SCAN_SHAPES:
        x = scan_inputs(s)
        elems = s["B"] * s["D"] * s["L"] * s["N"]
        # One output buffer reused across runs (``out=``), as ``ss2d bench`` does in Rust.
        out = np.empty_like(x["u"])
        call = lambda: ss2d.selective_scan_fn(  # noqa: E731
            **x, delta_softplus=True, threads=args.threads, out=out)
        t_k = median_time(call, args.reps)
        row = dict(op="scan", case=",".join(f"{k}={v}" for k, v in s.items()), ss2d_s=t_k,
                   ss2d_elem_per_s=elems / t_k)
        if not args.no_reference:
            row["numpy_s"] = median_time(
                lambda: reference.selective_scan_ref(**x, delta_softplus=True, dtype=np.float32),
                1, warmup=False)
            if torch is not None:
                from ss2d import torch_reference as tr

                tx = {k: torch.from_numpy(v) for k, v in x.items()}
                with torch.inference_mode():
                    row["torch_s"] = median_time(
                        lambda: tr.selective_scan_fn(tx["u"], tx["delta"], tx["A"], tx["B"],
                                                     tx["C"], tx["D"], tx["delta_bias"], True),
                        1, warmup=False)
        rows.append(row)
        report(row, args)


def random_state_dict(d_model, d_state, ssm_ratio, forward_type, conv_bias, seed=0):
    """VMamba-like weights (the init of semantics.md section 2, trunc-normal linears)."""
    rng = np.random.default_rng(seed)
    di = int(ssm_ratio * d_model)
    r = math.ceil(d_model / 16)
    has_z = not forward_type.endswith("_noz")
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    dt = np.exp(rng.uniform(0, 1, (4, di)) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    sd = {
        "in_proj.weight": f(0.02 * rng.standard_normal((di * (2 if has_z else 1), d_model))),
        "conv2d.weight": f(rng.uniform(-1 / 3, 1 / 3, (di, 1, 3, 3))),
        "x_proj_weight": f(rng.uniform(-di ** -0.5, di ** -0.5, (4, r + 2 * d_state, di))),
        "dt_projs_weight": f(rng.uniform(-r ** -0.5, r ** -0.5, (4, di, r))),
        "dt_projs_bias": f(dt + np.log(-np.expm1(-dt))),
        "A_logs": f(np.tile(np.log(np.arange(1, d_state + 1)), (4 * di, 1))),
        "Ds": np.ones(4 * di, np.float32),
        "out_norm.weight": np.ones(di, np.float32),
        "out_norm.bias": np.zeros(di, np.float32),
        "out_proj.weight": f(0.02 * rng.standard_normal((d_model, di))),
    }
    if conv_bias:
        sd["conv2d.bias"] = f(rng.uniform(-1 / 3, 1 / 3, di))
    return sd


def bench_layer(args, rows):
    torch = torch_or_none()
    for name, (dm, n, ratio, ft, cf, cb) in LAYERS.items():
        sd = random_state_dict(dm, n, ratio, ft, cb)
        layer = ss2d.SS2D(sd, forward_type=ft, channel_first=cf)
        shape = (1, dm, 56, 56) if cf else (1, 56, 56, dm)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        t_k = median_time(lambda: layer(x, threads=args.threads), args.reps)
        row = dict(op="layer", case=f"{name} ({ft}, {dm}x56x56)", ss2d_s=t_k,
                   ss2d_elem_per_s=x.size / t_k)
        if not args.no_reference:
            row["numpy_s"] = median_time(
                lambda: reference.ss2d_layer_ref(sd, x, ft, cf, dtype=np.float32), 1, warmup=False)
            if torch is not None:
                from ss2d import torch_reference as tr

                m = tr.SS2D(dm, d_state=n, ssm_ratio=ratio, conv_bias=cb, forward_type=ft,
                            channel_first=cf)
                m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
                tx = torch.from_numpy(x)
                with torch.inference_mode():
                    row["torch_s"] = median_time(lambda: m(tx), 1, warmup=False)
        rows.append(row)
        report(row, args)


def report(row, args):
    if args.json:
        print(json.dumps(row), flush=True)
        return
    line = f"{row['op']:5} {row['case']:36} ss2d {row['ss2d_s'] * 1e3:9.2f} ms " \
           f"({row['ss2d_elem_per_s'] / 1e9:6.3f} G elem/s)"
    for ref in ("numpy", "torch"):
        if f"{ref}_s" in row:
            line += f" | {ref} {row[f'{ref}_s'] * 1e3:9.1f} ms: {row[f'{ref}_s'] / row['ss2d_s']:7.1f}x"
    print(line, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ss2d.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--op", choices=["scan", "layer", "all"], default="all")
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    p.add_argument("--reps", type=int, default=10, help="timed runs of the ss2d kernels")
    p.add_argument("--no-reference", action="store_true", help="time ss2d only")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    threads = args.threads if args.threads is not None else ss2d.default_threads()
    torch = None if args.no_reference else torch_or_none()
    if not args.json:
        if args.no_reference:
            refs = "none (--no-reference)"
        else:
            refs = f"NumPy {np.__version__}" + (
                f", torch {torch.__version__} eager ({torch.get_num_threads()} threads)"
                if torch else " (torch not installed)")
        print(f"ss2d {ss2d.__version__}, {ss2d.simd_level()}, {threads} thread(s); "
              f"references: {refs}", flush=True)
    rows = []
    if args.op in ("scan", "all"):
        bench_scan(args, rows)
    if args.op in ("layer", "all"):
        bench_layer(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
