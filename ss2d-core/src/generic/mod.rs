//! The kernels, written once over a level's lanes. This file and its children are compiled
//! once per level, as the module `g` of each level module in `platform/` (`#[path]`), so `V`,
//! `LANES` and the lane primitives below are that level's, and `level_fn!` (defined by the level
//! module) puts the level's `#[target_feature]` list on the functions that are not inlined.
//!
//! Entry points (called through `platform::dispatch!`): `scan::run_units`,
//! `fused::run_units`, `transpose::transpose_cols`, `math::map_slice`, `conv::depthwise_row`,
//! `peak::fma_chains`, `gemm::matmul`.

#[allow(unused_imports)]
pub(crate) use super::{
    abs, fma, from_arr, load_at, max_keep, min_keep, prefetch, reduce, reverse, round_nearest,
    scale, scale_nonpos, splat, sqrt, store_at, store_cols8, to_arr, transpose, FUSED_FMA,
    HAS_REDUCE, K_MIN, LANES, LEVEL, V,
};

pub(crate) mod fused;
pub(crate) mod fused1;
pub(crate) mod gemm;
pub(crate) mod kernel;
pub(crate) mod math;
pub(crate) mod pack;
pub(crate) mod peak;
pub(crate) mod scan;
pub(crate) mod slices;
pub(crate) mod vecs;
