#!/usr/bin/env python3
"""Calls the ss2d C API through ctypes on numpy arrays and checks golden cases.

    python3 ss2d-capi/examples/golden.py target/release/libss2d_capi.so testdata/golden

Strided numpy views go straight in: transposed (channel-last) arrays, slices with steps,
negative strides (reversed views), and an output that is a transposed slice of a larger
array. A host pool (a Python ThreadPoolExecutor) runs the work items through the
parallel_for callback; ctypes releases the GIL while an item runs, so they run in parallel.
Only numpy is needed: the safetensors files are read with a small JSON-header parser.
Exit status 0 when every check passes.
"""
import ctypes as C
import json
import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ss2d_abi import (  # ss2d_abi.py, beside this script
    MAX_DIMS,
    Exec,
    ITEM_FN,
    LayerConfig,
    NamedTensor,
    PARALLEL_FOR_FN,
    PT,
    ScanInputs,
    Tensor,
    load_lib,
)


def tensor(a):
    """A descriptor over a float32 numpy array or view (any strides). The array must stay
    alive while the descriptor is used."""
    assert a.dtype == np.float32 and a.ndim <= MAX_DIMS
    t = Tensor()
    t.data = a.ctypes.data
    t.ndim = a.ndim
    for i, (n, s) in enumerate(zip(a.shape, a.strides)):
        assert s % a.itemsize == 0
        t.shape[i] = n
        t.strides[i] = s // a.itemsize  # ELEMENTS, not bytes
    return t


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).copy()
    return tensors, meta


class Api:
    def __init__(self, lib):
        self.lib = lib

    def check(self, status, what):
        if status != 0:
            name = self.lib.ss2d_status_name(status).decode()
            msg = self.lib.ss2d_last_error().decode()
            raise RuntimeError(f"{what}: {name}: {msg}")


def host_exec(pool, threads, n_items=0):
    """An Exec whose parallel_for runs the items on `pool` (a ThreadPoolExecutor)."""

    def parallel_for(_ctx, n, item, item_ctx):
        # Every item exactly once; return only when all are done (list() waits).
        list(pool.map(lambda i: item(item_ctx, i), range(n)))

    cb = PARALLEL_FOR_FN(parallel_for)
    e = Exec(n_threads=threads, parallel_for=cb, n_items=n_items)
    e._keep = cb  # keep the callback alive as long as the Exec
    return e


def rel_err(a, ref):
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(a.astype(np.float64) - ref))) if ref.size else 0.0
    if not np.isfinite(err):
        return float("inf")  # a NaN or infinity never passes
    return err / scale if scale > 0 else err


def scan_case(api, path, pool):
    t, meta = read_safetensors(path)
    u, delta, want = t["u"], t["delta"], t["out"]
    bsz, dim, seqlen = u.shape
    dstate = t["A"].shape[1]

    # Strided views of the same logical (batch, dim, seqlen) tensors:
    u_cl = np.ascontiguousarray(u.transpose(0, 2, 1)).transpose(0, 2, 1)  # channel-last
    wide = np.zeros((bsz, dim, 2 * seqlen), np.float32)
    wide[:, :, ::2] = delta
    delta_step = wide[:, :, ::2]  # every other element
    keep = {"u": u_cl, "delta": delta_step}
    descs = {"u": tensor(u_cl), "delta": tensor(delta_step)}
    for name in ["A", "B", "C", "D", "delta_bias"]:
        if name in t:
            keep[name] = t[name]
            descs[name] = tensor(t[name])
    if "z" in t:
        z_rev = t["z"][:, :, ::-1].copy()[:, :, ::-1]  # negative strides
        keep["z"] = z_rev
        descs["z"] = tensor(z_rev)

    inputs = ScanInputs(delta_softplus=int(meta["delta_softplus"] == "true"))
    for name, d in descs.items():
        setattr(inputs, name, C.pointer(d))

    def run(exec_):
        # The output: a transposed slice of a larger (batch, seqlen, dim + 3) array.
        big = np.full((bsz, seqlen, dim + 3), np.nan, np.float32)
        out = big[:, :, :dim].transpose(0, 2, 1)
        last = np.full((bsz, dim, dstate), np.nan, np.float32)
        ot, lt = tensor(out), tensor(last)
        api.check(
            api.lib.ss2d_selective_scan(C.byref(inputs), C.byref(ot), C.byref(lt), exec_),
            os.path.basename(path),
        )
        assert np.isnan(big[:, :, dim:]).all(), "wrote outside the output view"
        return np.array(out), last

    out, last = run(None)
    e = rel_err(out, want)
    assert e <= 1e-5, f"{path}: out rel err {e:.3g}"
    if "last_state" in t:
        e = rel_err(last, t["last_state"])
        assert e <= 1e-5, f"{path}: last_state rel err {e:.3g}"

    # The library pool and the Python host pool give the same bits.
    out2, last2 = run(C.byref(Exec(n_threads=3)))
    host = host_exec(pool, 4)
    out3, last3 = run(C.byref(host))
    # Caller scratch, sized by the query.
    need = C.c_size_t(0)
    api.check(
        api.lib.ss2d_scan_scratch_size(C.byref(inputs), C.byref(host), C.byref(need)),
        "scratch size",
    )
    scratch = np.empty(need.value, np.float32)
    host.scratch, host.scratch_len = scratch.ctypes.data, need.value
    out4, _ = run(C.byref(host))
    for o, s in [(out2, last2), (out3, last3), (out4, None)]:
        assert np.array_equal(o.view(np.uint32), out.view(np.uint32)), "not bitwise"
        if s is not None:
            assert np.array_equal(s.view(np.uint32), last.view(np.uint32)), "not bitwise"
    return f"ok   selective_scan {os.path.basename(path)}"


