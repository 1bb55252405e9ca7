//! Strided tensor descriptors: validation, dense detection, gather and scatter.

use std::borrow::Cow;

use crate::exec::Exec;
use crate::{ss2d_status, Fail, Res};

/// Largest rank a tensor descriptor holds.
pub const SS2D_MAX_DIMS: usize = 6;

/// An output tensor (written by the call): `ndim` axes, `shape[i]` elements along axis `i`,
/// and `strides[i]` *elements* (not bytes) between neighbours along axis `i`, any sign.
/// Element `(i0, i1, ...)` lives at `data + i0*strides[0] + i1*strides[1] + ...`.
/// Entries past `ndim` are ignored. A dense row-major tensor has
/// `strides[ndim-1] = 1, strides[i] = strides[i+1] * shape[i+1]`.
/// Output strides must not make two elements share memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_tensor {
    /// First element (index 0 on every axis); may be NULL only when the tensor is empty.
    /// Must be aligned for `float`.
    pub data: *mut f32,
    /// Number of axes, at most `SS2D_MAX_DIMS`.
    pub ndim: usize,
    /// Size of each axis.
    pub shape: [usize; SS2D_MAX_DIMS],
    /// Step in elements along each axis (any sign; 0 only for inputs or size-1 axes).
    pub strides: [isize; SS2D_MAX_DIMS],
}

/// An input tensor (only read by the call); same layout rules as `ss2d_tensor`, and any
/// strides, zero included (broadcast).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_const_tensor {
    /// First element (index 0 on every axis); may be NULL only when the tensor is empty.
    /// Must be aligned for `float`.
    pub data: *const f32,
    /// Number of axes, at most `SS2D_MAX_DIMS`.
    pub ndim: usize,
    /// Size of each axis.
    pub shape: [usize; SS2D_MAX_DIMS],
    /// Step in elements along each axis (any sign).
    pub strides: [isize; SS2D_MAX_DIMS],
}

/// A validated tensor: every addressed element lies in `[lo, hi)` (byte addresses), which
/// neither wraps nor exceeds `isize::MAX` bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub(crate) name: &'static str,
    ptr: *mut f32,
    pub(crate) ndim: usize,
    pub(crate) shape: [usize; SS2D_MAX_DIMS],
    strides: [isize; SS2D_MAX_DIMS],
    pub(crate) numel: usize,
    lo: usize,
    hi: usize,
}

fn bad(status: ss2d_status, msg: String) -> Fail {
    Fail::new(status, msg)
}

pub(crate) fn fmt_shape(s: &[usize]) -> String {
    let v: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    if s.len() == 1 {
        format!("({},)", v[0])
    } else {
        format!("({})", v.join(", "))
    }
}

