"""Plain NumPy references, written from the upstream semantics (mamba ``selective_scan_ref``,
VMamba ``cross_scan_fn`` / ``cross_merge_fn`` and ``SS2D.forwardv2``), independent of the Rust
kernels: the tests compare against them in float64, ``python -m ss2d.bench`` times them in
float32 as the "what you would write in NumPy" baseline.

Everything is channel-first ``(B, D, L)`` / ``(B, C, H, W)`` unless a function says otherwise.
"""

import numpy as np


def softplus(x):
    """torch ``F.softplus`` (beta 1, threshold 20)."""
    with np.errstate(over="ignore"):
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def silu(x):
    with np.errstate(over="ignore"):
        return x / (1 + np.exp(-x))


def _bc_at(M, l, batch, dim):
    """``B`` or ``C`` at step ``l`` as ``(batch, dim, N)`` (or ``(dim, N)`` when constant)."""
    if M.ndim == 2:
        return M
    if M.ndim == 3:
        return M[:, None, :, l]
    g = M.shape[1]
    return np.repeat(M[:, :, :, l], dim // g, axis=1)


def selective_scan_ref(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    return_last_state=False, initial_state=None, dtype=np.float64,
):
    """mamba's ``selective_scan_ref`` (sequential over ``L``) computed in ``dtype``; B/C as
    ``(D, N)``, ``(B, N, L)`` or ``(B, G, N, L)``."""
    f = lambda x: None if x is None else np.asarray(x, dtype=dtype)  # noqa: E731
    u, delta, A, B, C, D, z, delta_bias = map(f, (u, delta, A, B, C, D, z, delta_bias))
    batch, dim, L = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None]
    if delta_softplus:
        delta = softplus(delta)
    h = (
        np.zeros((batch, dim, A.shape[1]), dtype=dtype)
        if initial_state is None
        else np.array(initial_state, dtype=dtype)
    )
    y = np.empty((batch, dim, L), dtype=dtype)
    du = delta * u
    for l in range(L):
        dt = delta[:, :, l, None]
        h = np.exp(dt * A[None]) * h + du[:, :, l, None] * _bc_at(B, l, batch, dim)
        y[:, :, l] = np.sum(h * _bc_at(C, l, batch, dim), axis=-1)
    out = y if D is None else y + u * D[None, :, None]
    if z is not None:
        out = out * silu(z)
    return (out, h) if return_last_state else out


def _route(scans, H, W, k):
    """For direction ``k``: the row-major pixel index visited at each step."""
    p = np.arange(H * W)
    q = p.reshape(H, W).T.reshape(-1)  # column-major order
    kk = {0: k, 1: 0, 2: 0 if k < 2 else 2}[scans]
    return [p, q, p[::-1], q[::-1]][kk]


def cross_scan_ref(x, scans=0):
    """``(B, C, H, W)`` -> ``(B, 4, C, L)`` (channel-first on both sides)."""
    Bsz, Cc, H, W = x.shape
    flat = x.reshape(Bsz, Cc, H * W)
    return np.stack([flat[:, :, _route(scans, H, W, k)] for k in range(4)], axis=1)


def cross_merge_ref(ys, scans=0):
    """``(B, 4, C, H, W)`` -> ``(B, C, L)``: each direction mapped back, in upstream's order of
    additions ``(y0 + y2) + (y1 + y3)`` (cross2d, bidi) or ``((y0 + y1) + y2) + y3`` (unidi)."""
    Bsz, K, Cc, H, W = ys.shape
    seq = ys.reshape(Bsz, K, Cc, H * W)
    back = []
    for k in range(4):
        r = _route(scans, H, W, k)
        out = np.empty_like(seq[:, k])
        out[:, :, r] = seq[:, k]
        back.append(out)
    if scans == 1:
        return ((back[0] + back[1]) + back[2]) + back[3]
    return (back[0] + back[2]) + (back[1] + back[3])


