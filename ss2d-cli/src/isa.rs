//! Refuses to run a build whose SIMD level exceeds what the CPU offers (an error, not SIGILL).

use ss2d_core::SimdLevel;

use crate::Error;

/// The highest [`SimdLevel`] the running CPU supports (`ss2d-std`'s detection, once per
/// process).
pub fn detected() -> SimdLevel {
    ss2d_std::CpuError::detected()
}

/// Test hook: `SS2D_PRETEND_CPU=x86-64|x86-64-v3|x86-64-v4` makes [`check`] believe the CPU
/// offers at most that level. It can only lower the detected level, never raise it, so it
/// cannot make a build run on a CPU that lacks its instructions.
pub const PRETEND_VAR: &str = "SS2D_PRETEND_CPU";

/// The level named `x86-64`, `x86-64-v3` or `x86-64-v4` ([`SimdLevel::name`]).
pub fn parse_level(name: &str) -> Option<SimdLevel> {
    [SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .find(|l| l.name() == name.trim())
}

/// The level [`check`] compares against: `detected`, lowered to `pretend` (the value of
/// [`PRETEND_VAR`]) when one is given; an unknown `pretend` is a usage error.
pub fn effective_level(detected: SimdLevel, pretend: Option<&str>) -> Result<SimdLevel, Error> {
    match pretend {
        None => Ok(detected),
        Some(p) => parse_level(p).map(|l| l.min(detected)).ok_or_else(|| {
            Error::Usage(format!(
                "{PRETEND_VAR}={p:?}: expected x86-64, x86-64-v3 or x86-64-v4"
            ))
        }),
    }
}

/// `Ok` when the CPU supports the level this binary was compiled for.
pub fn check() -> Result<(), Error> {
    let pretend = std::env::var(PRETEND_VAR).ok();
    let (compiled, detected) = (
        SimdLevel::compiled(),
        effective_level(detected(), pretend.as_deref())?,
    );
    if compiled > detected {
        Err(Error::Isa {
            compiled: compiled.name(),
            detected: detected.name(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretend_only_lowers_the_level() {
        use SimdLevel::*;
        assert_eq!(effective_level(Avx512, None).unwrap(), Avx512);
        assert_eq!(effective_level(Avx512, Some("x86-64")).unwrap(), Baseline);
        assert_eq!(effective_level(Avx512, Some("x86-64-v3")).unwrap(), Avx2);
        assert_eq!(effective_level(Avx2, Some("x86-64-v4")).unwrap(), Avx2);
        assert_eq!(
            effective_level(Baseline, Some(" x86-64-v3 ")).unwrap(),
            Baseline
        );
        let e = effective_level(Avx2, Some("skylake"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(PRETEND_VAR) && e.contains("skylake") && !e.contains('\n'),
            "{e}"
        );
        for l in [Baseline, Avx2, Avx512] {
            assert_eq!(parse_level(l.name()), Some(l));
        }
    }
}
