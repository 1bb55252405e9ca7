//! The build's SIMD floor against the running CPU, and the `SS2D_ISA` choice of level.
//!
//! The kernels choose their level at run time ([`SimdLevel::current`]), so a plain build runs
//! on every CPU of its architecture. A build with `RUSTFLAGS="-C target-cpu=..."` raises the
//! floor: code compiled for `x86-64-v3` or `x86-64-v4` may execute AVX2/FMA or AVX-512
//! instructions anywhere, and on a CPU without them that is a SIGILL, not an error.
//! [`check_cpu`] compares [`SimdLevel::compiled`] with the detected level (once per process),
//! and also every individual x86 target feature compiled into this crate (a
//! `target-cpu=native` build carries features such as `avx512vbmi` beyond its level), so a
//! host can refuse such a build with a message before running any kernel.
//!
//! [`level_from_env`] applies `SS2D_ISA` (the CLI and the C ABI call it once): unset, empty or
//! `auto` keeps the detected level; a level name ([`SimdLevel::from_name`]: `x86-64`,
//! `x86-64-v3`, `x86-64-v4`, `neon`, ...) pins it for the process, and a name this CPU or build
//! cannot run is an error, not a silent fallback.

use std::fmt;
use std::sync::OnceLock;

use ss2d_core::SimdLevel;

/// The build uses instructions the CPU does not offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuError {
    /// The level this build was compiled for.
    pub compiled: SimdLevel,
    /// The highest level the CPU supports.
    pub detected: SimdLevel,
    /// The first target feature compiled in that the CPU lacks (`None` when only the levels
    /// were compared).
    pub missing: Option<&'static str>,
}

impl CpuError {
    /// The comparison behind [`check_cpu`], for any pair of levels: `Err` when `compiled` is
    /// above `detected`.
    pub fn compare(compiled: SimdLevel, detected: SimdLevel) -> Result<(), CpuError> {
        if compiled > detected {
            Err(CpuError {
                compiled,
                detected,
                missing: None,
            })
        } else {
            Ok(())
        }
    }

    /// The highest [`SimdLevel`] the running CPU supports (detected once per process). Non-x86
    /// targets report the compiled level: their vector ISA is the target's baseline.
    pub fn detected() -> SimdLevel {
        static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
        *DETECTED.get_or_init(detect)
    }
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lacks = match self.missing {
            Some(m) => format!(" (it lacks `{m}`)"),
            None => String::new(),
        };
        write!(
            f,
            "this build of ss2d uses {} instructions but the CPU supports only {}{lacks}; \
             rebuild with a lower level (RUSTFLAGS=\"-C target-cpu={}\" or \"-C \
             target-cpu=native\" on this machine)",
            self.compiled.name(),
            self.detected.name(),
            self.detected.name()
        )
    }
}

impl std::error::Error for CpuError {}

/// What the CPU itself reports (CPUID through the one feature table of `ss2d_core::level`),
/// not limited by what this build assumes.
fn detect() -> SimdLevel {
    if cfg!(target_arch = "x86_64") {
        ss2d_core::level::x86::detect_raw()
    } else {
        SimdLevel::detect()
    }
}

/// The first x86 target feature of the level table this build was compiled with that the CPU
/// does not report (read with CPUID: `is_x86_feature_detected!` answers compiled-in features
/// at compile time).
#[cfg(target_arch = "x86_64")]
fn first_missing_feature() -> Option<&'static str> {
    ss2d_core::level::x86::first_missing_compiled()
}

#[cfg(not(target_arch = "x86_64"))]
fn first_missing_feature() -> Option<&'static str> {
    None
}

/// `Ok` when the CPU offers every instruction set this build was compiled for
/// ([`SimdLevel::compiled`]); otherwise a [`CpuError`] naming both levels. The CPU is queried
/// once per process; later calls are a load and a compare.
///
/// Call it once at startup, before any kernel runs. It only sees what `ss2d-core` was compiled
/// for: code compiled for a higher level *before* the call (for example in the caller's own
/// crate) can still fault first.
pub fn check_cpu() -> Result<(), CpuError> {
    static CHECK: OnceLock<Result<(), CpuError>> = OnceLock::new();
    *CHECK.get_or_init(|| {
        let (compiled, detected) = (SimdLevel::compiled(), CpuError::detected());
        CpuError::compare(compiled, detected)?;
        match first_missing_feature() {
            Some(f) => Err(CpuError {
                compiled,
                detected,
                missing: Some(f),
            }),
            None => Ok(()),
        }
    })
}

/// The environment variable that pins the SIMD level (see the module docs).
pub const ISA_VAR: &str = "SS2D_ISA";

/// Applies [`ISA_VAR`] once per process and returns the level kernels will use: the detected
/// one, or the one the variable names. `Err` (one line) when the variable names an unknown
/// level or one the CPU (or this build) lacks; the process level is then left as detected.
pub fn level_from_env() -> Result<SimdLevel, String> {
    static APPLIED: OnceLock<Result<SimdLevel, String>> = OnceLock::new();
    APPLIED
        .get_or_init(|| {
            let v = std::env::var(ISA_VAR).unwrap_or_default();
            let v = v.trim();
            if v.is_empty() || v == "auto" {
                return Ok(SimdLevel::current());
            }
            let level = level_by_name(v)?;
            SimdLevel::set_current(Some(level)).map_err(|_| unsupported(level))?;
            Ok(level)
        })
        .clone()
}

/// The level named `name` if this CPU can run it, else a one-line error listing the levels
/// that can run (for `SS2D_ISA`, `--isa` and the bindings).
pub fn level_by_name(name: &str) -> Result<SimdLevel, String> {
    let Some(level) = SimdLevel::from_name(name) else {
        return Err(format!(
            "unknown SIMD level `{name}` (levels of this build: {}; or `auto`)",
            names(SimdLevel::all().iter().copied())
        ));
    };
    if !level.is_available() {
        return Err(unsupported(level));
    }
    Ok(level)
}

fn unsupported(level: SimdLevel) -> String {
    format!(
        "SIMD level {level} is not supported by this CPU (available: {})",
        names(SimdLevel::available())
    )
}

fn names(it: impl Iterator<Item = SimdLevel>) -> String {
    it.map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_refuses_only_a_higher_build() {
        use SimdLevel::*;
        let levels = [Baseline, Avx2, Avx512];
        for (i, &c) in levels.iter().enumerate() {
            for (j, &d) in levels.iter().enumerate() {
                let r = CpuError::compare(c, d);
                assert_eq!(r.is_err(), i > j, "compiled {c:?} detected {d:?}");
            }
        }
        let e = CpuError::compare(Avx512, Baseline).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("x86-64-v4") && m.contains("x86-64") && !m.contains('\n'),
            "{m}"
        );
    }

    #[test]
    fn this_test_binary_runs_so_the_check_passes() {
        // The test itself runs code of the compiled level: the CPU must support it.
        assert_eq!(check_cpu(), Ok(()));
        assert!(CpuError::detected() >= SimdLevel::compiled());
    }
}
