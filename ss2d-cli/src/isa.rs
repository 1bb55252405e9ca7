//! Refuses to run a build whose SIMD level exceeds what the CPU offers (an error, not SIGILL).

use ss2d_core::SimdLevel;

use crate::Error;

/// The highest [`SimdLevel`] the running CPU supports.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx2;
        }
        SimdLevel::Baseline
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // Non-x86 builds report `Baseline` (their vector ISA is the target's baseline).
        SimdLevel::compiled()
    }
}

/// `Ok` when the CPU supports the level this binary was compiled for.
pub fn check() -> Result<(), Error> {
    let (compiled, detected) = (SimdLevel::compiled(), detected());
    if compiled > detected {
        Err(Error::Isa {
            compiled: compiled.name(),
            detected: detected.name(),
        })
    } else {
        Ok(())
    }
}
