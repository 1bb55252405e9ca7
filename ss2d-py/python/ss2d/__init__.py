"""ss2d: CPU kernels for Mamba's selective scan and VMamba's SS2D (Rust, PyO3).

Functions take NumPy arrays or torch CPU tensors and return the same kind (see ``_convert`` for
the zero-copy and conversion rules). The GIL is released while a kernel runs; bad input raises
``ValueError`` / ``TypeError`` with a one-line message and returns nothing.

- :func:`selective_scan_fn`: mamba_ssm's ``selective_scan_fn`` (plus ``initial_state``, ``threads``)
- :func:`cross_scan_fn`, :func:`cross_merge_fn`: VMamba's ``csm_triton`` functions
- :func:`ss2d_scan`: the fused 4-direction SS2D scan (``forward_corev2`` from cross-scan to merge)
- :class:`SS2D`: a VMamba ``SS2D`` module from a state_dict or a safetensors file
- :mod:`ss2d.torch`: the same kernels as ``torch.library`` custom ops
"""

import os

from . import _ss2d
from ._convert import any_tensor, is_tensor, like, opt_f32, threads_arg, to_f32

__version__ = _ss2d.__version__

__all__ = [
    "SS2D",
    "cross_merge_fn",
    "cross_scan_fn",
    "default_threads",
    "selective_scan_fn",
    "simd_level",
    "ss2d_scan",
]


def simd_level():
    """The SIMD level the kernels run at: ``x86-64``, ``x86-64-v3`` or ``x86-64-v4``."""
    return _ss2d.simd_level()


# Read once: the core count query costs microseconds (cgroup files), more than a small scan.
_DEFAULT_THREADS = _ss2d.default_threads()


def default_threads():
    """Threads a call uses when ``threads=None``: every available core (read at import)."""
    return _DEFAULT_THREADS


def _threads(threads):
    return _DEFAULT_THREADS if threads is None else threads_arg(threads, default_threads)


def _torch_ops():
    from . import torch as ops

    return ops


def selective_scan_fn(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
    threads=None,
    out=None,
):
    """mamba_ssm's ``selective_scan_fn`` on the CPU.

    ``u``, ``delta``, ``z``: ``(batch, dim, L)``; ``A``: ``(dim, N)``; ``B``, ``C``: ``(dim, N)``
    (constant), ``(batch, N, L)`` (one group) or ``(batch, G, N, L)`` (channel ``d`` uses group
    ``d // (dim // G)``); ``D``, ``delta_bias``: ``(dim,)``; ``initial_state``:
    ``(batch, dim, N)`` (the state before the first step; zeros when ``None``). Returns ``out``
    ``(batch, dim, L)`` in the dtype of ``u``, or ``(out, last_state)`` with
    ``return_last_state`` (``last_state`` ``(batch, dim, N)``, float32). ``out``: a
    C-contiguous float32 NumPy array of ``u``'s shape to write the result into (reused across
    calls it saves the allocation; it must not be one of the inputs), returned as ``out``.
    """
    if any_tensor(u, delta, A, B, C, D, z, delta_bias, initial_state):
        if out is not None:
            raise TypeError("`out=` takes a NumPy array; with torch tensors the op returns a new one")
        return _torch_ops().selective_scan_fn(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
            initial_state=initial_state, threads=threads,
        )
    res, last = _ss2d.selective_scan(
        to_f32("u", u),
        to_f32("delta", delta),
        to_f32("A", A),
        to_f32("B", B),
        to_f32("C", C),
        opt_f32("D", D),
        opt_f32("z", z),
        opt_f32("delta_bias", delta_bias),
        bool(delta_softplus),
        bool(return_last_state),
        opt_f32("initial_state", initial_state),
        _threads(threads),
        out,
    )
    out = out if out is not None and res is out else like(res, u)
    return (out, last) if return_last_state else out


