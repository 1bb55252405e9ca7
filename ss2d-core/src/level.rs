//! SIMD levels: the one table of levels and CPU features for the whole workspace, run-time
//! detection, and the process-wide choice of level.
//!
//! Every level listed by [`SimdLevel::all`] is compiled into every build of the target
//! architecture; the kernels pick one at run time. [`SimdLevel::detect`] returns the best level
//! the running CPU supports (detected once and cached; without run-time checks when the build
//! already enables the level, e.g. `-C target-cpu=x86-64-v4`). A process may pin a lower level
//! with [`SimdLevel::set_current`] (the CLI and the C ABI read `SS2D_ISA` for this), and every
//! plan can be pinned on its own (`with_level` on the plans).
//!
//! | level | name | lanes | target features (x86-64 psABI level) |
//! |---|---|---|---|
//! | [`SimdLevel::Baseline`] | `x86-64` (`portable` off x86) | 8 | none beyond the target's baseline (SSE2 on x86-64) |
//! | [`SimdLevel::Avx2`] | `x86-64-v3` | 8 | x86-64-v2 + AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, XSAVE |
//! | [`SimdLevel::Avx512`] | `x86-64-v4` | 16 | x86-64-v3 + AVX-512 F, BW, CD, DQ, VL |
//! | [`SimdLevel::Neon`] | `neon` | 8 | aarch64 NEON (part of the aarch64 baseline) |
//!
//! Detection on x86-64 reads CPUID and, for the AVX levels, XCR0 through XGETBV (the OS must
//! save the YMM / ZMM state), the way the standard library's `is_x86_feature_detected!` does;
//! with the `std` feature it uses that macro instead. Both read the same [`x86::FEATURES`] table.

use core::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the kernels.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// The target's baseline through `wide`'s portable lanes: SSE2 on x86-64, scalar code on
    /// targets without vector lanes (e.g. Cortex-M). 8 lanes.
    Baseline,
    /// x86-64-v3: AVX2 + FMA (and the rest of the v3 feature set). 8 lanes.
    Avx2,
    /// x86-64-v4: AVX-512 F/BW/CD/DQ/VL on top of v3. 16 lanes.
    Avx512,
    /// aarch64 NEON (Advanced SIMD), with fused multiply-add. 8 lanes (two q registers).
    Neon,
}

/// The most `f32` lanes of any level: scratch sizes are computed for it, so a scratch sized by
/// `scratch_len` serves every level.
pub const MAX_LANES: usize = 16;

/// Levels compiled into this build, lowest first.
#[cfg(target_arch = "x86_64")]
const ALL: &[SimdLevel] = &[SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512];
#[cfg(target_arch = "aarch64")]
const ALL: &[SimdLevel] = &[SimdLevel::Neon];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALL: &[SimdLevel] = &[SimdLevel::Baseline];

