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

/// Loads the first `LANES` values of `s` (which must hold at least that many; panics
/// otherwise, like indexing).
///
/// One vector load: building the `[f32; LANES]` array first compiled to `LANES` scalar loads
/// and stores through the stack (seen in the fused scan's channel-last gather).
#[inline(always)]
pub(crate) fn load(s: &[f32]) -> V {
    let s = &s[..LANES];
    // SAFETY: `s` holds exactly `LANES` readable floats (the slice above is bounds-checked).
    unsafe { load_at(s.as_ptr()) }
}

/// Loads `LANES` floats starting at `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be readable `f32`s.
#[inline(always)]
pub(crate) unsafe fn load_at(p: *const f32) -> V {
    // A direct vector load: going through `read_unaligned` of the wrapper struct can become a
    // memcpy in pieces through the stack.
    #[cfg(target_feature = "avx512f")]
    // SAFETY: the caller guarantees `LANES` readable floats; the instruction is compiled in
    // for the whole build and has no alignment requirement.
    unsafe {
        core::arch::x86_64::_mm512_loadu_ps(p).into()
    }
    #[cfg(all(
        target_arch = "x86_64",
        not(target_feature = "avx512f"),
        target_feature = "avx"
    ))]
    // SAFETY: as above, for the 8-lane AVX load.
    unsafe {
        core::arch::x86_64::_mm256_loadu_ps(p).into()
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        any(target_feature = "avx512f", target_feature = "avx")
    )))]
    // SAFETY: the caller guarantees `LANES` readable floats; `V` is plain data of exactly that
    // size and `read_unaligned` has no alignment requirement.
    unsafe {
        p.cast::<V>().read_unaligned()
    }
}

/// Stores `v` as `LANES` floats starting at `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be writable `f32`s that nothing else accesses meanwhile.
#[inline(always)]
pub(crate) unsafe fn store_at(p: *mut f32, v: V) {
    #[cfg(target_feature = "avx512f")]
    // SAFETY: the caller guarantees `LANES` writable floats; no alignment requirement.
    unsafe {
        core::arch::x86_64::_mm512_storeu_ps(p, v.into())
    }
    #[cfg(all(
        target_arch = "x86_64",
        not(target_feature = "avx512f"),
        target_feature = "avx"
    ))]
    // SAFETY: as above, for the 8-lane AVX store.
    unsafe {
        core::arch::x86_64::_mm256_storeu_ps(p, v.into())
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        any(target_feature = "avx512f", target_feature = "avx")
    )))]
    // SAFETY: as for `load_at`, for writes.
    unsafe {
        p.cast::<V>().write_unaligned(v)
    }
}

/// The first `LANES` vectors of `src` as an array of registers (vector loads: copying the array
/// as an aggregate can become a `memcpy` call through the stack); when `rev`, in reverse order
/// (`m[k] = src[LANES - 1 - k]`).
#[inline(always)]
pub(crate) fn load_vs(src: &[V], rev: bool) -> [V; LANES] {
    let src = &src[..LANES];
    let p = src.as_ptr().cast::<f32>();
    if rev {
        // SAFETY: `src` holds `LANES` vectors (sliced above), `k < LANES`, and a `V` is
        // `LANES` plain `f32`s.
        core::array::from_fn(|k| unsafe { load_at(p.add((LANES - 1 - k) * LANES)) })
    } else {
        // SAFETY: as above.
        core::array::from_fn(|k| unsafe { load_at(p.add(k * LANES)) })
    }
}

/// Stores `m` into the first `LANES` vectors of `dst` (vector stores, see [`load_vs`]); when
/// `rev`, in reverse order (`dst[k] = m[LANES - 1 - k]`).
#[inline(always)]
pub(crate) fn store_vs(dst: &mut [V], m: &[V; LANES], rev: bool) {
    let dst = &mut dst[..LANES];
    let p = dst.as_mut_ptr().cast::<f32>();
    for k in 0..LANES {
        let v = if rev { m[LANES - 1 - k] } else { m[k] };
        // SAFETY: `dst` holds `LANES` vectors (sliced above) and `k < LANES`.
        unsafe { store_at(p.add(k * LANES), v) };
    }
}

/// The lanes of `v` in reverse order.
#[inline(always)]
pub(crate) fn reverse(v: V) -> V {
    #[cfg(target_feature = "avx512f")]
    // SAFETY: compiled only with avx512f enabled for the whole build; register-only.
    unsafe {
        use core::arch::x86_64::{_mm512_permutexvar_ps, _mm512_set_epi32};
        let idx = _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm512_permutexvar_ps(idx, v.into()).into()
    }
    #[cfg(all(
        target_arch = "x86_64",
        not(target_feature = "avx512f"),
        target_feature = "avx2"
    ))]
    // SAFETY: compiled only with avx2 enabled for the whole build; register-only.
    unsafe {
        use core::arch::x86_64::{_mm256_permutevar8x32_ps, _mm256_set_epi32};
        let idx = _mm256_set_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_permutevar8x32_ps(v.into(), idx).into()
    }
    #[cfg(not(any(
        target_feature = "avx512f",
        all(target_arch = "x86_64", target_feature = "avx2")
    )))]
    {
        let mut a = v.to_array();
        a.reverse();
        V::new(a)
    }
}

