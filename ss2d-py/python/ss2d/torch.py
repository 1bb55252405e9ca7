"""The ss2d kernels as ``torch.library`` custom ops (CPU), for eager code, ``torch.compile`` and
drop-in replacement of the CUDA-only kernels of mamba_ssm and VMamba.

Ops (namespace ``ss2d``): ``torch.ops.ss2d.selective_scan``, ``cross_scan``, ``cross_merge``,
``ss2d_scan``. Each has a fake (meta) implementation so ``torch.compile`` traces through it
without a graph break. They are forward-only: calling ``backward`` through one raises
``RuntimeError`` ("ss2d ... has no backward").

The one-line swap for an existing model (CPU inference)::

    # mamba_ssm: modules look the function up in their own namespace
    import mamba_ssm.modules.mamba_simple as m; m.selective_scan_fn = ss2d.torch.selective_scan_fn

    # VMamba (classification/models/vmamba.py imports the three kernels by name)
    ss2d.torch.patch_vmamba(vmamba)

Tensors: contiguous float32 CPU tensors are used in place (``Tensor.numpy()`` shares memory);
other floating dtypes and strided tensors are converted to a float32 copy; results come back as
tensors in the dtype of the primary input (mamba returns ``out`` in the dtype of ``u``).
"""

from typing import List, Optional, Tuple

import numpy as np
import torch

from . import _ss2d, default_threads
from ._convert import threads_arg, to_f32

Tensor = torch.Tensor

__all__ = [
    "cross_merge_fn",
    "cross_scan_fn",
    "patch_mamba",
    "patch_vmamba",
    "selective_scan_fn",
    "ss2d_scan",
    "vmamba_selective_scan_fn",
]


def _threads(threads):
    """An op's ``threads`` argument: 0 (or None) means every core."""
    return default_threads() if threads is None or threads <= 0 else threads


def _opt(name, x):
    return None if x is None else to_f32(name, x)


def _back(out, dtype):
    t = torch.from_numpy(out)
    return t if dtype == torch.float32 else t.to(dtype)


def _no_backward(op):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"ss2d.{op} has no backward: the ss2d kernels are forward-only (inference). "
            "Run the model under torch.no_grad() / torch.inference_mode(), or use the "
            "upstream kernels for training."
        )

    def setup_context(ctx, inputs, output):
        pass

    torch.library.register_autograd(f"ss2d::{op}", backward, setup_context=setup_context)


# ------------------------------------------------------------------------------------------
# selective scan


@torch.library.custom_op("ss2d::selective_scan", mutates_args=(), device_types="cpu")
def _selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Optional[Tensor],
    z: Optional[Tensor],
    delta_bias: Optional[Tensor],
    delta_softplus: bool,
    initial_state: Optional[Tensor],
    threads: int,
) -> Tuple[Tensor, Tensor]:
    out, last = _ss2d.selective_scan(
        to_f32("u", u), to_f32("delta", delta), to_f32("A", A), to_f32("B", B),
        to_f32("C", C), _opt("D", D), _opt("z", z), _opt("delta_bias", delta_bias),
        delta_softplus, True, _opt("initial_state", initial_state), _threads(threads),
    )
    return _back(out, u.dtype), torch.from_numpy(last)


@_selective_scan.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, threads):
    batch, dim, _ = u.shape
    return u.new_empty(u.shape), A.new_empty((batch, dim, A.shape[1]), dtype=torch.float32)


_no_backward("selective_scan")


def selective_scan_fn(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    return_last_state=False, initial_state=None, threads=None,
):
    """mamba_ssm's ``selective_scan_fn`` through ``torch.ops.ss2d.selective_scan`` (shapes and
    options as :func:`ss2d.selective_scan_fn`)."""
    out, last = torch.ops.ss2d.selective_scan(
        _as_tensor(u), _as_tensor(delta), _as_tensor(A), _as_tensor(B), _as_tensor(C),
        _as_tensor(D), _as_tensor(z), _as_tensor(delta_bias), bool(delta_softplus),
        _as_tensor(initial_state), _threads_int(threads),
    )
    return (out, last) if return_last_state else out


def vmamba_selective_scan_fn(
    u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True, oflex=True, backend=None,
):
    """VMamba's ``csms6s.selective_scan_fn`` signature (no z; ``backend`` ignored). With
    ``oflex`` (the default) the output is float32, as VMamba's oflex kernel returns."""
    out = selective_scan_fn(u, delta, A, B, C, D, None, delta_bias, delta_softplus)
    return out.float() if oflex else out


def _as_tensor(x):
    if x is None or isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"expected a torch tensor or NumPy array, got {type(x).__name__}")


def _threads_int(threads):
    """``threads`` for an op argument: 0 means "every core" (ops take no None for ints in
    every torch version)."""
    if threads is None:
        return 0
    return threads_arg(threads, default_threads)


# ------------------------------------------------------------------------------------------
# cross scan / merge


def _cross_seq_shape(b, c, h, w, out_cf):
    return (b, 4, c, h * w) if out_cf else (b, h * w, 4, c)


@torch.library.custom_op("ss2d::cross_scan", mutates_args=(), device_types="cpu")
def _cross_scan(
    x: Tensor, in_channel_first: bool, out_channel_first: bool, one_by_one: bool, scans: int,
    threads: int,
) -> Tensor:
    out = _ss2d.cross_scan(
        to_f32("x", x), in_channel_first, out_channel_first, one_by_one, scans, _threads(threads)
    )
    return _back(out, x.dtype)