impl View {
    fn new(
        name: &'static str,
        ptr: *mut f32,
        ndim: usize,
        shape: [usize; SS2D_MAX_DIMS],
        strides: [isize; SS2D_MAX_DIMS],
        output: bool,
    ) -> Res<View> {
        if ndim > SS2D_MAX_DIMS {
            return Err(bad(
                ss2d_status::SS2D_BAD_SHAPE,
                format!("`{name}` has ndim {ndim}, at most {SS2D_MAX_DIMS} is supported"),
            ));
        }
        let mut shape_n = [0usize; SS2D_MAX_DIMS];
        let mut strides_n = [0isize; SS2D_MAX_DIMS];
        shape_n[..ndim].copy_from_slice(&shape[..ndim]);
        strides_n[..ndim].copy_from_slice(&strides[..ndim]);
        // A size-1 axis never moves the address: its stride is irrelevant (normalized to 0 so
        // no later sum can overflow).
        for ax in 0..ndim {
            if shape_n[ax] == 1 {
                strides_n[ax] = 0;
            }
        }
        let numel = shape_n[..ndim]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 4)
            .ok_or_else(|| {
                bad(
                    ss2d_status::SS2D_BAD_SHAPE,
                    format!(
                        "`{name}` has shape {}: too many elements",
                        fmt_shape(&shape_n[..ndim])
                    ),
                )
            })?;
        let mut v = View {
            name,
            ptr,
            ndim,
            shape: shape_n,
            strides: strides_n,
            numel,
            lo: 0,
            hi: 0,
        };
        if numel == 0 {
            return Ok(v);
        }
        if ptr.is_null() {
            return Err(bad(
                ss2d_status::SS2D_NULL_POINTER,
                format!("`{name}` has NULL data and {numel} elements"),
            ));
        }
        if !(ptr as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            return Err(bad(
                ss2d_status::SS2D_BAD_STRIDE,
                format!("`{name}` data pointer {ptr:p} is not aligned for float"),
            ));
        }
        // Element offsets spanned, exactly (i128 cannot overflow for 6 axes of usize x isize).
        let (mut lo, mut hi) = (0i128, 0i128);
        for ax in 0..ndim {
            let e = (v.shape[ax] as i128 - 1) * v.strides[ax] as i128;
            if e < 0 {
                lo += e;
            } else {
                hi += e;
            }
        }
        let base = ptr as usize as i128;
        let lo_b = base + 4 * lo;
        let hi_b = base + 4 * (hi + 1);
        if lo_b < 0 || hi_b > usize::MAX as i128 || hi_b - lo_b > isize::MAX as i128 {
            return Err(bad(
                ss2d_status::SS2D_BAD_STRIDE,
                format!(
                    "`{name}` strides {:?} with shape {} address memory outside the address \
                     space",
                    &v.strides[..ndim],
                    fmt_shape(&v.shape[..ndim])
                ),
            ));
        }
        v.lo = lo_b as usize;
        v.hi = hi_b as usize;
        if output && !v.injective() {
            return Err(bad(
                ss2d_status::SS2D_BAD_STRIDE,
                format!(
                    "output `{name}` strides {:?} with shape {} make elements share memory \
                     (sorted by magnitude, each stride must exceed the extent of the smaller \
                     ones)",
                    &v.strides[..ndim],
                    fmt_shape(&v.shape[..ndim])
                ),
            ));
        }
        Ok(v)
    }

    /// Sufficient test that distinct indices address distinct elements: over the axes of size
    /// > 1 sorted by |stride|, each |stride| is larger than the extent of the axes before.
    fn injective(&self) -> bool {
        let mut axes: Vec<(u128, u128)> = (0..self.ndim)
            .filter(|&a| self.shape[a] > 1)
            .map(|a| {
                (
                    self.strides[a].unsigned_abs() as u128,
                    self.shape[a] as u128,
                )
            })
            .collect();
        axes.sort_unstable();
        let mut extent: u128 = 0; // max offset reachable by the smaller axes
        for (s, n) in axes {
            if s <= extent {
                return false;
            }
            extent += (n - 1) * s;
        }
        true
    }

    /// The first element.
    pub(crate) fn ptr(&self) -> *mut f32 {
        self.ptr
    }

    /// The shape as a slice.
    pub(crate) fn dims(&self) -> &[usize] {
        &self.shape[..self.ndim]
    }

    /// Checks the exact shape.
    pub(crate) fn expect(&self, want: &[usize], what: &str) -> Res<()> {
        if self.dims() != want {
            return Err(bad(
                ss2d_status::SS2D_BAD_SHAPE,
                format!(
                    "`{}` has shape {}, expected {} {what}",
                    self.name,
                    fmt_shape(self.dims()),
                    fmt_shape(want)
                ),
            ));
        }
        Ok(())
    }

    /// Checks the rank.
    pub(crate) fn expect_rank(&self, ranks: &[usize], what: &str) -> Res<()> {
        if !ranks.contains(&self.ndim) {
            return Err(bad(
                ss2d_status::SS2D_BAD_SHAPE,
                format!(
                    "`{}` has rank {} (shape {}), expected {what}",
                    self.name,
                    self.ndim,
                    fmt_shape(self.dims())
                ),
            ));
        }
        Ok(())
    }

    /// True when the elements are contiguous with the axes in memory order `perm`
    /// (`perm[0]` outermost): the layout a kernel can read in place. Size-1 axes may have any
    /// stride.
    pub(crate) fn dense_in(&self, perm: &[usize]) -> bool {
        debug_assert_eq!(perm.len(), self.ndim);
        if self.numel == 0 {
            return true;
        }
        let mut expect: isize = 1;
        for &ax in perm.iter().rev() {
            if self.shape[ax] != 1 && self.strides[ax] != expect {
                return false;
            }
            expect = expect.saturating_mul(self.shape[ax] as isize);
        }
        true
    }

    /// True when the memory of the two (non-empty) tensors intersects.
    pub(crate) fn overlaps(&self, other: &View) -> bool {
        self.numel > 0 && other.numel > 0 && self.lo < other.hi && other.lo < self.hi
    }

    /// The view's axes in memory order `perm`: (sizes, strides).
    fn ordered(&self, perm: &[usize]) -> Order {
        Order {
            shape: perm.iter().map(|&a| self.shape[a]).collect(),
            strides: perm.iter().map(|&a| self.strides[a]).collect(),
        }
    }

    /// Copies the elements into a dense buffer in memory order `perm`, in parallel parts
    /// on `ex` for large tensors.
    ///
    /// # Safety
    /// The view came from a descriptor whose memory is readable at every addressed element
    /// and not written by anyone for the duration of the call (the API's pointer contract).
    pub(crate) unsafe fn gather(&self, perm: &[usize], ex: &Exec) -> Res<Vec<f32>> {
        let mut out = vec![0.0f32; self.numel];
        let order = self.ordered(perm);
        let src = Ptr(self.ptr);
        parts(&mut out, ex, &|start, dst| {
            order.for_each_range(start, dst.len(), |i, off| {
                // SAFETY: `off` addresses an element of the validated view (inside its
                // range, no wrap); readable and unwritten by the caller's contract.
                dst[i] = unsafe { src.get().offset(off).read() };
            })
        });
        Ok(out)
    }

    /// The elements in memory order `perm`: borrowed in place when dense in that order,
    /// otherwise gathered (in parallel on `ex` when large).
    ///
    /// # Safety
    /// As [`View::gather`].
    pub(crate) unsafe fn read<'a>(&self, perm: &[usize], ex: &Exec) -> Res<Cow<'a, [f32]>> {
        if self.numel == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        if self.dense_in(perm) {
            // SAFETY: dense in `perm` means the elements are exactly `ptr .. ptr + numel`
            // (positive strides on every non-trivial axis), aligned and non-NULL (validated);
            // readable and unwritten for the call by the caller's contract.
            let s = unsafe { std::slice::from_raw_parts(self.ptr as *const f32, self.numel) };
            Ok(Cow::Borrowed(s))
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.gather(perm, ex) }.map(Cow::Owned)
        }
    }

    /// Row-major [`View::read`] on the calling thread (for small tensors: weights).
    ///
    /// # Safety
    /// As [`View::read`].
    pub(crate) unsafe fn read_rm<'a>(&self) -> Cow<'a, [f32]> {
        let id: Vec<usize> = (0..self.ndim).collect();
        let seq = Exec::sequential();
        // SAFETY: forwarded contract. A sequential gather cannot fail.
        unsafe { self.read(&id, &seq) }.unwrap_or_default()
    }

    /// A place to compute this output into, in memory order `perm`: the tensor's own memory
    /// when dense in that order, else a temporary to [`OutBuf::finish`] into it.
    ///
    /// # Safety
    /// The view came from an output descriptor whose memory is writable at every addressed
    /// element and not accessed by anyone else for the duration of the call, and it does not
    /// overlap any other tensor of the call (checked by [`check_disjoint`]).
    pub(crate) unsafe fn out_buf<'a>(&self, perm: &[usize]) -> OutBuf<'a> {
        if self.numel == 0 {
            return OutBuf::Direct(&mut []);
        }
        if self.dense_in(perm) {
            // SAFETY: as in `read`; exclusive by the caller's contract and the overlap check.
            OutBuf::Direct(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.numel) })
        } else {
            OutBuf::Temp {
                buf: vec![0.0f32; self.numel],
                view: *self,
                perm: perm.to_vec(),
            }
        }
    }
}

