//! The SS2D layer: VMamba's `SS2D` module (`docs/semantics.md` sections 2, 3 and 5) with its weights,
//! forward on a `(B, C, H, W)` or `(B, H, W, C)` grid.
//!
//! ```text
//! xz   = in_proj(x)                          GEMM, (+ bias when `in_proj.bias` is present)
//! x, z = split(xz)                           z = SiLU(z) unless `_nozact`; no z for `_noz`
//! x    = SiLU(dwconv_k(x) (+ conv bias))     depthwise k x k, zero padding (k-1)/2; k <= 1: no conv
//! y    = ss2d_scan(x)                        cross-scan, x_proj, dt_proj, selective scan, merge
//!                                            (cascade2d for v052dc)
//! y    = out_norm(y)                         LayerNorm over channels (eps 1e-5, affine)
//! y    = GELU(y) if `_oact`;  y = y * z if z
//! out  = out_proj(y)                         GEMM (+ bias when `out_proj.bias` is present)
//! ```
//!
//! [`Ss2dConfig`] holds the constructor arguments (validated by [`Ss2dConfig::resolve`] into
//! [`Ss2dDims`]), [`ForwardType`] parses VMamba's `forward_type` strings, and [`Ss2d`] owns the
//! weights under VMamba's state_dict names (loaded by name through a lookup,
//! [`Ss2d::from_tensors`], optionally under a key prefix such as `layers.0.blocks.1.op.`).
//!
//! ## Layouts
//! Channel-first data stays channel-first and channel-last stays channel-last end to end: the
//! scan runs in the module's layout, the depthwise conv and the LayerNorm have one loop nest per
//! layout with contiguous inner loops (positions for channel-first, channels for channel-last).
//!
//! ## GEMMs
//! `in_proj` and `out_proj` are products by a `(O, I)` weight over every position. They come
//! from the `gemm` crate (through `ss2d-gemm`, a bounds-checked safe wrapper), chosen by this
//! benchmark against `matrixmultiply` 0.3.11 at the layer shapes (L = 56 x 56 = 3136 positions,
//! one thread, median of 201 interleaved runs, microseconds per product, quiet 16-core Xeon
//! with AVX-512; `gemm` 0.19 with and without its `x86-v4` feature, which adds runtime-detected
//! AVX-512 kernels):
//!
//! | product (M x K x N) | matrixmultiply | gemm (AVX2) | gemm `x86-v4` |
//! |---|---|---|---|
//! | cf in_proj s1l8: (96 x 96) @ (96 x 3136) | 962-1181 | 876-1249 | 473 |
//! | cf in_proj s2l5: (192 x 96) @ (96 x 3136) | 1907-2383 | 2183-2561 | 972 |
//! | cf out_proj s2l5: (96 x 192) @ (192 x 3136) | 1889-2517 | 1591-2594 | 1010 |
//! | cl in_proj v0: (3136 x 96) @ (96 x 384) | 3463-4392 | 2973-4625 | 1627 |
//! | cl out_proj v0: (3136 x 192) @ (192 x 96) | 1851-2280 | 1420-1506 | 1159 |
//! | cl (3136 x 96) @ (96 x 192) | 1886-2111 | 1753-2193 | 1116 |
//!
//! (ranges: two runs.) On the 2-core development machine (AVX-512, heavily shared) the
//! `x86-v4` build measured 770 / 1490 / 1569 / 2938 / 1556 / 1433 us against matrixmultiply's
//! 1305 / 2734 / 2712 / 4918 / 2671 / 2468 us. Without AVX-512 the two crates are within noise
//! of each other; with it `gemm` is about twice as fast, so `gemm` (with `x86-v4`) it is.
//! Splitting the channel-first products by output rows instead of by positions costs 30-50%
//! with either crate (measured), so the products are split by positions only.
//!
//! ## Determinism
//! The products are cut into blocks of [`GEMM_BLOCK`] (channel-first) or [`GEMM_BLOCK_CL`]
//! (channel-last) positions, constants: the same `gemm` calls run whatever the thread count, and threads only decide who runs which block (`gemm`'s
//! own threading stays off). The conv and the LayerNorm give every output element one
//! fixed-order expression, and the scan is bitwise deterministic by contract. So the output is
//! bitwise identical for every [`Parallelism`].
//!
//! ## Backends
//! [`Backend::Fast`] is the production path (the fused scan, through one private switch
//! point, `scan_core`); [`Backend::Unfused`] runs the unfused scan instead;
//! [`Backend::Reference`] is a scalar path sharing as little as possible with the others:
//! naive triple-loop products, naive conv and norm, and `ss2d_core`'s scalar reference
//! selective scan between the cross-scan and the merge.

use std::fmt;
use std::time::{Duration, Instant};

use ss2d_core::Error as CoreError;

use crate::cross::ScanMode;
use crate::unfused::{Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

mod cascade;
mod config;
mod error;
mod forward;
pub mod init;
mod ops;
mod reference;
mod weights;

pub use config::{
    CoreType, DtRank, ForwardType, Grid, OutNorm, ScanKind, Ss2dConfig, Ss2dDims, ZBranch,
};
pub use error::LayerError;
pub use forward::{Backend, ForwardOptions, Intermediates, StageTimes, STAGES};
pub use ops::{GEMM_BLOCK, GEMM_BLOCK_CL};
pub use weights::{Ss2d, Ss2dWeights, TensorRef};

/// Directions of the cross-scan (`k_group`).
const K: usize = 4;

/// LayerNorm epsilon (PyTorch's default, used by every SS2D norm).
pub const LN_EPS: f32 = 1e-5;
