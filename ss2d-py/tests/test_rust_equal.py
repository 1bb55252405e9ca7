"""The Python API gives bitwise the results of the Rust API: the same inputs through the
``ss2d`` CLI (``scan``, ``cross-scan``, ``cross-merge``, ``layer``) compared with ``==`` on
every element (NaN-free inputs; any difference fails).

Needs the CLI built at the same ISA level as the extension (``cargo build --release -p
ss2d-cli`` next to ``pip install ./ss2d-py``; ``SS2D_BIN`` points elsewhere). A missing binary or
another level is a counted skip with the reason; ``.ci/run`` builds it so there it runs.
"""

import subprocess

import numpy as np
import pytest

import ss2d
from conftest import SS2D_BIN, golden_files, load, write_safetensors


def cli(*args):
    if not SS2D_BIN.exists():
        pytest.skip(f"ss2d CLI not found at {SS2D_BIN} (cargo build --release -p ss2d-cli, or set SS2D_BIN)")
    r = subprocess.run([str(SS2D_BIN), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def run_cli(cmd, inp, tmp_path, *flags):
    out = tmp_path / f"{cmd}.out.safetensors"
    cli(cmd, inp, out, *flags)
    meta, t = load(out)
    if meta.get("isa") != ss2d.simd_level():
        pytest.skip(f"CLI built for {meta.get('isa')}, extension for {ss2d.simd_level()}: "
                    "bitwise equality holds within one ISA level only")
    return t


def same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


SCANS = golden_files("selective_scan")


def test_selective_scan_goldens_and_a_large_random_case(tmp_path):
    assert SCANS, "no golden selective_scan cases"
    rng = np.random.default_rng(7)
    b, d, l, n = 2, 96, 1500, 16
    big = dict(
        u=rng.standard_normal((b, d, l)), delta=rng.standard_normal((b, d, l)),
        A=-rng.uniform(0.5, 4, (d, n)), B=rng.standard_normal((b, 4, n, l)),
        C=rng.standard_normal((b, 4, n, l)), D=rng.standard_normal(d),
        z=rng.standard_normal((b, d, l)), delta_bias=rng.standard_normal(d),
    )
    big_path = tmp_path / "big.safetensors"
    write_safetensors(big_path, big, {"delta_softplus": "true", "return_last_state": "true"})
    for path in SCANS + [big_path]:
        meta, t = load(path)
        for threads in (1, 3):
            want = run_cli("scan", path, tmp_path, "--threads", threads)
            last = meta.get("return_last_state") == "true"
            got = ss2d.selective_scan_fn(
                t["u"], t["delta"], t["A"], t["B"], t["C"], D=t.get("D"), z=t.get("z"),
                delta_bias=t.get("delta_bias"), delta_softplus=meta.get("delta_softplus") == "true",
                return_last_state=last, threads=threads,
            )
            assert same(got[0] if last else got, want["out"]), path.name
            if last:
                assert same(got[1], want["last_state"]), path.name


def test_cross_scan_and_merge_goldens(tmp_path):
    files = golden_files("cross_scan")
    assert files, "no golden cross_scan cases"
    for path in files:
        meta, t = load(path)
        kw = dict(in_channel_first=meta["in_channel_first"] == "true",
                  out_channel_first=meta["out_channel_first"] == "true",
                  one_by_one=meta["one_by_one"] == "true", scans=int(meta["scans"]))
        assert same(ss2d.cross_scan_fn(t["x"], **kw), run_cli("cross-scan", path, tmp_path)["xs"])
        assert same(ss2d.cross_merge_fn(t["ys"], **kw), run_cli("cross-merge", path, tmp_path)["y"])


def test_layer_goldens(tmp_path):
    files = golden_files("ss2d")
    assert files, "no golden ss2d cases"
    for path in files:
        _, t = load(path)
        layer = ss2d.SS2D(path)
        for threads in (1, 2):
            want = run_cli("layer", path, tmp_path, "--threads", threads)["output"]
            assert same(layer.forward(t["input"], threads=threads), want), path.name