def cross_scan_fn(
    x, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
    force_torch=False, threads=None,
):
    """VMamba's ``cross_scan_fn``: ``x`` ``(B, C, H, W)`` (``in_channel_first``) or
    ``(B, H, W, C)`` (one_by_one: ``(B, 4, C, H, W)`` / ``(B, H, W, 4, C)``) to ``xs``
    ``(B, 4, C, L)`` (``out_channel_first``) or ``(B, L, 4, C)``. ``scans``: 0 cross2d,
    1 unidi, 2 bidi. ``force_torch`` is accepted for VMamba's signature and ignored."""
    if is_tensor(x):
        return _torch_ops().cross_scan_fn(
            x, in_channel_first, out_channel_first, one_by_one, scans, threads=threads
        )
    out = _ss2d.cross_scan(
        to_f32("x", x), bool(in_channel_first), bool(out_channel_first), bool(one_by_one),
        int(scans), _threads(threads),
    )
    return like(out, x)


def cross_merge_fn(
    ys, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
    force_torch=False, threads=None,
):
    """VMamba's ``cross_merge_fn``: ``ys`` ``(B, 4, C, H, W)`` (``out_channel_first``) or
    ``(B, H, W, 4, C)``, each direction in its scan order, to ``y`` ``(B, C, L)``
    (``in_channel_first``) or ``(B, L, C)``: the four directions mapped back to row-major order
    and summed in upstream's order (one_by_one: ``(B, 4, C, L)`` / ``(B, L, 4, C)``, not
    summed). ``force_torch`` is accepted for VMamba's signature and ignored."""
    if is_tensor(ys):
        return _torch_ops().cross_merge_fn(
            ys, in_channel_first, out_channel_first, one_by_one, scans, threads=threads
        )
    out = _ss2d.cross_merge(
        to_f32("ys", ys), bool(in_channel_first), bool(out_channel_first), bool(one_by_one),
        int(scans), _threads(threads),
    )
    return like(out, ys)


def ss2d_scan(
    x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scans=0, channel_first=True,
    fused=True, threads=None,
):
    """The SS2D scan of VMamba's ``forward_corev2`` (steps 6-11 of the semantics: cross-scan,
    ``x_proj``, ``dt_proj``, the selective scan of the four directions with
    ``A = -exp(A_logs)``, ``D = Ds``, ``delta_bias = dt_projs_bias``, softplus, cross-merge)
    on ``x`` ``(B, D, H, W)`` (``channel_first``) or ``(B, H, W, D)``; returns ``y`` in the
    layout of ``x``. ``fused=True`` runs the fused kernel (no ``(B, 4, D, L)`` tensor),
    ``False`` the step-by-step path; both give the same values."""
    if any_tensor(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds):
        return _torch_ops().ss2d_scan(
            x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scans=scans,
            channel_first=channel_first, fused=fused, threads=threads,
        )
    out = _ss2d.ss2d_scan(
        to_f32("x", x),
        to_f32("x_proj_weight", x_proj_weight),
        to_f32("dt_projs_weight", dt_projs_weight),
        to_f32("dt_projs_bias", dt_projs_bias),
        to_f32("A_logs", A_logs),
        to_f32("Ds", Ds),
        int(scans),
        bool(channel_first),
        bool(fused),
        _threads(threads),
    )
    return like(out, x)


def _meta(meta, key, parse, expected):
    v = meta.get(key)
    if v is None:
        return None
    try:
        return parse(v.strip())
    except ValueError:
        raise ValueError(f"metadata `{key}` = {v!r} is not {expected}") from None


def _parse_bool(s):
    if s in ("true", "True", "1"):
        return True
    if s in ("false", "False", "0"):
        return False
    raise ValueError(s)


def _parse_dt_rank(s):
    return None if s == "auto" else int(s)