/// A view's axes in some memory order.
struct Order {
    shape: Vec<usize>,
    strides: Vec<isize>,
}

impl Order {
    /// Calls `f(i, offset)` for the elements `start .. start + len` of the dense order
    /// (`i` from 0, `offset` in elements from the view's first element). The range must lie
    /// inside the view.
    fn for_each_range(&self, start: usize, len: usize, mut f: impl FnMut(usize, isize)) {
        let nd = self.shape.len();
        if len == 0 {
            return;
        }
        if nd == 0 {
            f(0, 0);
            return;
        }
        // Multi-index and offset of `start`.
        let mut idx = vec![0usize; nd];
        let mut rem = start;
        let mut off: isize = 0;
        for ax in (0..nd).rev() {
            idx[ax] = rem % self.shape[ax];
            rem /= self.shape[ax];
            off += idx[ax] as isize * self.strides[ax];
        }
        let (inner_n, inner_s) = (self.shape[nd - 1], self.strides[nd - 1]);
        let mut i = 0usize;
        loop {
            let run = (inner_n - idx[nd - 1]).min(len - i);
            for _ in 0..run {
                f(i, off);
                i += 1;
                off += inner_s;
            }
            if i == len {
                return;
            }
            // The inner axis is exhausted: back to its start, then advance the outer axes.
            off -= inner_n as isize * inner_s;
            idx[nd - 1] = 0;
            let mut ax = nd - 1;
            loop {
                // `i < len` and the range lies inside the view, so an outer axis remains.
                ax -= 1;
                idx[ax] += 1;
                off += self.strides[ax];
                if idx[ax] < self.shape[ax] {
                    break;
                }
                off -= self.shape[ax] as isize * self.strides[ax];
                idx[ax] = 0;
            }
        }
    }
}

