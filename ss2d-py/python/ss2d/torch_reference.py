"""A small PyTorch SS2D module (the torch eager baseline of ``python -m ss2d.bench`` and of the
swap test) written from the semantics (VMamba ``SS2D``, v2 family with a
LayerNorm out-norm, and ``v0``), in VMamba's style: ``forward`` calls the module-level
``cross_scan_fn``, ``selective_scan_fn`` (VMamba's ``csms6s`` signature) and ``cross_merge_fn``,
here plain-torch references (mamba's ``selective_scan_ref`` loop). ``ss2d.torch.patch_vmamba``
on this module swaps those three names for the ss2d kernels, as on VMamba's own ``vmamba.py``.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def selective_scan_fn(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                      oflex=True, backend=None):
    """mamba's ``selective_scan_ref`` for grouped ``B``/``C`` ``(B, G, N, L)``."""
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    batch, dim, L = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    G = B.shape[1]
    B = B.repeat_interleave(dim // G, dim=1)  # (batch, dim, N, L): channel d -> group d // (dim/G)
    C = C.repeat_interleave(dim // G, dim=1)
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    h = u.new_zeros((batch, dim, A.shape[1]))
    ys = []
    for i in range(L):
        h = dA[:, :, i] * h + dBu[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", h, C[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    return y if D is None else y + u * D[None, :, None]


def cross_scan_fn(x, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
                  force_torch=False):
    """cross2d, channel-first in and out: ``(B, C, H, W)`` -> ``(B, 4, C, L)``."""
    assert in_channel_first and out_channel_first and not one_by_one and scans == 0
    B, C, H, W = x.shape
    x_hw = torch.stack([x.flatten(2), x.transpose(2, 3).flatten(2)], dim=1)
    return torch.cat([x_hw, x_hw.flip(-1)], dim=1)


def cross_merge_fn(ys, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
                   force_torch=False):
    """``(B, 4, C, H, W)`` -> ``(B, C, L)`` in upstream's order of additions."""
    B, K, C, H, W = ys.shape
    ys = ys.reshape(B, K, C, -1)
    ys = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    return ys[:, 0] + ys[:, 1].reshape(B, C, W, H).transpose(2, 3).reshape(B, C, -1)


class SS2D(nn.Module):
    def __init__(self, d_model, d_state=16, ssm_ratio=2.0, dt_rank="auto", d_conv=3,
                 conv_bias=True, forward_type="v05_noz", channel_first=True):
        super().__init__()
        self.d_inner = d_inner = int(ssm_ratio * d_model)
        self.dt_rank = R = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.d_state = N = d_state
        self.has_z = not forward_type.endswith("_noz")
        self.channel_first = channel_first
        self.in_proj = nn.Linear(d_model, d_inner * (2 if self.has_z else 1), bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=conv_bias) if d_conv > 1 else None
        self.x_proj_weight = nn.Parameter(torch.randn(4, R + 2 * N, d_inner) * d_inner ** -0.5)
        self.dt_projs_weight = nn.Parameter(torch.randn(4, d_inner, R) * R ** -0.5)
        self.dt_projs_bias = nn.Parameter(torch.rand(4, d_inner) * -4.0)
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, N + 1).float()).repeat(4 * d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(4 * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):
        if self.channel_first:
            x = x.permute(0, 2, 3, 1)
        x = self.in_proj(x)  # (B, H, W, d_proj)
        z = None
        if self.has_z:
            x, z = x.chunk(2, dim=-1)
            z = F.silu(z)
        x = x.permute(0, 3, 1, 2).contiguous()
        if self.conv2d is not None:
            x = self.conv2d(x)
        x = F.silu(x)
        B, D, H, W = x.shape
        L, N, R = H * W, self.d_state, self.dt_rank
        xs = cross_scan_fn(x, in_channel_first=True, out_channel_first=True, scans=0)
        x_dbl = torch.einsum("kcd,bkdl->bkcl", self.x_proj_weight, xs)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.einsum("kdr,bkrl->bkdl", self.dt_projs_weight, dts)
        ys = selective_scan_fn(
            xs.reshape(B, -1, L), dts.reshape(B, -1, L), -torch.exp(self.A_logs.float()),
            Bs.contiguous(), Cs.contiguous(), self.Ds.float(),
            self.dt_projs_bias.float().reshape(-1), True, True,
        ).reshape(B, 4, D, H, W)
        y = cross_merge_fn(ys, in_channel_first=True, out_channel_first=True, scans=0)
        y = self.out_norm(y.transpose(1, 2)).reshape(B, H, W, D)  # LayerNorm over channels
        if z is not None:
            y = y * z
        out = self.out_proj(y)
        return out.permute(0, 3, 1, 2) if self.channel_first else out
