//! The SIMD lane type. `wide` picks instructions at compile time: with AVX-512 compiled in a
//! panel is 16 channels (`f32x16`), otherwise 8 (`f32x8`, AVX2 or two SSE halves).

/// One SIMD register of `f32` lanes: the channels of a panel.
#[cfg(target_feature = "avx512f")]
pub type V = wide::f32x16;
/// One SIMD register of `f32` lanes: the channels of a panel.
#[cfg(not(target_feature = "avx512f"))]
pub type V = wide::f32x8;

/// Integer twin of [`V`] (the exponent-bit path of `exp2` below AVX-512).
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

/// Rounds to the nearest integer (ties to even) for `|x| < 2^22`; NaN stays NaN.
#[inline(always)]
pub(crate) fn round_nearest(x: V) -> V {
    #[cfg(any(target_feature = "avx512f", target_feature = "avx"))]
    {
        x.round_ties_even()
    }
    #[cfg(not(any(target_feature = "avx512f", target_feature = "avx")))]
    {
        const M: f32 = 12_582_912.0; // 1.5 * 2^23
        (x + splat(M)) - splat(M)
    }
}

/// Transposes a `LANES x LANES` block: `out[j].lane(i) = rows[i].lane(j)`.
#[inline(always)]
pub(crate) fn transpose(rows: [V; LANES]) -> [V; LANES] {
    #[cfg(target_feature = "avx512f")]
    {
        transpose16(rows)
    }
    #[cfg(not(target_feature = "avx512f"))]
    {
        V::transpose(rows)
    }
}

#[cfg(target_feature = "avx512f")]
#[inline(always)]
fn transpose16(r: [V; 16]) -> [V; 16] {
    use core::arch::x86_64::{
        __m512, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
    };
    let r: [__m512; 16] = r.map(Into::into);
    // SAFETY: compiled only with avx512f enabled for the whole build, so these instructions
    // exist on every CPU this code runs on; they only shuffle register contents.
    unsafe {
        let mut t = r;
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        let mut u = t;
        for k in 0..4 {
            u[4 * k] = _mm512_shuffle_ps::<0x44>(t[4 * k], t[4 * k + 2]);
            u[4 * k + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * k], t[4 * k + 2]);
            u[4 * k + 2] = _mm512_shuffle_ps::<0x44>(t[4 * k + 1], t[4 * k + 3]);
            u[4 * k + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * k + 1], t[4 * k + 3]);
        }
        let mut o = u;
        for j in 0..4 {
            let x = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
            let y = _mm512_shuffle_f32x4::<0xDD>(u[j], u[4 + j]);
            let x2 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
            let y2 = _mm512_shuffle_f32x4::<0xDD>(u[8 + j], u[12 + j]);
            o[j] = _mm512_shuffle_f32x4::<0x88>(x, x2);
            o[8 + j] = _mm512_shuffle_f32x4::<0xDD>(x, x2);
            o[4 + j] = _mm512_shuffle_f32x4::<0x88>(y, y2);
            o[12 + j] = _mm512_shuffle_f32x4::<0xDD>(y, y2);
        }
        o.map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_a_transpose() {
        let rows: [V; LANES] =
            core::array::from_fn(|i| V::new(core::array::from_fn(|j| (i * 100 + j) as f32)));
        let t = transpose(rows);
        for (j, v) in t.iter().enumerate() {
            let a = v.to_array();
            for (i, x) in a.iter().enumerate() {
                assert_eq!(*x, (i * 100 + j) as f32);
            }
        }
    }

    #[test]
    fn round_nearest_ties_even() {
        let x = V::new(core::array::from_fn(|i| i as f32 * 0.5 - 3.0));
        let r = round_nearest(x).to_array();
        for (i, v) in r.iter().enumerate() {
            let xi = i as f32 * 0.5 - 3.0;
            assert_eq!(*v, xi.round_ties_even());
        }
        assert!(round_nearest(splat(f32::NAN)).to_array()[0].is_nan());
    }
}