impl SimdLevel {
    /// Every level compiled into this build (for this target architecture), lowest first.
    /// Not all of them need be supported by the running CPU: see [`SimdLevel::available`].
    pub const fn all() -> &'static [SimdLevel] {
        ALL
    }

    /// Conventional name: `x86-64`, `x86-64-v3`, `x86-64-v4`, `neon`, or `portable` for the
    /// baseline of a non-x86 target.
    pub const fn name(self) -> &'static str {
        match self {
            SimdLevel::Baseline => {
                if cfg!(target_arch = "x86_64") {
                    "x86-64"
                } else {
                    "portable"
                }
            }
            SimdLevel::Avx2 => "x86-64-v3",
            SimdLevel::Avx512 => "x86-64-v4",
            SimdLevel::Neon => "neon",
        }
    }

    /// The level of a name (as [`SimdLevel::name`] gives it; also `avx2`, `avx512`,
    /// `baseline`, `portable`), if this build has it.
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        let l = match name {
            "x86-64" | "baseline" | "portable" | "sse2" => {
                if cfg!(target_arch = "aarch64") {
                    return None;
                }
                SimdLevel::Baseline
            }
            "x86-64-v3" | "avx2" => SimdLevel::Avx2,
            "x86-64-v4" | "avx512" => SimdLevel::Avx512,
            "neon" => SimdLevel::Neon,
            _ => return None,
        };
        ALL.contains(&l).then_some(l)
    }

    /// `f32` lanes per panel at this level.
    pub const fn lanes(self) -> usize {
        match self {
            SimdLevel::Avx512 => 16,
            _ => 8,
        }
    }

    /// The level this build's target features guarantee without any run-time check (the
    /// floor: code compiled for it runs only on CPUs that have it).
    pub const fn compiled() -> SimdLevel {
        if cfg!(target_arch = "aarch64") {
            SimdLevel::Neon
        } else if x86::compiled_has(SimdLevel::Avx512) {
            SimdLevel::Avx512
        } else if x86::compiled_has(SimdLevel::Avx2) {
            SimdLevel::Avx2
        } else {
            SimdLevel::Baseline
        }
    }

    /// True when this build has the level and the running CPU supports it.
    pub fn is_available(self) -> bool {
        if !ALL.contains(&self) {
            return false;
        }
        match self {
            SimdLevel::Baseline | SimdLevel::Neon => true,
            SimdLevel::Avx2 | SimdLevel::Avx512 => {
                x86::compiled_has(self) || detect_cached() >= self
            }
        }
    }

    /// The levels the running CPU supports, lowest first (a subset of [`SimdLevel::all`]).
    pub fn available() -> impl Iterator<Item = SimdLevel> {
        ALL.iter().copied().filter(|l| l.is_available())
    }

    /// The best level the running CPU supports (detected once per process).
    pub fn detect() -> SimdLevel {
        let c = SimdLevel::compiled();
        if c == SimdLevel::Avx512 || c == SimdLevel::Neon || !cfg!(target_arch = "x86_64") {
            return c;
        }
        detect_cached().max(c)
    }

    /// The level new plans use: the one set by [`SimdLevel::set_current`], else
    /// [`SimdLevel::detect`].
    pub fn current() -> SimdLevel {
        match CURRENT.load(Ordering::Relaxed) {
            0 => SimdLevel::detect(),
            v => from_code(v),
        }
    }

    /// Makes `level` the one new plans use in this process (e.g. to pin a lower level for a
    /// test or a benchmark); `None` goes back to [`SimdLevel::detect`]. Plans made before keep
    /// their level. Fails with [`crate::Error::Unsupported`] when the CPU (or this build) lacks
    /// the level.
    pub fn set_current(level: Option<SimdLevel>) -> Result<(), crate::Error> {
        let code = match level {
            None => 0,
            Some(l) => {
                l.check()?;
                code(l)
            }
        };
        CURRENT.store(code, Ordering::Relaxed);
        Ok(())
    }

    /// `Ok(())` when the level is available, else [`crate::Error::Unsupported`] naming it.
    pub fn check(self) -> Result<(), crate::Error> {
        if self.is_available() {
            Ok(())
        } else {
            Err(crate::Error::Unsupported {
                what: "SIMD level not supported by this CPU or build",
            })
        }
    }

    /// The target features of the level (names as in `#[target_feature]` and
    /// `is_x86_feature_detected!`), from the one table ([`x86::FEATURES`]); empty for the
    /// baseline and NEON (always present on their targets).
    pub fn features(self) -> impl Iterator<Item = &'static str> {
        x86::FEATURES
            .iter()
            .filter(move |f| f.level <= self && f.level > SimdLevel::Baseline && self != Self::Neon)
            .map(|f| f.name)
    }
}

impl core::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// 0: not set (detect); otherwise `code(level)`.
static CURRENT: AtomicU8 = AtomicU8::new(0);
/// 0: not detected yet; otherwise `code(level)`.
static DETECTED: AtomicU8 = AtomicU8::new(0);

const fn code(l: SimdLevel) -> u8 {
    match l {
        SimdLevel::Baseline => 1,
        SimdLevel::Avx2 => 2,
        SimdLevel::Avx512 => 3,
        SimdLevel::Neon => 4,
    }
}

const fn from_code(c: u8) -> SimdLevel {
    match c {
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        4 => SimdLevel::Neon,
        _ => SimdLevel::Baseline,
    }
}

/// The detected x86 level, cached (a benign race: every thread computes the same value).
fn detect_cached() -> SimdLevel {
    match DETECTED.load(Ordering::Relaxed) {
        0 => {
            let l = x86::detect();
            DETECTED.store(code(l), Ordering::Relaxed);
            l
        }
        v => from_code(v),
    }
}

/// The x86-64 feature table and detection.
pub mod x86 {
    use super::SimdLevel;