def ss2d_scan_ref(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scans=0,
                  dtype=np.float64):
    """``forward_corev2`` steps 6-11 on channel-first ``x`` ``(B, D, H, W)`` -> ``(B, D, L)``."""
    x = np.asarray(x, dtype=dtype)
    Bsz, D, H, W = x.shape
    L = H * W
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    xs = cross_scan_ref(x, scans)  # (B, 4, D, L)
    x_dbl = np.einsum("kcd,bkdl->bkcl", np.asarray(x_proj_weight, dtype), xs)
    dts_r, Bs, Cs = x_dbl[:, :, :R], x_dbl[:, :, R:R + N], x_dbl[:, :, R + N:]
    dts = np.einsum("kdr,bkrl->bkdl", np.asarray(dt_projs_weight, dtype), dts_r)
    ys = selective_scan_ref(
        xs.reshape(Bsz, K * D, L), dts.reshape(Bsz, K * D, L),
        -np.exp(np.asarray(A_logs, dtype)), Bs, Cs, Ds,
        delta_bias=np.asarray(dt_projs_bias, dtype).reshape(-1), delta_softplus=True,
        dtype=dtype,
    )
    return cross_merge_ref(ys.reshape(Bsz, K, D, H, W), scans)


def _layer_norm(y, w, b, axis):
    mu = y.mean(axis=axis, keepdims=True)
    var = ((y - mu) ** 2).mean(axis=axis, keepdims=True)
    shape = [1] * y.ndim
    shape[axis] = -1
    return (y - mu) / np.sqrt(var + 1e-5) * w.reshape(shape) + b.reshape(shape)


def ss2d_layer_ref(sd, x, forward_type, channel_first, prefix="", dtype=np.float64):
    """VMamba's ``SS2D`` forward (``v0`` and the cross2d/unidi/bidi v2 family with a LayerNorm
    out-norm; no ``_oact``/other out-norms, no cascade2d) from a state_dict ``sd``."""
    g = lambda n: None if prefix + n not in sd else np.asarray(sd[prefix + n], dtype)  # noqa
    x = np.asarray(x, dtype)
    if not channel_first:
        x = x.transpose(0, 3, 1, 2)  # work channel-first
    Bsz, _, H, W = x.shape
    base = forward_type.replace("_noz", "").replace("_nozact", "")
    has_z = "_noz" not in forward_type
    scans = {"v051d": 1, "v052d": 2}.get(base, 0)
    w_in = g("in_proj.weight")
    w_in = w_in.reshape(w_in.shape[0], -1)
    xz = np.einsum("oi,bihw->bohw", w_in, x)
    if g("in_proj.bias") is not None:
        xz = xz + g("in_proj.bias")[None, :, None, None]
    d_inner = g("Ds").shape[0] // 4
    xi, z = xz[:, :d_inner], (xz[:, d_inner:] if has_z else None)
    if z is not None and not forward_type.endswith("_nozact"):
        z = silu(z)
    cw = g("conv2d.weight")
    if cw is not None:
        k = cw.shape[-1]
        pad = (k - 1) // 2
        xp = np.pad(xi, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        conv = np.zeros_like(xi)
        for i in range(k):
            for j in range(k):
                conv += cw[None, :, 0, i, j, None, None] * xp[:, :, i:i + H, j:j + W]
        if g("conv2d.bias") is not None:
            conv = conv + g("conv2d.bias")[None, :, None, None]
        xi = silu(conv)
    y = ss2d_scan_ref(
        xi, g("x_proj_weight"), g("dt_projs_weight"), g("dt_projs_bias"), g("A_logs"), g("Ds"),
        scans, dtype,
    ).reshape(Bsz, d_inner, H, W)
    y = _layer_norm(y, g("out_norm.weight"), g("out_norm.bias"), axis=1)
    if z is not None:
        y = y * z
    w_out = g("out_proj.weight")
    out = np.einsum("oi,bihw->bohw", w_out.reshape(w_out.shape[0], -1), y)
    if g("out_proj.bias") is not None:
        out = out + g("out_proj.bias")[None, :, None, None]
    return out if channel_first else out.transpose(0, 2, 3, 1)
