"""torch tensors in and out, the custom ops (torch.compile, TorchScript), forward-only autograd,
and the swap example. Skipped as a whole (one counted skip, reason printed with ``-rs``) when
torch is not installed: the CI installs NumPy only."""

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch to run)")

import ss2d  # noqa: E402
import ss2d.torch as st  # noqa: E402
from ss2d import _convert  # noqa: E402
from conftest import assert_close, golden_files, load  # noqa: E402


def scan_inputs(seed=0, batch=2, dim=16, l=64, n=4):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return (r(batch, dim, l), r(batch, dim, l), -torch.rand(dim, n, generator=g) - 0.5,
            r(batch, 2, n, l), r(batch, 2, n, l), r(dim), r(batch, dim, l), r(dim))


def test_tensors_in_tensors_out_bitwise_as_numpy():
    u, delta, A, B, C, D, z, bias = scan_inputs()
    out, last = ss2d.selective_scan_fn(u, delta, A, B, C, D, z, bias, True, True)
    assert isinstance(out, torch.Tensor) and isinstance(last, torch.Tensor)
    assert out.dtype == torch.float32 and out.shape == u.shape and last.shape == (2, 16, 4)
    n_out, n_last = ss2d.selective_scan_fn(*(t.numpy() for t in (u, delta, A, B, C, D, z, bias)),
                                           delta_softplus=True, return_last_state=True)
    assert np.array_equal(out.numpy(), n_out) and np.array_equal(last.numpy(), n_last)


def test_zero_copy_and_conversions():
    u = torch.randn(2, 3, 8)
    a = _convert.to_f32("u", u)
    assert a.ctypes.data == u.data_ptr()  # contiguous float32: no copy
    t = u.transpose(1, 2)
    assert _convert.to_f32("u", t).ctypes.data != t.data_ptr()  # strided: a contiguous copy
    args = scan_inputs()[:5]
    want = ss2d.selective_scan_fn(*args, delta_softplus=True)
    bf = ss2d.selective_scan_fn(args[0].bfloat16(), *args[1:], delta_softplus=True)
    assert bf.dtype == torch.bfloat16
    f64 = ss2d.selective_scan_fn(args[0].double(), *args[1:], delta_softplus=True)
    assert f64.dtype == torch.float64 and torch.equal(f64.float(), want)
    strided = torch.zeros(2, 16, 128)
    strided[:, :, ::2] = args[0]
    assert torch.equal(ss2d.selective_scan_fn(strided[:, :, ::2], *args[1:], delta_softplus=True), want)
    with pytest.raises(TypeError, match="tensor `A` has dtype torch.int64"):
        ss2d.selective_scan_fn(args[0], args[1], args[2].long(), *args[3:])


def test_cross_ops_and_fused_scan_on_tensors():
    x = torch.randn(2, 3, 5, 7)
    xs = ss2d.cross_scan_fn(x)
    assert isinstance(xs, torch.Tensor) and xs.shape == (2, 4, 3, 35)
    assert np.array_equal(xs.numpy(), ss2d.cross_scan_fn(x.numpy()))
    y = ss2d.cross_merge_fn(xs.reshape(2, 4, 3, 5, 7))
    assert y.shape == (2, 3, 35)
    y_cl = st.cross_merge_fn(xs.reshape(2, 4, 3, 5, 7), in_channel_first=False)
    assert y_cl.shape == (2, 35, 3)


def test_backward_raises_a_clear_error():
    u, delta, A, B, C, *_ = scan_inputs()
    u.requires_grad_()
    out = ss2d.selective_scan_fn(u, delta, A, B, C)
    with pytest.raises(RuntimeError, match="ss2d.selective_scan has no backward"):
        out.sum().backward()
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="ss2d.cross_scan has no backward"):
        st.cross_scan_fn(x).sum().backward()


