//! The aarch64 NEON level. NEON is part of the aarch64 baseline, so no run-time check is
//! needed: `wide`'s `f32x8` compiles to pairs of NEON `q` registers there, with fused
//! multiply-add (`vfmaq_f32`) for `mul_add`, so the lane operations are the portable ones. What
//! the kernels must not assume is x86 semantics: the NaN-keeping clamps (`max_keep`,
//! `min_keep`) are written with comparisons and selects, not with the target's `max`/`min`
//! (x86 returns the second operand for NaN, NEON's `fmax` returns NaN, IEEE `maxNum` returns
//! the number); the math tests check NaN propagation at every level.

pub(crate) use super::portable::{
    abs, fma, from_arr, load_at, max_keep, min_keep, prefetch, reduce, reverse, round_nearest,
    scale, scale_nonpos, splat, sqrt, store_at, store_cols8, to_arr, transpose, FUSED_FMA,
    HAS_REDUCE, K_MIN, LANES, V,
};
use crate::SimdLevel;

/// This module's level.
pub(crate) const LEVEL: SimdLevel = SimdLevel::Neon;

/// NEON is in the target's baseline: the items are left as they are.
macro_rules! level_fn {
    ($($i:item)*) => { $($i)* };
}

#[allow(clippy::duplicate_mod)]
#[path = "../generic/mod.rs"]
pub(crate) mod g;
