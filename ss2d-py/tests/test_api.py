"""Version, SIMD level, array kinds, zero-copy and conversion rules, the SS2D class."""

import numpy as np
import pytest

import ss2d
from ss2d import _convert
from ss2d.reference import cross_merge_ref, cross_scan_ref, ss2d_layer_ref
from conftest import assert_close, golden_files, load


def test_version_and_simd_level():
    assert ss2d.__version__ == "0.1.0"
    assert ss2d.simd_level() in ("x86-64", "x86-64-v3", "x86-64-v4")
    assert ss2d.default_threads() >= 1


def test_contiguous_float32_is_not_copied():
    a = np.ones((2, 3, 4), np.float32)
    assert _convert.to_f32("u", a) is a
    s = a[:, :, ::2]
    c = _convert.to_f32("u", s)
    assert c.flags.c_contiguous and np.array_equal(c, s) and not np.shares_memory(c, a)
    d = _convert.to_f32("u", a.astype(np.float64))
    assert d.dtype == np.float32


def scan_inputs(rng, batch=2, dim=16, l=64, n=4):
    u = rng.standard_normal((batch, dim, l)).astype(np.float32)
    delta = rng.standard_normal((batch, dim, l)).astype(np.float32)
    A = -rng.uniform(0.5, 2, (dim, n)).astype(np.float32)
    B = rng.standard_normal((batch, 2, n, l)).astype(np.float32)
    C = rng.standard_normal((batch, 2, n, l)).astype(np.float32)
    return u, delta, A, B, C


def test_strided_and_other_dtypes_are_converted():
    rng = np.random.default_rng(1)
    u, delta, A, B, C = scan_inputs(rng)
    want = ss2d.selective_scan_fn(u, delta, A, B, C, delta_softplus=True)
    wide = np.zeros((2, 16, 128), np.float32)
    wide[:, :, ::2] = u
    strided = ss2d.selective_scan_fn(wide[:, :, ::2], delta, A, B, C, delta_softplus=True)
    assert np.array_equal(strided, want)
    f64 = ss2d.selective_scan_fn(u.astype(np.float64), delta, A, B, C, delta_softplus=True)
    assert f64.dtype == np.float64 and np.array_equal(f64.astype(np.float32), want)


def test_empty_problem():
    u = np.zeros((0, 4, 8), np.float32)
    out, last = ss2d.selective_scan_fn(u, u, -np.ones((4, 2), np.float32),
                                       np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32),
                                       return_last_state=True)
    assert out.shape == (0, 4, 8) and last.shape == (0, 4, 2)


@pytest.mark.parametrize("scans", [0, 1, 2])
@pytest.mark.parametrize("in_cf,out_cf", [(True, True), (False, False), (True, False), (False, True)])
def test_cross_layouts_against_reference(scans, in_cf, out_cf):
    rng = np.random.default_rng(scans)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    xs_ref = cross_scan_ref(x, scans)  # (B, 4, C, L)
    xin = x if in_cf else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    xs = ss2d.cross_scan_fn(xin, in_cf, out_cf, scans=scans)
    assert np.array_equal(xs if out_cf else xs.transpose(0, 2, 3, 1), xs_ref)
    ys = rng.standard_normal((2, 4, 3, 5, 7)).astype(np.float32)
    y_ref = cross_merge_ref(ys.astype(np.float64), scans)
    yin = ys if out_cf else np.ascontiguousarray(ys.transpose(0, 3, 4, 1, 2))
    y = ss2d.cross_merge_fn(yin, in_cf, out_cf, scans=scans)
    assert_close(y if in_cf else y.transpose(0, 2, 1), y_ref, 1e-6)


