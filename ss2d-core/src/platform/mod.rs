//! The platform layer: one module per level, each compiling the generic kernels
//! (`src/generic/`) over its own lane type.
//!
//! | file | level | lanes |
//! |---|---|---|
//! | `portable.rs` | [`SimdLevel::Baseline`](crate::SimdLevel::Baseline): `wide`'s lanes as the build compiles them (SSE2 on x86-64, scalar elsewhere) | 8 |
//! | `x86_64/avx2.rs` | [`SimdLevel::Avx2`](crate::SimdLevel::Avx2), chosen at run time | 8 |
//! | `x86_64/avx512.rs` | [`SimdLevel::Avx512`](crate::SimdLevel::Avx512), chosen at run time | 16 |
//! | `aarch64.rs` | [`SimdLevel::Neon`](crate::SimdLevel::Neon) | 8 |
//!
//! Each level module defines the lane type `V`, `LANES` and a small set of lane primitives
//! (broadcast, unaligned load/store, FMA, NaN-keeping clamps, rounding, `2^k` scaling,
//! reverse, register transpose, prefetch) and a `level_fn!` macro that puts its
//! `#[target_feature]` list on the generic kernels' non-inlined functions. The generic code is
//! the same source file for every level (`#[path]` modules), so every level runs the same
//! arithmetic in the same order; levels differ only in lane count, FMA, and the `exp2` range
//! reduction (see the crate docs for the measured differences).
//!
//! [`dispatch!`] calls a function of the generic code at a level held by a plan. Plans only hold
//! levels that [`SimdLevel::is_available`](crate::SimdLevel::is_available) confirmed, which is
//! what makes calling the `#[target_feature]` functions sound.

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// Calls `g::$module::$function($args)` of the level module for `$level` (a level the CPU has:
/// plans and the public entry points check it before).
macro_rules! dispatch {
    ($level:expr, $m:ident :: $f:ident ( $($arg:expr),* $(,)? )) => {{
        let level: $crate::SimdLevel = $level;
        debug_assert!(level.is_available());
        match level {
            #[cfg(target_arch = "x86_64")]
            $crate::SimdLevel::Avx512 => {
                // SAFETY: the level is available on this CPU (checked when the plan or the
                // call chose it), so the `#[target_feature]` code may run.
                unsafe { $crate::platform::x86_64::avx512::g::$m::$f($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            $crate::SimdLevel::Avx2 => {
                // SAFETY: as above.
                unsafe { $crate::platform::x86_64::avx2::g::$m::$f($($arg),*) }
            }
            #[cfg(target_arch = "aarch64")]
            _ => $crate::platform::aarch64::g::$m::$f($($arg),*),
            #[cfg(not(target_arch = "aarch64"))]
            _ => $crate::platform::portable::g::$m::$f($($arg),*),
        }
    }};
}
pub(crate) use dispatch;