def layer_case(api, path, pool):
    t, meta = read_safetensors(path)
    names, keep = [], []
    for name, arr in t.items():
        if name in ("input", "output") or name.startswith("debug."):
            continue
        if arr.ndim >= 2:
            arr = np.asfortranarray(arr)  # column-major weights: gathered by the library
        keep.append(arr)
        names.append(NamedTensor(name.encode(), tensor(arr)))
    arr_t = (NamedTensor * len(names))(*names)
    cfg = LayerConfig(
        d_model=int(meta["d_model"]),
        d_state=int(meta["d_state"]),
        ssm_ratio=float(meta["ssm_ratio"]),
        dt_rank=0 if meta["dt_rank"] == "auto" else int(meta["dt_rank"]),
        d_conv=int(meta["d_conv"]),
        conv_bias=int(meta["conv_bias"] == "true"),
        forward_type=meta["forward_type"].encode(),
        channel_first=int(meta["channel_first"] == "true"),
    )
    layer = C.c_void_p()
    api.check(
        api.lib.ss2d_layer_create(C.byref(cfg), arr_t, len(names), None, C.byref(layer)),
        "layer_create",
    )
    try:
        x, want = t["input"], t["output"]
        x_view = x[:, ::-1].copy()[:, ::-1]  # a reversed axis: negative strides
        res = []
        for exec_ in (None, C.byref(host_exec(pool, 3))):
            y = np.full(x.shape, np.nan, np.float32)
            api.check(
                api.lib.ss2d_layer_forward(
                    layer, C.byref(tensor(x_view)), C.byref(tensor(y)), exec_
                ),
                "layer_forward",
            )
            res.append(y)
        e = rel_err(res[0], want)
        assert e <= 1e-5, f"{path}: output rel err {e:.3g}"
        assert np.array_equal(res[0].view(np.uint32), res[1].view(np.uint32)), "not bitwise"
    finally:
        api.lib.ss2d_layer_free(layer)
    return f"ok   layer {os.path.basename(path)} ({meta['forward_type']})"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    lib_path = sys.argv[1] if len(sys.argv) > 1 else "libss2d_capi.so"
    golden = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "../../testdata/golden")
    api = Api(load_lib(lib_path))
    print(f"ss2d {api.lib.ss2d_version().decode()}, built for {api.lib.ss2d_isa().decode()}")

    # An error: status name and message, nothing written.
    u = np.zeros((1, 2, 3), np.float32)
    out = np.full((1, 2, 4), 7.0, np.float32)
    a = np.zeros((2, 1), np.float32)
    ins = ScanInputs(
        u=C.pointer(tensor(u)),
        delta=C.pointer(tensor(u)),
        A=C.pointer(tensor(a)),
        B=C.pointer(tensor(a)),
        C=C.pointer(tensor(a)),
    )
    s = api.lib.ss2d_selective_scan(C.byref(ins), C.byref(tensor(out)), None, None)
    msg = api.lib.ss2d_last_error().decode()
    print(f"a bad call returns {api.lib.ss2d_status_name(s).decode()}: {msg}")
    assert s != 0 and (out == 7.0).all()

    counts = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for sub, fn in [("selective_scan", scan_case), ("ss2d", layer_case)]:
            d = os.path.join(golden, sub)
            counts[sub] = 0
            for f in sorted(os.listdir(d)):
                if f.endswith(".safetensors"):
                    print(fn(api, os.path.join(d, f), pool))
                    counts[sub] += 1
    empty = [sub for sub, k in counts.items() if k == 0]
    if empty:
        # Zero cases is a failure, not a pass: a wrong or empty folder must not look green.
        sys.exit(f"FAIL: no golden cases in {', '.join(os.path.join(golden, s) for s in empty)}")
    print(f"{sum(counts.values())} cases passed")


if __name__ == "__main__":
    main()
