"""mamba's option grid against the float64 NumPy reference (``ss2d.reference``).

Every B/C form (constant ``(D, N)``, ``(B, N, L)``, ``(B, G, N, L)`` with G = 2 and 4, and
constant/variable mixes) crossed with an 8-run two-level orthogonal array over the six options
(D, z, delta_bias, delta_softplus, return_last_state, initial_state): every option is on and off
within every form, each pair of options meets in all four combinations. Lengths 128..4096.
48 cases.
"""

import numpy as np
import pytest

import ss2d
from ss2d.reference import selective_scan_ref
from conftest import assert_close

# L8 orthogonal array (columns 1, 2, 4, 3, 5, 6 of the standard L8(2^7)).
L8 = [
    (0, 0, 0, 0, 0, 0),
    (0, 0, 1, 1, 1, 1),
    (0, 1, 0, 1, 1, 0),
    (0, 1, 1, 0, 0, 1),
    (1, 0, 0, 1, 0, 1),
    (1, 0, 1, 0, 1, 0),
    (1, 1, 0, 0, 1, 1),
    (1, 1, 1, 1, 0, 0),
]
FORMS = ["const", "bnl", "g2", "g4", "bconst_cvar", "bvar_cconst"]
LENGTHS = [128, 300, 1024, 4096]
CASES = [(f, i) for f in FORMS for i in range(len(L8))]


def bc(rng, form, which, batch, dim, n, l):
    kind = {
        "const": "c", "bnl": "v1", "g2": "v2", "g4": "v4",
        "bconst_cvar": "c" if which == "B" else "v2",
        "bvar_cconst": "v1" if which == "B" else "c",
    }[form]
    if kind == "c":
        return rng.standard_normal((dim, n)).astype(np.float32)
    if kind == "v1":
        return rng.standard_normal((batch, n, l)).astype(np.float32)
    return rng.standard_normal((batch, int(kind[1]), n, l)).astype(np.float32)


@pytest.mark.parametrize("form,run", CASES, ids=[f"{f}-{r}" for f, r in CASES])
def test_option_grid(form, run):
    has_d, has_z, has_bias, softplus, last, init = L8[run]
    rng = np.random.default_rng(1000 + 10 * FORMS.index(form) + run)
    l = LENGTHS[(run + FORMS.index(form)) % len(LENGTHS)]
    batch, dim, n = 2, [8, 12, 24][run % 3], [1, 4, 16][(run + 1) % 3]
    u = rng.standard_normal((batch, dim, l)).astype(np.float32)
    if softplus:
        delta = (0.5 * rng.standard_normal((batch, dim, l)) - 1.0).astype(np.float32)
    else:
        delta = rng.uniform(0.0, 0.2, (batch, dim, l)).astype(np.float32)
    A = -rng.uniform(0.5, 4.0, (dim, n)).astype(np.float32)
    B = bc(rng, form, "B", batch, dim, n, l)
    C = bc(rng, form, "C", batch, dim, n, l)
    D = rng.standard_normal(dim).astype(np.float32) if has_d else None
    z = rng.standard_normal((batch, dim, l)).astype(np.float32) if has_z else None
    bias = rng.uniform(0.0, 0.2, dim).astype(np.float32) if has_bias else None
    h0 = rng.standard_normal((batch, dim, n)).astype(np.float32) if init else None
    kw = dict(D=D, z=z, delta_bias=bias, delta_softplus=bool(softplus),
              return_last_state=bool(last), initial_state=h0)
    got = ss2d.selective_scan_fn(u, delta, A, B, C, **kw)
    want = selective_scan_ref(u, delta, A, B, C, **kw)
    if last:
        assert_close(got[0], want[0], 1e-5, "out")
        assert_close(got[1], want[1], 1e-5, "last_state")
        assert got[1].shape == (batch, dim, n)
    else:
        assert isinstance(got, np.ndarray)
        assert_close(got, want, 1e-5, "out")
    # Thread counts do not change a bit.
    again = ss2d.selective_scan_fn(u, delta, A, B, C, threads=1, **kw)
    assert np.array_equal(got[0] if last else got, again[0] if last else again)
