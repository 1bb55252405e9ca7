//! The x86-64 levels chosen at run time: lane types over `core::arch` registers (their
//! instructions do not depend on the build's compile-time target features, unlike `wide`'s),
//! and the level modules that compile the generic kernels inside `#[target_feature]`.
//!
//! Soundness: a lane value of these types only exists inside code reached through a level's
//! entry points, which the dispatcher (`platform::dispatch!`) calls only for a level that
//! [`crate::SimdLevel::is_available`] confirmed (plans hold only such levels). So the
//! intrinsics inside the lane operations never run on a CPU without their features.

/// Defines `Add`, `Sub`, `Mul`, `Div`, `Neg` and the assigning forms for a lane wrapper from
/// its intrinsics.
macro_rules! lane_ops {
    ($t:ident, $add:ident, $sub:ident, $mul:ident, $div:ident, $xor:ident, $set1:ident) => {
        impl core::ops::Add for $t {
            type Output = $t;
            #[inline(always)]
            fn add(self, o: $t) -> $t {
                // SAFETY: lane values exist only at their level (module docs).
                $t(unsafe { $add(self.0, o.0) })
            }
        }
        impl core::ops::Sub for $t {
            type Output = $t;
            #[inline(always)]
            fn sub(self, o: $t) -> $t {
                // SAFETY: lane values exist only at their level (module docs).
                $t(unsafe { $sub(self.0, o.0) })
            }
        }
        impl core::ops::Mul for $t {
            type Output = $t;
            #[inline(always)]
            fn mul(self, o: $t) -> $t {
                // SAFETY: lane values exist only at their level (module docs).
                $t(unsafe { $mul(self.0, o.0) })
            }
        }
        impl core::ops::Div for $t {
            type Output = $t;
            #[inline(always)]
            fn div(self, o: $t) -> $t {
                // SAFETY: lane values exist only at their level (module docs).
                $t(unsafe { $div(self.0, o.0) })
            }
        }
        impl core::ops::Neg for $t {
            type Output = $t;
            #[inline(always)]
            fn neg(self) -> $t {
                // SAFETY: lane values exist only at their level (module docs). Flips the sign
                // bit (like `-x`: `-0.0` for `0.0`, NaN payloads kept).
                $t(unsafe { $xor(self.0, $set1(-0.0)) })
            }
        }
        impl core::ops::AddAssign for $t {
            #[inline(always)]
            fn add_assign(&mut self, o: $t) {
                *self = *self + o;
            }
        }
        impl core::ops::SubAssign for $t {
            #[inline(always)]
            fn sub_assign(&mut self, o: $t) {
                *self = *self - o;
            }
        }
        impl core::ops::MulAssign for $t {
            #[inline(always)]
            fn mul_assign(&mut self, o: $t) {
                *self = *self * o;
            }
        }
        // SAFETY: a transparent wrapper of a vector register type: plain bits, no padding, any
        // bit pattern valid.
        unsafe impl bytemuck::Zeroable for $t {}
        // SAFETY: as above.
        unsafe impl bytemuck::Pod for $t {}
    };
}

pub(crate) mod avx2;
pub(crate) mod avx512;

#[cfg(test)]
mod tests {
    extern crate std;
    use crate::SimdLevel;
    use std::vec::Vec;

    /// The `#[target_feature]` strings of the level modules are the table's feature sets.
    #[test]
    fn target_feature_strings_match_the_table() {
        for (level, s) in [
            (SimdLevel::Avx2, super::avx2::TARGET_FEATURES),
            (SimdLevel::Avx512, super::avx512::TARGET_FEATURES),
        ] {
            let mut got: Vec<&str> = s.split(',').collect();
            let mut want: Vec<&str> = level.features().collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{level}");
        }
    }
}