/// Hints that the cache line holding `p` will be read soon, into L2 (not L1: a chunk ahead of
/// a panel's rows does not fit in L1 beside the current one). A hint only: any address is fine
/// (nothing is read, nothing faults), so `p` may be computed with `wrapping_add` past a buffer.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht1` (SSE, part of the x86-64 baseline) never faults and changes no
    // memory, whatever the address.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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

/// Scratch `f32`s needed to hold `n` aligned vectors, whatever the buffer's alignment
/// (saturating: a size that does not fit in `usize` cannot be provided anyway).
pub(crate) const fn vectors_len(n: usize) -> usize {
    n.saturating_mul(LANES).saturating_add(LANES)
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

/// Transposes a `LANES x LANES` block in place: afterwards `m[j].lane(i)` is the old
/// `m[i].lane(j)`.
#[inline(always)]
pub(crate) fn transpose(m: &mut [V; LANES]) {
    #[cfg(target_feature = "avx512f")]
    {
        transpose16(m)
    }
    #[cfg(not(target_feature = "avx512f"))]
    {
        *m = V::transpose(*m);
    }
}

#[cfg(target_feature = "avx512f")]
#[inline(always)]
fn transpose16(m: &mut [V; 16]) {
    use core::arch::x86_64::{
        _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
    };
    macro_rules! r {
        ($i:expr) => {
            core::arch::x86_64::__m512::from(m[$i])
        };
    }
    // SAFETY: compiled only with avx512f enabled for the whole build, so these instructions
    // exist on every CPU this code runs on; they only shuffle register contents.
    unsafe {
        let t0 = _mm512_unpacklo_ps(r!(0), r!(1));
        let t1 = _mm512_unpackhi_ps(r!(0), r!(1));
        let t2 = _mm512_unpacklo_ps(r!(2), r!(3));
        let t3 = _mm512_unpackhi_ps(r!(2), r!(3));
        let t4 = _mm512_unpacklo_ps(r!(4), r!(5));
        let t5 = _mm512_unpackhi_ps(r!(4), r!(5));
        let t6 = _mm512_unpacklo_ps(r!(6), r!(7));
        let t7 = _mm512_unpackhi_ps(r!(6), r!(7));
        let t8 = _mm512_unpacklo_ps(r!(8), r!(9));
        let t9 = _mm512_unpackhi_ps(r!(8), r!(9));
        let ta = _mm512_unpacklo_ps(r!(10), r!(11));
        let tb = _mm512_unpackhi_ps(r!(10), r!(11));
        let tc = _mm512_unpacklo_ps(r!(12), r!(13));
        let td = _mm512_unpackhi_ps(r!(12), r!(13));
        let te = _mm512_unpacklo_ps(r!(14), r!(15));
        let tf = _mm512_unpackhi_ps(r!(14), r!(15));
        let u = [
            _mm512_shuffle_ps::<0x44>(t0, t2),
            _mm512_shuffle_ps::<0xEE>(t0, t2),
            _mm512_shuffle_ps::<0x44>(t1, t3),
            _mm512_shuffle_ps::<0xEE>(t1, t3),
            _mm512_shuffle_ps::<0x44>(t4, t6),
            _mm512_shuffle_ps::<0xEE>(t4, t6),
            _mm512_shuffle_ps::<0x44>(t5, t7),
            _mm512_shuffle_ps::<0xEE>(t5, t7),
            _mm512_shuffle_ps::<0x44>(t8, ta),
            _mm512_shuffle_ps::<0xEE>(t8, ta),
            _mm512_shuffle_ps::<0x44>(t9, tb),
            _mm512_shuffle_ps::<0xEE>(t9, tb),
            _mm512_shuffle_ps::<0x44>(tc, te),
            _mm512_shuffle_ps::<0xEE>(tc, te),
            _mm512_shuffle_ps::<0x44>(td, tf),
            _mm512_shuffle_ps::<0xEE>(td, tf),
        ];
        macro_rules! out {
            ($j:literal) => {
                let x = _mm512_shuffle_f32x4::<0x88>(u[$j], u[4 + $j]);
                let y = _mm512_shuffle_f32x4::<0xDD>(u[$j], u[4 + $j]);
                let x2 = _mm512_shuffle_f32x4::<0x88>(u[8 + $j], u[12 + $j]);
                let y2 = _mm512_shuffle_f32x4::<0xDD>(u[8 + $j], u[12 + $j]);
                m[$j] = _mm512_shuffle_f32x4::<0x88>(x, x2).into();
                m[8 + $j] = _mm512_shuffle_f32x4::<0xDD>(x, x2).into();
                m[4 + $j] = _mm512_shuffle_f32x4::<0x88>(y, y2).into();
                m[12 + $j] = _mm512_shuffle_f32x4::<0xDD>(y, y2).into();
            };
        }
        out!(0);
        out!(1);
        out!(2);
        out!(3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_a_transpose() {
        let mut t: [V; LANES] =
            core::array::from_fn(|i| V::new(core::array::from_fn(|j| (i * 100 + j) as f32)));
        transpose(&mut t);
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
