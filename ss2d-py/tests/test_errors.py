"""Bad input: ValueError / TypeError with the core's one-line message, nothing returned."""

import numpy as np
import pytest

import ss2d


def inputs(batch=1, dim=4, l=8, n=2):
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return f(batch, dim, l), f(batch, dim, l), -np.abs(f(dim, n)), f(dim, n), f(dim, n)


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_shape_mismatch_names_the_tensor():
    u, d, A, B, C = inputs()
    with pytest.raises(ValueError) as e:
        ss2d.selective_scan_fn(u, d[:, :, :5], A, B, C)
    assert one_line(e) == "tensor `delta` has shape (1, 4, 5), expected (1, 4, 8)"
    with pytest.raises(ValueError) as e:
        ss2d.selective_scan_fn(u, d, A, B, C, D=np.ones(3, np.float32))
    assert one_line(e) == "tensor `D` has shape (3,), expected (4,)"
    with pytest.raises(ValueError) as e:
        ss2d.selective_scan_fn(u[0], d, A, B, C)
    assert "tensor `u` has shape (4, 8), expected (batch, dim, L)" == one_line(e)


def test_core_errors_pass_through():
    u, d, A, B, C = inputs(dim=6)
    with pytest.raises(ValueError) as e:
        Bg = np.zeros((1, 4, 2, 8), np.float32)
        ss2d.selective_scan_fn(u, d, A, Bg, C)
    assert one_line(e) == "`B` has 4 groups, which does not divide the 6 channels"
    big = np.zeros((6, 257), np.float32)
    with pytest.raises(ValueError) as e:
        ss2d.selective_scan_fn(u, d, big, big, big)
    assert one_line(e) == "d_state must be in 1..=256, got 257"
    with pytest.raises(ValueError) as e:
        ss2d.cross_scan_fn(np.zeros((1, 2, 3, 4), np.float32), scans=3)
    assert one_line(e) == "unsupported: cross-scan mode (scans must be 0, 1 or 2)"


def test_types_and_dtypes():
    u, d, A, B, C = inputs()
    with pytest.raises(TypeError, match="`u` must be a NumPy array or a torch tensor, got list"):
        ss2d.selective_scan_fn(u.tolist(), d, A, B, C)
    with pytest.raises(TypeError, match="tensor `A` has dtype int64"):
        ss2d.selective_scan_fn(u, d, A.astype(np.int64), B, C)
    with pytest.raises(TypeError, match="complex"):
        ss2d.selective_scan_fn(u, d, A.astype(np.complex64), B, C)
    with pytest.raises(ValueError, match="`threads` must be at least 1, got 0"):
        ss2d.selective_scan_fn(u, d, A, B, C, threads=0)


def test_cross_and_scan_shapes():
    with pytest.raises(ValueError) as e:
        ss2d.cross_merge_fn(np.zeros((1, 4, 2, 12), np.float32))
    assert one_line(e) == "tensor `ys` has shape (1, 4, 2, 12), expected (B, 4, C, H, W)"
    with pytest.raises(ValueError) as e:
        ss2d.cross_scan_fn(np.zeros((1, 3, 2, 4, 4), np.float32), one_by_one=True)
    assert one_line(e) == "tensor `x` has shape (1, 3, 2, 4, 4), expected (B, 4, C, H, W)"
    x = np.zeros((1, 8, 3, 3), np.float32)
    w = dict(x_proj_weight=np.zeros((4, 3, 8), np.float32), dt_projs_weight=np.zeros((4, 8, 1), np.float32),
             dt_projs_bias=np.zeros((4, 8), np.float32), A_logs=np.zeros((32, 1), np.float32),
             Ds=np.zeros(31, np.float32))
    with pytest.raises(ValueError) as e:
        ss2d.ss2d_scan(x, **w)
    assert one_line(e) == "tensor `Ds` has shape (31,), expected (32,)"


def test_layer_errors(tmp_path):
    with pytest.raises(OSError, match="nope.safetensors"):
        ss2d.SS2D(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}}}}")
    with pytest.raises(ValueError, match="bad.safetensors"):
        ss2d.SS2D(bad)
    with pytest.raises(ValueError, match="no SS2D module tensors under prefix `x.`"):
        ss2d.SS2D({"a": np.zeros(1, np.float32)}, "x.")
    sd = {"in_proj.weight": np.zeros((8, 4), np.float32)}
    with pytest.raises(ValueError, match="no `forward_type`"):
        ss2d.SS2D(sd)
    with pytest.raises(ValueError) as e:
        ss2d.SS2D(sd, forward_type="v05_noz", channel_first=True, d_state=1, ssm_ratio=2.0)
    assert "A_logs" in one_line(e)
    with pytest.raises(TypeError):
        ss2d.SS2D(42)


def test_layer_input_shape(tmp_path):
    from conftest import golden_files
    files = [p for p in golden_files("ss2d") if "v05noz_ds1_r1_cf_d16" in p.name]
    assert files, "golden ss2d_v05noz_ds1_r1_cf_d16 missing"
    layer = ss2d.SS2D(files[0])
    with pytest.raises(ValueError) as e:
        layer(np.zeros((1, 8, 4, 4), np.float32))
    assert "(B, 16, H, W)" in one_line(e)
    with pytest.raises(ValueError, match="backend must be"):
        layer.forward(np.zeros((1, 16, 4, 4), np.float32), backend="gpu")