/// A tensor's base pointer, shared by the parts of a parallel gather or scatter.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);

impl Ptr {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the parts of a gather only read validated input elements (which nobody writes
// during the call), and the parts of a scatter write disjoint elements of an output that is
// exclusively the call's (injective strides, no overlap with other tensors), so sharing the
// pointer between the threads running the parts is race-free.
unsafe impl Send for Ptr {}
// SAFETY: as above.
unsafe impl Sync for Ptr {}

/// Elements per part of a parallel gather or scatter.
const PART: usize = 1 << 15;

/// Runs `f(start, chunk)` over `PART`-sized chunks of `buf` (`start` = the chunk's first
/// index) on `ex`'s executor.
fn parts(buf: &mut [f32], ex: &Exec, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    ex.par().for_each_chunk(buf, PART, |i, c| f(i * PART, c));
}

/// An output being computed: in place, or in a temporary scattered back at the end.
pub(crate) enum OutBuf<'a> {
    /// The tensor's own memory.
    Direct(&'a mut [f32]),
    /// A dense temporary in memory order `perm`.
    Temp {
        buf: Vec<f32>,
        view: View,
        perm: Vec<usize>,
    },
}

impl OutBuf<'_> {
    pub(crate) fn slice(&mut self) -> &mut [f32] {
        match self {
            OutBuf::Direct(s) => s,
            OutBuf::Temp { buf, .. } => buf,
        }
    }

    /// Scatters a temporary into the tensor (nothing to do in place), in parallel parts on
    /// `ex` when large.
    ///
    /// # Safety
    /// As [`View::out_buf`].
    pub(crate) unsafe fn finish(self, ex: &Exec) -> Res<()> {
        if let OutBuf::Temp {
            mut buf,
            view,
            perm,
        } = self
        {
            let order = view.ordered(&perm);
            let dst = Ptr(view.ptr);
            parts(&mut buf, ex, &|start, src| {
                order.for_each_range(start, src.len(), |i, off| {
                    // SAFETY: `off` addresses an element of the validated output view; the
                    // view is injective, so each part writes its own elements; writable and
                    // exclusive by the caller's contract.
                    unsafe { dst.get().offset(off).write(src[i]) };
                })
            });
        }
        Ok(())
    }
}

/// Validates a required input descriptor.
///
/// # Safety
/// `t` is NULL or points to a valid descriptor.
pub(crate) unsafe fn input(t: *const ss2d_const_tensor, name: &'static str) -> Res<View> {
    // SAFETY: forwarded contract.
    match unsafe { optional_input(t, name) }? {
        Some(v) => Ok(v),
        None => Err(bad(
            ss2d_status::SS2D_NULL_POINTER,
            format!("required tensor `{name}` is NULL"),
        )),
    }
}

/// Validates an optional input descriptor (NULL = absent).
///
/// # Safety
/// `t` is NULL or points to a valid descriptor.
pub(crate) unsafe fn optional_input(
    t: *const ss2d_const_tensor,
    name: &'static str,
) -> Res<Option<View>> {
    // SAFETY: NULL checked by `as_ref`; otherwise valid by the caller's contract.
    let Some(t) = (unsafe { t.as_ref() }) else {
        return Ok(None);
    };
    View::new(name, t.data as *mut f32, t.ndim, t.shape, t.strides, false).map(Some)
}

/// Validates an input descriptor given by value.
pub(crate) fn input_value(t: &ss2d_const_tensor, name: &'static str) -> Res<View> {
    View::new(name, t.data as *mut f32, t.ndim, t.shape, t.strides, false)
}

/// Validates a required output descriptor.
///
/// # Safety
/// `t` is NULL or points to a valid descriptor.
pub(crate) unsafe fn output(t: *const ss2d_tensor, name: &'static str) -> Res<View> {
    // SAFETY: forwarded contract.
    match unsafe { optional_output(t, name) }? {
        Some(v) => Ok(v),
        None => Err(bad(
            ss2d_status::SS2D_NULL_POINTER,
            format!("required output `{name}` is NULL"),
        )),
    }
}

/// Validates an optional output descriptor (NULL = not wanted).
///
/// # Safety
/// `t` is NULL or points to a valid descriptor.
pub(crate) unsafe fn optional_output(
    t: *const ss2d_tensor,
    name: &'static str,
) -> Res<Option<View>> {
    // SAFETY: NULL checked by `as_ref`; otherwise valid by the caller's contract.
    let Some(t) = (unsafe { t.as_ref() }) else {
        return Ok(None);
    };
    View::new(name, t.data, t.ndim, t.shape, t.strides, true).map(Some)
}

/// A flat buffer (the caller's scratch) as a view for the overlap checks.
pub(crate) fn flat(name: &'static str, ptr: *mut f32, len: usize) -> Res<View> {
    let mut shape = [0usize; SS2D_MAX_DIMS];
    let mut strides = [0isize; SS2D_MAX_DIMS];
    shape[0] = len;
    strides[0] = 1;
    View::new(name, ptr, 1, shape, strides, true)
}

/// Refuses outputs that overlap each other or any input.
pub(crate) fn check_disjoint(outputs: &[&View], inputs: &[&View]) -> Res<()> {
    for (i, a) in outputs.iter().enumerate() {
        for b in outputs[i + 1..].iter().chain(inputs.iter()) {
            if a.overlaps(b) {
                return Err(bad(
                    ss2d_status::SS2D_OVERLAP,
                    format!(
                        "output `{}` overlaps `{}` (the memory ranges they span intersect)",
                        a.name, b.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_walk_the_order_from_any_start() {
        let o = Order {
            shape: vec![3, 1, 4, 5],
            strides: vec![-7, 0, 30, 2],
        };
        let n = 60;
        let want: Vec<isize> = (0..n)
            .map(|i| {
                let (a, c, d) = (i / 20, (i / 5) % 4, i % 5);
                -7 * a as isize + 30 * c as isize + 2 * d as isize
            })
            .collect();
        for start in 0..n {
            for len in [0, 1, 3, 5, 7, 21, n - start] {
                let len = len.min(n - start);
                let mut got = Vec::new();
                o.for_each_range(start, len, |i, off| {
                    assert_eq!(i, got.len());
                    got.push(off);
                });
                assert_eq!(got, want[start..start + len], "start {start} len {len}");
            }
        }
        let scalar = Order {
            shape: vec![],
            strides: vec![],
        };
        let mut calls = 0;
        scalar.for_each_range(0, 1, |i, off| {
            assert_eq!((i, off), (0, 0));
            calls += 1;
        });
        assert_eq!(calls, 1);
    }
}