def _resolve_config(meta, shapes, prefix, given):
    """Keyword arguments, then the file's ``__metadata__``, then the tensors' shapes (the CLI's
    order, ``ss2d layer``); ``forward_type`` and ``channel_first`` have no shape fallback."""

    def dim(name, i):
        s = shapes.get(prefix + name)
        return s[i] if s is not None and len(s) > i else None

    def pick(key, parse, expected, fallback):
        if given.get(key) is not None:
            return given[key]
        v = _meta(meta, key, parse, expected)
        return fallback() if v is None else v

    def missing(key):
        raise ValueError(f"no `{key}`: pass {key}= or give the `{key}` metadata key")

    cfg = {}
    cfg["forward_type"] = pick("forward_type", str, "a string", lambda: missing("forward_type"))
    cfg["channel_first"] = pick(
        "channel_first", _parse_bool, "true or false", lambda: missing("channel_first")
    )
    cfg["d_model"] = pick("d_model", int, "an integer", lambda: dim("in_proj.weight", 1))
    cfg["d_state"] = pick("d_state", int, "an integer", lambda: dim("A_logs", 1))
    if given.get("dt_rank") == "auto":
        cfg["dt_rank"] = None
    else:
        cfg["dt_rank"] = pick(
            "dt_rank", _parse_dt_rank, "`auto` or an integer", lambda: dim("dt_projs_weight", 2)
        )

    def ratio():
        d_inner = dim("x_proj_weight", 2)
        if d_inner is None or not cfg["d_model"]:
            return None
        r = d_inner / cfg["d_model"]
        # int(r * d_model) must give d_inner back; nudge half a channel if rounding bites.
        return r if int(r * cfg["d_model"]) == d_inner else (d_inner + 0.5) / cfg["d_model"]

    cfg["ssm_ratio"] = pick("ssm_ratio", float, "a number", ratio)
    cfg["d_conv"] = pick("d_conv", int, "an integer", lambda: dim("conv2d.weight", 2) or 1)
    cfg["conv_bias"] = pick(
        "conv_bias", _parse_bool, "true or false", lambda: (prefix + "conv2d.bias") in shapes
    )
    for key in ("d_model", "d_state", "ssm_ratio"):
        if cfg[key] is None:
            missing(key)
    return cfg


class SS2D:
    """A VMamba ``SS2D`` module (forward only) on the CPU kernels.

    ``state_dict``: a dict of arrays / tensors (e.g. ``module.state_dict()`` or a full VSSM
    checkpoint's ``model`` dict) or the path of a safetensors file. ``prefix``: the module's key
    prefix (``"layers.0.blocks.1.op."`` in a VSSM checkpoint). The configuration comes from the
    keyword arguments, then the file's ``__metadata__``, then the tensor shapes;
    ``forward_type`` (e.g. ``"v05_noz"``, ``"v0"``) and ``channel_first`` are required unless
    the metadata holds them. ``dt_rank`` may be ``"auto"``.
    """

    def __init__(
        self,
        state_dict,
        prefix="",
        *,
        forward_type=None,
        channel_first=None,
        d_model=None,
        d_state=None,
        ssm_ratio=None,
        dt_rank=None,
        d_conv=None,
        conv_bias=None,
        threads=None,
    ):
        if isinstance(state_dict, (str, os.PathLike)):
            meta, tensors = _ss2d.load_safetensors(os.fspath(state_dict))
        elif isinstance(state_dict, dict) or hasattr(state_dict, "items"):
            meta, tensors = {}, dict(state_dict.items())
        else:
            raise TypeError(
                "state_dict must be a dict of arrays or a safetensors file path, "
                f"got {type(state_dict).__name__}"
            )
        names = [prefix + n for n in _ss2d.TENSOR_NAMES]
        tensors = {n: to_f32(n, tensors[n]) for n in names if n in tensors}
        if not tensors:
            raise ValueError(
                f"missing tensor `{prefix}in_proj.weight`: no SS2D module tensors under "
                f"prefix `{prefix}`"
            )
        given = dict(
            forward_type=forward_type, channel_first=channel_first, d_model=d_model,
            d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv,
            conv_bias=conv_bias,
        )
        cfg = _resolve_config(meta, {n: t.shape for n, t in tensors.items()}, prefix, given)
        self._layer = _ss2d.Layer(tensors, prefix, **cfg)
        self._threads = threads

    @property
    def config(self):
        """The resolved configuration (with ``d_inner``, the resolved ``dt_rank`` and the
        parameter count)."""
        return self._layer.config()

    def forward(self, x, threads=None, backend="fast"):
        """The forward on ``x`` (``(B, d_model, H, W)`` channel-first or ``(B, H, W, d_model)``);
        returns the same kind, shape and dtype. ``backend``: ``fast`` (default), ``unfused``
        (the step-by-step scan) or ``reference`` (scalar, single-threaded)."""
        t = self._threads if threads is None else threads
        out = self._layer.forward(to_f32("input", x), _threads(t), backend)
        return like(out, x)

    __call__ = forward

    def __repr__(self):
        c = self.config
        return (
            f"ss2d.SS2D(d_model={c['d_model']}, d_inner={c['d_inner']}, d_state={c['d_state']}, "
            f"forward_type={c['forward_type']!r}, channel_first={c['channel_first']})"
        )
