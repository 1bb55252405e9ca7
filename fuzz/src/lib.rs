//! Shared pieces of the fuzz targets: sizes that mix small values with overflow-prone huge ones,
//! buffer lengths that are usually right and sometimes off, seeded data, and the "nothing
//! written on error / everything written on success" sentinel checks.
//!
//! Buffers are never longer than [`LIMIT`] elements, whatever sizes the input names: a huge size
//! can only reach an entry point together with empty or wrong-length buffers, which is exactly
//! the case where an implementation must not trust the size.

use arbitrary::Arbitrary;

/// Most elements one buffer may have.
pub const LIMIT: usize = 1 << 15;

/// Bound on `elements x dstate`-like work for calls that may succeed (keeps an execution in the
/// millisecond range under ASan).
pub const WORK: usize = 1 << 21;

/// A size: mostly small, sometimes one of the values that break unchecked arithmetic.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    /// `0..=19`.
    Tiny(u8),
    /// `0..=255`.
    Small(u8),
    /// Around a multiple of 16 (lane counts): `16 * (k % 5) + (j % 3) - 1`.
    Lanes(u8, u8),
    /// `0..=4095`.
    Medium(u16),
    /// A huge value.
    Huge(Huge),
}

/// Huge sizes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Huge {
    /// `usize::MAX`.
    Max,
    /// `usize::MAX / 2`.
    HalfMax,
    /// `isize::MAX + 1`.
    IsizeEnd,
    /// `2^32`.
    P32,
    /// `2^40`.
    P40,
    /// `2^62`.
    P62,
    /// `usize::MAX / 4 + 1`.
    Quarter,
    /// `2^31 + 1`.
    P31,
}

impl Size {
    /// The value.
    pub fn get(self) -> usize {
        match self {
            Size::Tiny(v) => (v % 20) as usize,
            Size::Small(v) => v as usize,
            Size::Lanes(k, j) => (16 * (k as usize % 5) + (j as usize % 3)).saturating_sub(1),
            Size::Medium(v) => (v % 4096) as usize,
            Size::Huge(h) => match h {
                Huge::Max => usize::MAX,
                Huge::HalfMax => usize::MAX / 2,
                Huge::IsizeEnd => isize::MAX as usize + 1,
                Huge::P32 => 1 << 32,
                Huge::P40 => 1 << 40,
                Huge::P62 => 1 << 62,
                Huge::Quarter => usize::MAX / 4 + 1,
                Huge::P31 => (1 << 31) + 1,
            },
        }
    }
}

/// A signed stride.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Stride {
    /// `-8..=8`-ish small strides.
    Small(i8),
    /// `+/-` a [`Size`] (saturating into `isize`).
    Pos(Size),
    /// Negative of a [`Size`].
    Neg(Size),
    /// `isize::MIN`.
    Min,
}

impl Stride {
    /// The value.
    pub fn get(self) -> isize {
        match self {
            Stride::Small(v) => (v % 9) as isize,
            Stride::Pos(s) => isize::try_from(s.get()).unwrap_or(isize::MAX),
            Stride::Neg(s) => -isize::try_from(s.get()).unwrap_or(isize::MAX),
            Stride::Min => isize::MIN,
        }
    }
}

/// The length of a buffer relative to what the shape implies.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Len {
    /// Exactly right (when representable and at most [`LIMIT`]).
    Exact,
    /// Exactly right (weighted twice as likely as the wrong ones).
    Exact2,
    /// One more.
    Plus1,
    /// One less (saturating).
    Minus1,
    /// Plus or minus a small amount.
    Off(i8),
    /// Zero.
    Zero,
    /// Any small length.
    Raw(u16),
}

impl Len {
    /// A concrete length, never above [`LIMIT`].
    pub fn resolve(self, expected: Option<usize>) -> usize {
        let e = expected.filter(|&e| e <= LIMIT);
        let n = match (self, e) {
            (Len::Exact | Len::Exact2, Some(e)) => e,
            (Len::Plus1, Some(e)) => e + 1,
            (Len::Minus1, Some(e)) => e.saturating_sub(1),
            (Len::Off(d), Some(e)) => e.saturating_add_signed(d as isize),
            (Len::Zero, _) => 0,
            (Len::Raw(r), _) => r as usize,
            (_, None) => 1 + (expected.unwrap_or(0) % 7),
        };
        n.min(LIMIT)
    }

    /// True when the length is meant to be right.
    pub fn exact(self) -> bool {
        matches!(self, Len::Exact | Len::Exact2)
    }
}

/// How buffer values are painted.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Fill {
    /// Seed of the generator.
    pub seed: u64,
    /// 0..=3 mostly finite; otherwise some NaN / inf / huge / subnormal values appear.
    pub special: u8,
}

/// The test generator (`ss2d-testsupport`), re-exported for the targets.
pub use ss2d_testsupport::Lcg;

impl Fill {
    /// A buffer of `n` values.
    pub fn buf(&self, salt: u64, n: usize) -> Vec<f32> {
        let mut g = Lcg::from_state(self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (0..n)
            .map(|_| {
                let v = g.uniform(-2.0, 2.0);
                if self.special > 3 && g.next_u64().is_multiple_of(64) {
                    match g.next_u64() % 7 {
                        0 => f32::NAN,
                        1 => f32::INFINITY,
                        2 => f32::NEG_INFINITY,
                        3 => 3.0e38,
                        4 => -1.0e30,
                        5 => 1.0e-40,
                        _ => 0.0,
                    }
                } else {
                    v
                }
            })
            .collect()
    }
}

/// The sentinel painted into output buffers: a NaN with a payload no computation produces.
pub const SENTINEL: u32 = 0x7fc0_5a5a;

/// A buffer of `n` sentinels.
pub fn sentinels(n: usize) -> Vec<f32> {
    vec![f32::from_bits(SENTINEL); n]
}

/// On error, every element must still be the sentinel (nothing written).
pub fn assert_untouched(what: &str, buf: &[f32]) {
    if let Some(i) = buf.iter().position(|v| v.to_bits() != SENTINEL) {
        panic!("{what}: element {i} was written although the call returned an error");
    }
}

/// On success, no element may still be the sentinel (everything written).
pub fn assert_written(what: &str, buf: &[f32]) {
    if let Some(i) = buf.iter().position(|v| v.to_bits() == SENTINEL) {
        panic!("{what}: element {i} was not written although the call succeeded");
    }
}

/// Checked product, `None` on overflow.
pub fn prod(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}