def test_ss2d_scan_fused_and_unfused_match_the_reference():
    rng = np.random.default_rng(5)
    Bsz, D, H, W, N, R = 1, 24, 9, 11, 4, 2
    x = rng.standard_normal((Bsz, D, H, W)).astype(np.float32)
    xpw = (0.3 * rng.standard_normal((4, R + 2 * N, D))).astype(np.float32)
    dtw = (0.5 * rng.standard_normal((4, D, R))).astype(np.float32)
    dtb = (rng.uniform(-4, -2, (4, D))).astype(np.float32)
    alogs = np.log(rng.uniform(1, N, (4 * D, N))).astype(np.float32)
    ds = rng.standard_normal(4 * D).astype(np.float32)
    from ss2d.reference import ss2d_scan_ref
    for scans in (0, 1, 2):
        fused = ss2d.ss2d_scan(x, xpw, dtw, dtb, alogs, ds, scans=scans)
        unfused = ss2d.ss2d_scan(x, xpw, dtw, dtb, alogs, ds, scans=scans, fused=False)
        # Different projection kernels (GEMM blocks vs loops): close, not bitwise.
        assert_close(fused, unfused, 2e-6, f"fused vs unfused scans={scans}")
        ref = ss2d_scan_ref(x, xpw, dtw, dtb, alogs, ds, scans).reshape(x.shape)
        assert_close(fused, ref, 1e-5, f"scans={scans}")
        cl = ss2d.ss2d_scan(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), xpw, dtw, dtb, alogs,
                            ds, scans=scans, channel_first=False)
        assert_close(cl.transpose(0, 3, 1, 2), ref, 1e-5, f"channel-last scans={scans}")


LAYER_FILES = golden_files("ss2d")


def test_layer_from_dict_with_prefix_equals_file_and_reference():
    small = [p for p in LAYER_FILES if "stage1" not in p.name and "c_noz" not in p.name]
    assert small, "no golden ss2d files"
    for path in small:
        meta, t = load(path)
        from_file = ss2d.SS2D(path)
        prefix = "layers.0.blocks.1.op."
        sd = {prefix + k: v for k, v in t.items() if not k.startswith("debug.")}
        sd["layers.0.blocks.1.norm.weight"] = np.ones(3, np.float32)  # ignored
        cf = meta["channel_first"] == "true"
        from_dict = ss2d.SS2D(sd, prefix, forward_type=meta["forward_type"], channel_first=cf)
        assert from_dict.config == from_file.config
        a, b = from_file(t["input"]), from_dict(t["input"])
        assert np.array_equal(a, b)
        ref = ss2d_layer_ref(t, t["input"], meta["forward_type"], cf)
        assert_close(a, ref, 1e-5, path.name)
        r = from_file.forward(t["input"], backend="reference")
        assert_close(r, ref, 1e-5, path.name + " reference backend")


def test_out_buffer_is_written_in_place():
    rng = np.random.default_rng(2)
    u, delta, A, B, C = scan_inputs(rng)
    want = ss2d.selective_scan_fn(u, delta, A, B, C, delta_softplus=True)
    out = np.full_like(u, np.nan)
    got = ss2d.selective_scan_fn(u, delta, A, B, C, delta_softplus=True, out=out)
    assert got is out and np.array_equal(out, want)
    with pytest.raises(ValueError, match="`out` is not writeable or aliases an input array"):
        ss2d.selective_scan_fn(u, delta, A, B, C, out=u)
    with pytest.raises(ValueError, match=r"`out` has shape \(2, 16, 63\), expected \(2, 16, 64\)"):
        ss2d.selective_scan_fn(u, delta, A, B, C, out=np.zeros((2, 16, 63), np.float32))
    before = np.full_like(u, 7.0)
    with pytest.raises(ValueError):
        ss2d.selective_scan_fn(u, delta[:, :, :10], A, B, C, out=before)
    assert np.all(before == 7.0)  # nothing written on error


def test_bench_runs(capsys):
    from ss2d import bench

    assert bench.main(["--op", "all", "--no-reference", "--reps", "1", "--json"]) == 0
    import json
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["op"] for r in rows] == ["scan", "scan", "layer", "layer", "layer"]
    assert all(r["ss2d_s"] > 0 for r in rows)
