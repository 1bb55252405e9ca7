//! Vector helpers over a level's lanes: checked loads, blocks of `LANES` vectors, scratch as
//! aligned vectors, and the vector stores of an output `Sink`.

use super::{load_at, store_at, LANES, V};
use crate::scan::Sink;

/// Loads the first `LANES` values of `s` (which must hold at least that many; panics
/// otherwise, like indexing). One vector load.
#[inline(always)]
pub(crate) fn load(s: &[f32]) -> V {
    let s = &s[..LANES];
    // SAFETY: `s` holds exactly `LANES` readable floats (the slice above is bounds-checked).
    unsafe { load_at(s.as_ptr()) }
}

/// Stores `v` into the first `LANES` floats of `dst` (which must hold that many; panics
/// otherwise, like indexing). One vector store.
#[inline(always)]
pub(crate) fn store(dst: &mut [f32], v: V) {
    let d = &mut dst[..LANES];
    // SAFETY: `d` holds exactly `LANES` writable floats (bounds-checked above), borrowed
    // exclusively.
    unsafe { store_at(d.as_mut_ptr(), v) }
}

/// The first `LANES` vectors of `src` as an array of registers (vector loads: copying the array
/// as an aggregate can become a `memcpy` call through the stack); when `rev`, in reverse order
/// (`m[k] = src[LANES - 1 - k]`).
#[inline(always)]
pub(crate) fn load_vs(src: &[V], rev: bool) -> [V; LANES] {
    let src = &src[..LANES];
    let p = src.as_ptr().cast::<f32>();
    // A loop, not `core::array::from_fn`: a closure passed to a generic `core` function is
    // compiled without the level's target features (its loads became calls).
    let mut m = [super::splat(0.0); LANES];
    for (k, v) in m.iter_mut().enumerate() {
        let i = if rev { LANES - 1 - k } else { k };
        // SAFETY: `src` holds `LANES` vectors (sliced above), `i < LANES`, and a `V` is
        // `LANES` plain `f32`s.
        *v = unsafe { load_at(p.add(i * LANES)) };
    }
    m
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

/// Splits an `f32` buffer into an aligned run of `n` `V`s (the unaligned head is skipped).
/// Returns an empty slice when fewer than `n` vectors fit.
pub(crate) fn as_vectors(buf: &mut [f32], n: usize) -> &mut [V] {
    let off = buf.as_ptr().align_offset(core::mem::align_of::<V>());
    let need = n * LANES;
    if off > buf.len() || buf.len() - off < need {
        return &mut [];
    }
    bytemuck::cast_slice_mut(&mut buf[off..off + need])
}

/// Splits scratch into `nv` aligned vectors and the remaining floats.
pub(crate) fn split_scratch(scratch: &mut [f32], nv: usize) -> (&mut [V], &mut [f32]) {
    let off = scratch.as_ptr().align_offset(core::mem::align_of::<V>());
    let (head, rest) = scratch.split_at_mut((off + nv * LANES).min(scratch.len()));
    (as_vectors(head, nv), rest)
}

/// Vector stores into a [`Sink`].
pub(crate) trait SinkLanes {
    /// Writes (or adds, when `ADD`) all lanes of `v` at `start..start + LANES`, unchecked.
    ///
    /// # Safety
    /// `start + LANES <= self.len()`, and no other work item touches those elements.
    unsafe fn put_lanes_unchecked<const ADD: bool>(&self, start: usize, v: V);

    /// Writes (or adds) the first `n` lanes of `v` at `start..start + n`.
    fn put_lanes<const ADD: bool>(&self, start: usize, v: V, n: usize);
}

impl SinkLanes for Sink<'_> {
    #[inline(always)]
    unsafe fn put_lanes_unchecked<const ADD: bool>(&self, start: usize, v: V) {
        // SAFETY: in bounds by the caller's contract; exclusive to this item (`Sink` docs).
        unsafe {
            let p = self.as_mut_ptr().add(start);
            let w = if ADD { load_at(p) + v } else { v };
            store_at(p, w);
        }
    }

    #[inline(always)]
    fn put_lanes<const ADD: bool>(&self, start: usize, v: V, n: usize) {
        if n == LANES {
            if start <= self.len() && LANES <= self.len() - start {
                // SAFETY: in bounds (checked above), which is `put_lanes_unchecked`'s contract.
                unsafe { self.put_lanes_unchecked::<ADD>(start, v) };
            }
        } else {
            let a = super::to_arr(v);
            self.put_slice::<ADD>(start, &a[..n.min(LANES)]);
        }
    }
}
