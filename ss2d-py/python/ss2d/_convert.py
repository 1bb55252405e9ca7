"""Array conversion between the caller's arrays (NumPy, torch CPU tensors) and the native module.

Policy (documented in the package README):

- C-contiguous ``float32`` NumPy arrays and contiguous ``float32`` CPU tensors are passed to the
  kernels without a copy (a tensor through ``Tensor.numpy()``, which shares its memory).
- Other floating dtypes (``float16``, ``bfloat16``, ``float64``) and non-contiguous (strided)
  arrays are converted to a contiguous ``float32`` copy; the kernels compute in ``float32`` and
  the result is cast back to the dtype of the primary input (``u``, ``x``, ``ys``, ``input``),
  as mamba's ``selective_scan_fn`` returns ``out`` in the dtype of ``u``.
- Integer, boolean, complex and object arrays, tensors on a device other than the CPU, and
  anything that is not an array raise ``TypeError`` naming the argument.
"""

import sys

import numpy as np

_FLOATS = (np.float16, np.float32, np.float64)
_F32 = np.dtype(np.float32)


def torch_module():
    """The ``torch`` module if it is already imported (never imports it: that takes seconds)."""
    return sys.modules.get("torch")


def is_tensor(x):
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


def any_tensor(*xs):
    """Whether any argument is a torch tensor (one module lookup for all of them)."""
    t = sys.modules.get("torch")
    if t is None:
        return False
    T = t.Tensor
    return any(isinstance(x, T) for x in xs)


def _tensor_to_numpy(name, x):
    t = torch_module()
    if x.device.type != "cpu":
        raise TypeError(f"tensor `{name}` is on {x.device}; ss2d runs on the CPU only")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"tensor `{name}` has dtype {x.dtype}; ss2d takes floating tensors "
            "(float32 without a copy; float16, bfloat16, float64 converted)"
        )
    x = x.detach()
    if x.dtype != t.float32:
        x = x.to(t.float32)
    if not x.is_contiguous():
        x = x.contiguous()
    return x.numpy()


def to_f32(name, x):
    """``x`` as a C-contiguous float32 NumPy array (no copy when it already is one)."""
    if type(x) is np.ndarray and x.dtype == _F32 and x.flags.c_contiguous:
        return x  # the common case, first
    if isinstance(x, np.ndarray):
        if x.dtype == np.float32:
            return x if x.flags.c_contiguous else np.ascontiguousarray(x)
        if x.dtype.type in _FLOATS:
            return np.ascontiguousarray(x, dtype=np.float32)
        raise TypeError(
            f"tensor `{name}` has dtype {x.dtype}; ss2d takes floating arrays "
            "(float32 without a copy; float16, float64 converted)"
        )
    if is_tensor(x):
        return _tensor_to_numpy(name, x)
    raise TypeError(
        f"`{name}` must be a NumPy array or a torch tensor, got {type(x).__name__}"
    )


def opt_f32(name, x):
    return None if x is None else to_f32(name, x)


def like(out, primary):
    """``out`` (float32 NumPy) as the kind and dtype of ``primary``."""
    t = sys.modules.get("torch")
    if t is not None and isinstance(primary, t.Tensor):
        res = t.from_numpy(out)
        return res if primary.dtype == t.float32 else res.to(primary.dtype)
    if isinstance(primary, np.ndarray) and primary.dtype != _F32:
        return out.astype(primary.dtype)
    return out


def threads_arg(threads, default):
    if threads is None:
        return default()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"`threads` must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"`threads` must be at least 1, got {threads}")
    return int(threads)