    /// Where CPUID reports a feature.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Reg {
        /// Leaf 1, ECX.
        Leaf1Ecx,
        /// Leaf 7 subleaf 0, EBX.
        Leaf7Ebx,
        /// Leaf 0x8000_0001, ECX.
        Ext1Ecx,
    }

    /// One CPU feature of a level.
    #[derive(Clone, Copy, Debug)]
    pub struct Feature {
        /// Name as in `#[target_feature(enable = ...)]` and `is_x86_feature_detected!`.
        pub name: &'static str,
        /// The lowest level that requires it.
        pub level: SimdLevel,
        /// CPUID register holding its bit.
        pub reg: Reg,
        /// Bit number.
        pub bit: u32,
        /// Whether this build enables it at compile time (`cfg!(target_feature)`).
        pub compiled: bool,
    }

    macro_rules! f {
        ($name:literal, $level:ident, $reg:ident, $bit:literal) => {
            Feature {
                name: $name,
                level: SimdLevel::$level,
                reg: Reg::$reg,
                bit: $bit,
                compiled: cfg!(target_feature = $name),
            }
        };
    }

    /// The features of x86-64-v3 and x86-64-v4 (v3 includes v2), with their CPUID bits. The
    /// `#[target_feature]` lists of the x86 kernels, the detection, the C ABI's and the CLI's
    /// checks all come from this table (the kernels' attribute strings are checked against it
    /// by a test).
    pub const FEATURES: &[Feature] = &[
        // x86-64-v2
        f!("sse3", Avx2, Leaf1Ecx, 0),
        f!("ssse3", Avx2, Leaf1Ecx, 9),
        f!("cmpxchg16b", Avx2, Leaf1Ecx, 13),
        f!("sse4.1", Avx2, Leaf1Ecx, 19),
        f!("sse4.2", Avx2, Leaf1Ecx, 20),
        f!("popcnt", Avx2, Leaf1Ecx, 23),
        // x86-64-v3
        f!("fma", Avx2, Leaf1Ecx, 12),
        f!("movbe", Avx2, Leaf1Ecx, 22),
        f!("xsave", Avx2, Leaf1Ecx, 26),
        f!("avx", Avx2, Leaf1Ecx, 28),
        f!("f16c", Avx2, Leaf1Ecx, 29),
        f!("bmi1", Avx2, Leaf7Ebx, 3),
        f!("avx2", Avx2, Leaf7Ebx, 5),
        f!("bmi2", Avx2, Leaf7Ebx, 8),
        f!("lzcnt", Avx2, Ext1Ecx, 5),
        // x86-64-v4
        f!("avx512f", Avx512, Leaf7Ebx, 16),
        f!("avx512dq", Avx512, Leaf7Ebx, 17),
        f!("avx512cd", Avx512, Leaf7Ebx, 28),
        f!("avx512bw", Avx512, Leaf7Ebx, 30),
        f!("avx512vl", Avx512, Leaf7Ebx, 31),
    ];

    /// XCR0 state components the OS must enable for a level: SSE + AVX (bits 1, 2) for v3, and
    /// the AVX-512 opmask and upper ZMM state (bits 5, 6, 7) for v4.
    pub const fn xcr0_mask(level: SimdLevel) -> u64 {
        match level {
            SimdLevel::Avx2 => 0x06,
            SimdLevel::Avx512 => 0xe6,
            _ => 0,
        }
    }

    /// `m` with the CPUID bit of `f` set.
    const fn with_bit(m: (u32, u32, u32), f: Feature) -> (u32, u32, u32) {
        match f.reg {
            Reg::Leaf1Ecx => (m.0 | 1 << f.bit, m.1, m.2),
            Reg::Leaf7Ebx => (m.0, m.1 | 1 << f.bit, m.2),
            Reg::Ext1Ecx => (m.0, m.1, m.2 | 1 << f.bit),
        }
    }

    /// True when CPUID words `(leaf1 ECX, leaf7 EBX, ext1 ECX)` report `f`.
    pub const fn words_report(words: (u32, u32, u32), f: Feature) -> bool {
        let m = with_bit((0, 0, 0), f);
        words.0 & m.0 == m.0 && words.1 & m.1 == m.1 && words.2 & m.2 == m.2
    }

    /// `(leaf1 ECX, leaf7 EBX, ext1 ECX)` bits of the features of `level` and below, or (for
    /// `None`) of the features this build enables at compile time.
    const fn masks_where(level: Option<SimdLevel>) -> (u32, u32, u32) {
        let mut m = (0u32, 0u32, 0u32);
        let mut i = 0;
        while i < FEATURES.len() {
            let f = FEATURES[i];
            let pick = match level {
                Some(level) => code_le(f.level, level),
                None => f.compiled,
            };
            if pick {
                m = with_bit(m, f);
            }
            i += 1;
        }
        m
    }

    /// `(leaf1 ECX, leaf7 EBX, ext1 ECX)` bits a level requires.
    pub const fn masks(level: SimdLevel) -> (u32, u32, u32) {
        masks_where(Some(level))
    }

    /// `(leaf1 ECX, leaf7 EBX, ext1 ECX)` bits of the features this build enables at compile
    /// time (what a binary needs before any of its code may run).
    pub const fn compiled_masks() -> (u32, u32, u32) {
        masks_where(None)
    }

    /// The first feature of [`FEATURES`] this build enables at compile time that the running
    /// CPU does not report (CPUID itself: `is_x86_feature_detected!` answers `true` at compile
    /// time for compiled-in features, so it cannot tell).
    #[cfg(target_arch = "x86_64")]
    pub fn first_missing_compiled() -> Option<&'static str> {
        let (words, _) = cpu_words();
        FEATURES
            .iter()
            .find(|f| f.compiled && !words_report(words, **f))
            .map(|f| f.name)
    }

    /// True when `a` is a lower-or-equal x86 level than `b` (const `<=`).
    const fn code_le(a: SimdLevel, b: SimdLevel) -> bool {
        let (a, b) = (super::code(a), super::code(b));
        a >= 2 && a <= 3 && b >= 2 && b <= 3 && a <= b
    }

    /// True when this build enables every feature of `level` at compile time.
    pub const fn compiled_has(level: SimdLevel) -> bool {
        if !cfg!(target_arch = "x86_64") {
            return false;
        }
        let mut i = 0;
        while i < FEATURES.len() {
            let f = FEATURES[i];
            if code_le(f.level, level) && !f.compiled {
                return false;
            }
            i += 1;
        }
        matches!(level, SimdLevel::Avx2 | SimdLevel::Avx512)
    }

    /// CPUID feature words `(leaf1 ECX, leaf7 EBX, ext1 ECX)` and XCR0 of the running CPU.
    #[cfg(target_arch = "x86_64")]
    pub fn cpu_words() -> ((u32, u32, u32), u64) {
        use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
        // CPUID exists on every x86-64 CPU (a safe intrinsic); leaves above the maximum are
        // only read after checking the maximum leaf.
        let (max, max_ext) = (__cpuid(0).eax, __cpuid(0x8000_0000).eax);
        let l1 = if max >= 1 { __cpuid(1).ecx } else { 0 };
        let l7 = if max >= 7 { __cpuid_count(7, 0).ebx } else { 0 };
        let e1 = if max_ext >= 0x8000_0001 {
            __cpuid(0x8000_0001).ecx
        } else {
            0
        };
        // XGETBV is only valid when the OS set CR4.OSXSAVE (reported as CPUID.1:ECX bit 27).
        let xcr0 = if l1 & (1 << 27) != 0 {
            // SAFETY: OSXSAVE is set, so XGETBV with ECX = 0 is supported.
            unsafe { _xgetbv(0) }
        } else {
            0
        };
        ((l1, l7, e1), xcr0)
    }

    /// True when CPUID words and XCR0 show every feature of `level`.
    pub const fn words_have(words: (u32, u32, u32), xcr0: u64, level: SimdLevel) -> bool {
        let m = masks(level);
        let x = xcr0_mask(level);
        words.0 & m.0 == m.0 && words.1 & m.1 == m.1 && words.2 & m.2 == m.2 && xcr0 & x == x
    }

    /// The best x86 level of the running CPU (uncached).
    pub fn detect() -> SimdLevel {
        if !cfg!(target_arch = "x86_64") {
            return SimdLevel::Baseline;
        }
        for l in [SimdLevel::Avx512, SimdLevel::Avx2] {
            if cpu_has(l) {
                return l;
            }
        }
        SimdLevel::Baseline
    }

    /// The best x86 level of the running CPU by CPUID and XCR0 alone, even with the `std`
    /// feature: `is_x86_feature_detected!` answers `true` without asking the CPU for features
    /// the build enables at compile time, so it cannot tell whether a `target-cpu=x86-64-v4`
    /// build runs on a CPU without AVX-512 (the floor check of `ss2d_std::check_cpu`, the C ABI
    /// and the CLI use this).
    pub fn detect_raw() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            let (w, xcr0) = cpu_words();
            for l in [SimdLevel::Avx512, SimdLevel::Avx2] {
                if words_have(w, xcr0, l) {
                    return l;
                }
            }
        }
        SimdLevel::Baseline
    }

    /// True when the running CPU has every feature of `level` (uncached).
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub fn cpu_has(level: SimdLevel) -> bool {
        extern crate std;
        FEATURES
            .iter()
            .filter(|f| code_le(f.level, level))
            .all(|f| detected_std(f.name))
    }

    /// `is_x86_feature_detected!` for a feature name of the table.
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    fn detected_std(name: &str) -> bool {
        extern crate std;
        use std::arch::is_x86_feature_detected as d;
        match name {
            "sse3" => d!("sse3"),
            "ssse3" => d!("ssse3"),
            "cmpxchg16b" => d!("cmpxchg16b"),
            "sse4.1" => d!("sse4.1"),
            "sse4.2" => d!("sse4.2"),
            "popcnt" => d!("popcnt"),
            "fma" => d!("fma"),
            "movbe" => d!("movbe"),
            "xsave" => d!("xsave"),
            "avx" => d!("avx"),
            "f16c" => d!("f16c"),
            "bmi1" => d!("bmi1"),
            "avx2" => d!("avx2"),
            "bmi2" => d!("bmi2"),
            "lzcnt" => d!("lzcnt"),
            "avx512f" => d!("avx512f"),
            "avx512dq" => d!("avx512dq"),
            "avx512cd" => d!("avx512cd"),
            "avx512bw" => d!("avx512bw"),
            "avx512vl" => d!("avx512vl"),
            _ => false,
        }
    }

    /// True when the running CPU has every feature of `level` (uncached).
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub fn cpu_has(level: SimdLevel) -> bool {
        let (w, xcr0) = cpu_words();
        words_have(w, xcr0, level)
    }

    /// No x86 levels off x86.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn cpu_has(_level: SimdLevel) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_bits_and_the_compiled_check() {
        use x86::{masks, words_report, FEATURES};
        for f in FEATURES {
            assert!(words_report(masks(SimdLevel::Avx512), *f), "{}", f.name);
            assert!(!words_report((0, 0, 0), *f), "{}", f.name);
            assert_eq!(
                words_report(masks(SimdLevel::Avx2), *f),
                f.level == SimdLevel::Avx2,
                "{}",
                f.name
            );
        }
        // This test binary runs, so the CPU has every feature it was compiled with.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(x86::first_missing_compiled(), None);
    }

    #[test]
    fn names_round_trip() {
        for &l in SimdLevel::all() {
            assert_eq!(SimdLevel::from_name(l.name()), Some(l));
        }
        assert_eq!(SimdLevel::from_name("x86-64-v5"), None);
    }

    #[test]
    fn detected_is_available_and_best() {
        let d = SimdLevel::detect();
        assert!(d.is_available());
        assert!(d >= SimdLevel::compiled());
        assert_eq!(SimdLevel::available().last(), Some(d));
        assert!(SimdLevel::available().all(|l| l <= d));
    }

    #[test]
    fn feature_sets_nest() {
        let v3: usize = SimdLevel::Avx2.features().count();
        let v4: usize = SimdLevel::Avx512.features().count();
        assert!(v3 >= 14 && v4 == v3 + 5, "{v3} {v4}");
        assert_eq!(SimdLevel::Baseline.features().count(), 0);
        let (a, b, c) = x86::masks(SimdLevel::Avx2);
        let (a4, b4, c4) = x86::masks(SimdLevel::Avx512);
        assert!(a4 & a == a && b4 & b == b && c4 & c == c && b4 != b);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn cpuid_agrees_with_cpu_has() {
        let (w, xcr0) = x86::cpu_words();
        for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(x86::words_have(w, xcr0, l), x86::cpu_has(l), "{l}");
        }
    }
}