@_cross_scan.register_fake
def _(x, in_channel_first, out_channel_first, one_by_one, scans, threads):
    s = list(x.shape)
    if one_by_one:
        b, c, h, w = (s[0], s[2], s[3], s[4]) if in_channel_first else (s[0], s[4], s[1], s[2])
    else:
        b, c, h, w = (s[0], s[1], s[2], s[3]) if in_channel_first else (s[0], s[3], s[1], s[2])
    return x.new_empty(_cross_seq_shape(b, c, h, w, out_channel_first))


_no_backward("cross_scan")


@torch.library.custom_op("ss2d::cross_merge", mutates_args=(), device_types="cpu")
def _cross_merge(
    ys: Tensor, in_channel_first: bool, out_channel_first: bool, one_by_one: bool, scans: int,
    threads: int,
) -> Tensor:
    out = _ss2d.cross_merge(
        to_f32("ys", ys), in_channel_first, out_channel_first, one_by_one, scans,
        _threads(threads),
    )
    return _back(out, ys.dtype)


@_cross_merge.register_fake
def _(ys, in_channel_first, out_channel_first, one_by_one, scans, threads):
    s = list(ys.shape)
    b, c, h, w = (s[0], s[2], s[3], s[4]) if out_channel_first else (s[0], s[4], s[1], s[2])
    shape: List[int]
    if one_by_one:
        shape = [b, 4, c, h * w] if in_channel_first else [b, h * w, 4, c]
    else:
        shape = [b, c, h * w] if in_channel_first else [b, h * w, c]
    return ys.new_empty(shape)


_no_backward("cross_merge")


def cross_scan_fn(
    x, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0, force_torch=False,
    threads=None,
):
    """VMamba's ``cross_scan_fn`` (``force_torch`` accepted and ignored) as a custom op."""
    return torch.ops.ss2d.cross_scan(
        _as_tensor(x), bool(in_channel_first), bool(out_channel_first), bool(one_by_one),
        int(scans), _threads_int(threads),
    )


def cross_merge_fn(
    ys, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
    force_torch=False, threads=None,
):
    """VMamba's ``cross_merge_fn`` (``force_torch`` accepted and ignored) as a custom op."""
    return torch.ops.ss2d.cross_merge(
        _as_tensor(ys), bool(in_channel_first), bool(out_channel_first), bool(one_by_one),
        int(scans), _threads_int(threads),
    )


# ------------------------------------------------------------------------------------------
# fused SS2D scan


@torch.library.custom_op("ss2d::ss2d_scan", mutates_args=(), device_types="cpu")
def _ss2d_scan_op(
    x: Tensor,
    x_proj_weight: Tensor,
    dt_projs_weight: Tensor,
    dt_projs_bias: Tensor,
    A_logs: Tensor,
    Ds: Tensor,
    scans: int,
    channel_first: bool,
    fused: bool,
    threads: int,
) -> Tensor:
    out = _ss2d.ss2d_scan(
        to_f32("x", x), to_f32("x_proj_weight", x_proj_weight),
        to_f32("dt_projs_weight", dt_projs_weight), to_f32("dt_projs_bias", dt_projs_bias),
        to_f32("A_logs", A_logs), to_f32("Ds", Ds), scans, channel_first, fused,
        _threads(threads),
    )
    return _back(out, x.dtype)


@_ss2d_scan_op.register_fake
def _(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scans, channel_first, fused,
      threads):
    return x.new_empty(x.shape)


_no_backward("ss2d_scan")


def ss2d_scan(
    x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scans=0, channel_first=True,
    fused=True, threads=None,
):
    """:func:`ss2d.ss2d_scan` as a custom op."""
    return torch.ops.ss2d.ss2d_scan(
        _as_tensor(x), _as_tensor(x_proj_weight), _as_tensor(dt_projs_weight),
        _as_tensor(dt_projs_bias), _as_tensor(A_logs), _as_tensor(Ds), int(scans),
        bool(channel_first), bool(fused), _threads_int(threads),
    )


# ------------------------------------------------------------------------------------------
# swaps


def patch_mamba(module=None):
    """Points mamba_ssm's ``selective_scan_fn`` at ss2d in ``module`` (default: every loaded
    ``mamba_ssm`` module that holds that name). Returns the patched module names."""
    import sys

    mods = [module] if module is not None else [
        m for n, m in list(sys.modules.items()) if n.startswith("mamba_ssm") and m is not None
    ]
    done = []
    for m in mods:
        if hasattr(m, "selective_scan_fn"):
            m.selective_scan_fn = selective_scan_fn
            done.append(m.__name__)
    return done


def patch_vmamba(module):
    """Points VMamba's ``selective_scan_fn``, ``cross_scan_fn`` and ``cross_merge_fn`` in
    ``module`` (``classification/models/vmamba.py``, or ``csms6s`` / ``csm_triton``) at ss2d
    (only the names the module has). Returns the names replaced."""
    done = []
    for name, fn in (
        ("selective_scan_fn", vmamba_selective_scan_fn),
        ("cross_scan_fn", cross_scan_fn),
        ("cross_merge_fn", cross_merge_fn),
    ):
        if hasattr(module, name):
            setattr(module, name, fn)
            done.append(name)
    return done
