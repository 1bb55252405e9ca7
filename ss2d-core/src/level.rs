//! The SIMD level this build was compiled for (`wide` selects instructions at compile time).

/// Instruction-set level compiled into this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// No x86 vector extension beyond the target's baseline (SSE2 on x86-64), or a non-x86 target.
    Baseline,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/CD/DQ/VL (x86-64-v4).
    Avx512,
}

impl SimdLevel {
    /// The level this crate was compiled for.
    pub const fn compiled() -> SimdLevel {
        if cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512dq",
            target_feature = "avx512vl"
        )) {
            SimdLevel::Avx512
        } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
            SimdLevel::Avx2
        } else {
            SimdLevel::Baseline
        }
    }

    /// Conventional name: `x86-64`, `x86-64-v3` or `x86-64-v4`.
    pub const fn name(self) -> &'static str {
        match self {
            SimdLevel::Baseline => "x86-64",
            SimdLevel::Avx2 => "x86-64-v3",
            SimdLevel::Avx512 => "x86-64-v4",
        }
    }

    /// `f32` lanes per panel at this level.
    pub const fn lanes() -> usize {
        crate::simd::LANES
    }
}
