//! The SIMD lane type. `wide` picks instructions at compile time: with AVX-512 compiled in a
//! panel is 16 channels (`f32x16`), otherwise 8 (`f32x8`, AVX2 or two SSE halves).

/// One SIMD register of `f32` lanes: the channels of a panel.
#[cfg(target_feature = "avx512f")]
pub type V = wide::f32x16;
/// One SIMD register of `f32` lanes: the channels of a panel.
#[cfg(not(target_feature = "avx512f"))]
pub type V = wide::f32x8;

/// Integer twin of [`V`].
#[cfg(target_feature = "avx512f")]
pub(crate) type I = wide::i32x16;
/// Integer twin of [`V`].
#[cfg(not(target_feature = "avx512f"))]
pub(crate) type I = wide::i32x8;

/// Channels per panel (lanes of [`V`]).
pub const LANES: usize = core::mem::size_of::<V>() / 4;

/// Broadcast.
#[inline(always)]
pub(crate) fn splat(x: f32) -> V {
    V::splat(x)
}

/// Loads the first `LANES` values of `s` (which must hold at least that many).
#[inline(always)]
pub(crate) fn load(s: &[f32]) -> V {
    let a: [f32; LANES] = s[..LANES].try_into().unwrap_or([0.0; LANES]);
    V::new(a)
}

/// Stores into the first `LANES` values of `s`.
#[inline(always)]
pub(crate) fn store(v: V, s: &mut [f32]) {
    s[..LANES].copy_from_slice(&v.to_array());
}

/// `a * b + c`, fused where FMA is compiled in.
#[inline(always)]
pub(crate) fn fma(a: V, b: V, c: V) -> V {
    a.mul_add(b, c)
}

/// Splits an `f32` buffer into an aligned run of `V`s (the unaligned head is skipped).
/// Returns an empty slice when fewer than `n` vectors fit.
pub(crate) fn as_vectors(buf: &mut [f32], n: usize) -> &mut [V] {
    let off = buf.as_ptr().align_offset(core::mem::align_of::<V>());
    let need = n * LANES;
    if off > buf.len() || buf.len() - off < need {
        return &mut [];
    }
    bytemuck::cast_slice_mut(&mut buf[off..off + need])
}

/// Scratch `f32`s needed to hold `n` aligned vectors, whatever the buffer's alignment.
pub(crate) const fn vectors_len(n: usize) -> usize {
    n * LANES + LANES
}
