"""Shared helpers of the ss2d Python tests.

Golden data: ``SS2D_GOLDEN_DIR`` (default ``<repo>/testdata/golden``). Finding no golden case
is a failure, never a pass. The ``ss2d`` CLI for the bitwise comparisons: ``SS2D_BIN``
(default ``<repo>/target/release/ss2d``).
"""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import ss2d

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(os.environ.get("SS2D_GOLDEN_DIR", REPO / "testdata" / "golden"))
SS2D_BIN = Path(os.environ.get("SS2D_BIN", REPO / "target" / "release" / "ss2d"))


def golden_files(group):
    """The golden files of one group (``selective_scan``, ``cross_scan``, ``ss2d``), sorted.
    Collected at import: an empty list makes the parametrized tests of that group fail."""
    return sorted((GOLDEN / group).glob("*.safetensors"))


def ids(files):
    return [f.stem for f in files]


def require(files, group):
    """Fails (not skips) when a group has no golden case."""
    if not files:
        pytest.fail(f"no golden {group} cases under {GOLDEN} (set SS2D_GOLDEN_DIR)")


def load(path):
    """(metadata, tensors) of a safetensors file, through the package's reader."""
    return ss2d._ss2d.load_safetensors(str(path))


def rel_err(got, want):
    """max|got - want| / max|want|; NaN anywhere gives NaN (comparisons with it fail)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.max(np.abs(want)) if want.size else 1.0
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(scale, 1e-30))


def assert_close(got, want, tol, what=""):
    e = rel_err(got, want)
    assert e <= tol, f"{what}: max|diff|/max|ref| = {e:.3e} > {tol:.1e}"  # NaN fails here


def write_safetensors(path, tensors, metadata=None):
    """A minimal safetensors writer (F32, little-endian), so the tests need no extra package."""
    header = {}
    blobs = []
    off = 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(a)), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
