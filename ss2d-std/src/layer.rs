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
//! `in_proj` and `out_proj` are products by a `(O, I)` weight over every position. They run on
//! `ss2d_core::gemm` (a register-blocked kernel per SIMD level): channel-first blocks as
//! `W (O, I) @ x (I, positions)` (broadcasts of `W`, vectors of positions), channel-last blocks
//! as `x (positions, I) @ W^T (I, O)` from the weights transposed once when the module is built.
//! It replaced the `gemm` crate (1.1-1.3x faster per product at the layer shapes, one thread,
//! interleaved runs on the 2-core development machine), here and then in the fused scan's
//! `x_proj` (s1l8's 3136 x 96 x 32: 0.148 -> 0.133 ms channel-last, 0.197 -> 0.167 ms
//! channel-first), so the workspace has no other GEMM code.
//!
//! ## Determinism
//! The products are cut into blocks of [`GEMM_BLOCK`] (channel-first) or [`GEMM_BLOCK_CL`]
//! (channel-last) positions, constants, and every output element of a product is one fixed
//! chain of FMAs (`k` ascending); threads only decide who runs which block. The conv and the LayerNorm give every output element one
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