def test_torch_compile_fullgraph_and_torchscript():
    u, delta, A, B, C, D, z, bias = scan_inputs()

    def f(u, delta, A, B, C, D, bias):
        y = st.selective_scan_fn(u * 2, delta, A, B, C, D, None, bias, True)
        return st.cross_scan_fn(y.reshape(2, 16, 8, 8)) + 1

    eager = f(u, delta, A, B, C, D, bias)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)(u, delta, A, B, C, D, bias)
    assert torch.equal(eager, compiled)

    @torch.jit.script
    def scripted(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ss2d.cross_scan(x, True, True, False, 0, 1)

    x = torch.randn(1, 2, 3, 4)
    assert torch.equal(scripted(x), ss2d.cross_scan_fn(x))


def test_ss2d_class_takes_a_torch_state_dict():
    from ss2d import torch_reference as torch_ss2d

    torch.manual_seed(0)
    m = torch_ss2d.SS2D(16, d_state=4, ssm_ratio=2.0, forward_type="v05", channel_first=True)
    x = torch.randn(1, 16, 6, 5)
    with torch.no_grad():
        want = m(x)
    layer = ss2d.SS2D(m.state_dict(), forward_type="v05", channel_first=True)
    got = layer(x)
    assert isinstance(got, torch.Tensor)
    assert_close(got.numpy(), want.numpy(), 1e-5)


def test_swap_example():
    """The module's own output with its scan swapped for ss2d: within 1e-5 x max|ref|, faster."""
    from ss2d import torch_reference as torch_ss2d

    files = [p for p in golden_files("ss2d") if "stage1_s1l8" in p.name]
    assert files, "golden stage-1 s1l8 case missing"
    meta, t = load(files[0])
    m = torch_ss2d.SS2D(96, d_state=1, ssm_ratio=1.0, conv_bias=False, forward_type="v05_noz",
                        channel_first=True)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in t.items() if k in m.state_dict()})
    x = torch.from_numpy(t["input"])
    saved = (torch_ss2d.selective_scan_fn, torch_ss2d.cross_scan_fn, torch_ss2d.cross_merge_fn)
    with torch.inference_mode():
        t0 = time.perf_counter()
        ref = m(x)
        t_ref = time.perf_counter() - t0
        assert_close(ref.numpy(), t["output"], 1e-5, "torch module vs golden")
        swapped = st.patch_vmamba(torch_ss2d)
        try:
            assert swapped == ["selective_scan_fn", "cross_scan_fn", "cross_merge_fn"]
            m(x)  # warm-up
            t0 = time.perf_counter()
            reps = 5
            for _ in range(reps):
                fast = m(x)
            t_fast = (time.perf_counter() - t0) / reps
        finally:
            (torch_ss2d.selective_scan_fn, torch_ss2d.cross_scan_fn,
             torch_ss2d.cross_merge_fn) = saved
    assert_close(fast.numpy(), ref.numpy(), 1e-5, "swapped vs own output")
    print(f"swap example (s1l8 stage 1, 96 x 56 x 56): torch reference {t_ref * 1e3:.1f} ms, "
          f"with ss2d {t_fast * 1e3:.1f} ms: {t_ref / t_fast:.1f}x faster")
    assert t_fast < t_ref


def test_fused_scan_op_and_patch_mamba():
    import types

    g = torch.Generator().manual_seed(3)
    D, N, R = 8, 2, 1
    x = torch.randn(1, D, 5, 6, generator=g)
    w = (torch.randn(4, R + 2 * N, D, generator=g) * 0.3, torch.randn(4, D, R, generator=g) * 0.5,
         torch.rand(4, D, generator=g) - 4, torch.zeros(4 * D, N), torch.ones(4 * D))
    y = ss2d.ss2d_scan(x, *w)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape
    assert np.array_equal(y.numpy(), ss2d.ss2d_scan(x.numpy(), *(t.numpy() for t in w)))
    compiled = torch.compile(lambda x: st.ss2d_scan(x, *w) * 2, backend="aot_eager",
                             fullgraph=True)
    assert torch.equal(compiled(x), y * 2)
    fake = types.ModuleType("mamba_ssm.modules.fake")
    fake.selective_scan_fn = None
    assert st.patch_mamba(fake) == ["mamba_ssm.modules.fake"]
    assert fake.selective_scan_fn is st.selective_scan_fn
