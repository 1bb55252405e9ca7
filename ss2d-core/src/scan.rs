//! The 1D selective scan driver: validation, packing of panels, work items.
//!
//! ```text
//! for unit in items:                                   // (batch b, channel panel): independent
//!     h = initial_state or 0; A2 = A * log2(e)         // LANES channels of one B/C group
//!     for chunk of CHUNK steps along the walk:         // sequential, carries h
//!         pack: dt = softplus(delta + bias), dtu = dt * u, y = D * u, B/C rows -> (step, n)
//!         kernel::chunk                                // the recurrence (kernel.rs)
//!         unpack: out = y * silu(z)
//!     final_state = h
//! ```

use core::marker::PhantomData;

use crate::error::{check_len, mul, Error};
use crate::level::{SimdLevel, MAX_LANES};
use crate::platform::dispatch;
use crate::shape::{ScanShape, ValidShape};
use crate::walk::Walk;

/// Steps per chunk: the packed panels of a chunk (dt, dtu, y: `3 * CHUNK` vectors, 12 KiB
/// with 16 lanes) plus the packed B/C rows (`CHUNK * 2N` floats, 8 KiB at N = 16) stay in L1.
pub const CHUNK: usize = 64;

/// Inputs of a selective scan, under the reference's names (`docs/semantics.md` section 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanArgs<'a> {
    /// `u`: (batch, dim, seqlen) or (batch, seqlen, dim) per the shape's layout.
    pub u: &'a [f32],
    /// `delta`: raw dt, same shape as `u`.
    pub delta: &'a [f32],
    /// `A`: (dim, dstate).
    pub a: &'a [f32],
    /// `B`: (dim, dstate) constant or (batch, groups, dstate, seqlen).
    pub b: &'a [f32],
    /// `C`: like `B`.
    pub c: &'a [f32],
    /// `D`: (dim,) skip connection.
    pub d_skip: Option<&'a [f32]>,
    /// `z`: gate, same shape as `u`; the output is multiplied by `silu(z)`.
    pub z: Option<&'a [f32]>,
    /// `delta_bias`: (dim,), added to `delta` before the softplus.
    pub delta_bias: Option<&'a [f32]>,
    /// Apply `softplus` to `delta + delta_bias`.
    pub delta_softplus: bool,
    /// State before the first step, (batch, dim, dstate); zero when `None`.
    pub initial_state: Option<&'a [f32]>,
}

/// Validates shape, walk and every buffer length. `state_len` is the final-state buffer's
/// length when one is given.
pub(crate) fn validate(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out_len: usize,
    state_len: Option<usize>,
) -> Result<ValidShape, Error> {
    let v = shape.validate()?;
    walk.validate(shape.seqlen)?;
    let bdl = v.bdl;
    let dn = mul("dim*dstate", shape.dim, shape.dstate)?;
    let bdn = mul("batch*dim*dstate", shape.batch, dn)?;
    check_len("u", bdl, args.u.len())?;
    check_len("delta", bdl, args.delta.len())?;
    check_len("A", dn, args.a.len())?;
    check_len("B", shape.bc_len(shape.b)?, args.b.len())?;
    check_len("C", shape.bc_len(shape.c)?, args.c.len())?;
    if let Some(d) = args.d_skip {
        check_len("D", shape.dim, d.len())?;
    }
    if let Some(z) = args.z {
        check_len("z", bdl, z.len())?;
    }
    if let Some(b) = args.delta_bias {
        check_len("delta_bias", shape.dim, b.len())?;
    }
    if let Some(s) = args.initial_state {
        check_len("initial_state", bdn, s.len())?;
    }
    check_len("out", bdl, out_len)?;
    if let Some(n) = state_len {
        check_len("final_state", bdn, n)?;
    }
    Ok(v)
}

/// Scratch (`f32` elements) one work item needs for this shape; one buffer per thread.
///
/// The same for every SIMD level (it is computed for the widest, [`MAX_LANES`]), so a scratch
/// sized once serves a plan pinned to any level.
pub fn scratch_len(shape: &ValidShape) -> usize {
    let n = shape.shape.dstate;
    // h, A2, constant B, constant C, then dt, dtu, y, u panels; then packed B and C rows
    // (each with `LANES` floats of slack for whole-vector stores, see `pack_rows_run`).
    vectors_len(4 * n + 4 * CHUNK) + 2 * (CHUNK * n + MAX_LANES)
}

/// Scratch `f32`s needed to hold `n` aligned vectors of any level, whatever the buffer's
/// alignment (saturating: a size that does not fit in `usize` cannot be provided anyway).
pub(crate) const fn vectors_len(n: usize) -> usize {
    n.saturating_mul(MAX_LANES).saturating_add(MAX_LANES)
}

/// Runs the whole scan on the calling thread.
///
/// `out` has the shape of `u`; `final_state`, when given, receives the state after the last
/// step, (batch, dim, dstate). On error nothing is written.
pub fn selective_scan(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    let plan = ScanPlan::new(
        shape,
        walk,
        *args,
        out.len(),
        final_state.as_deref().map(<[f32]>::len),
    )?;
    plan.run(out, final_state, scratch)
}

/// A validated scan, ready to run as a whole or as work items on a host's threads.
#[derive(Clone, Copy, Debug)]
pub struct ScanPlan<'a> {
    pub(crate) v: ValidShape,
    pub(crate) walk: Walk,
    pub(crate) args: ScanArgs<'a>,
    out_len: usize,
    state_len: Option<usize>,
    /// An available level (checked by `new` / `with_level`).
    level: SimdLevel,
}

impl<'a> ScanPlan<'a> {
    /// Validates everything; `out_len` and `state_len` are the lengths of the output buffers
    /// that will be passed to [`ScanPlan::run`] or [`ScanPlan::split`]. The plan runs at
    /// [`SimdLevel::current`] (the best level of the CPU unless the process pinned one).
    pub fn new(
        shape: &ScanShape,
        walk: &Walk,
        args: ScanArgs<'a>,
        out_len: usize,
        state_len: Option<usize>,
    ) -> Result<Self, Error> {
        let level = SimdLevel::current();
        let v = validate(shape, walk, &args, out_len, state_len)?.for_lanes(level.lanes());
        Ok(ScanPlan {
            v,
            walk: *walk,
            args,
            out_len,
            state_len,
            level,
        })
    }

    /// The same plan at `level` (e.g. to compare levels, or to pin one); its work split
    /// ([`ScanPlan::units`]) follows the level's lane count. [`Error::Unsupported`] when the
    /// CPU (or this build) lacks the level.
    pub fn with_level(self, level: SimdLevel) -> Result<Self, Error> {
        level.check()?;
        Ok(ScanPlan {
            v: self.v.for_lanes(level.lanes()),
            level,
            ..self
        })
    }

    /// The SIMD level this plan runs at.
    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// The validated shape.
    pub fn shape(&self) -> &ValidShape {
        &self.v
    }

    /// Independent work units (`batch x channel panels`).
    pub fn units(&self) -> usize {
        self.v.units
    }

    /// Scratch elements per work item (see [`scratch_len`]).
    pub fn scratch_len(&self) -> usize {
        scratch_len(&self.v)
    }

    fn check_out(&self, out: &[f32], state: Option<&[f32]>) -> Result<(), Error> {
        check_len("out", self.out_len, out.len())?;
        match (self.state_len, state) {
            (Some(n), Some(s)) => check_len("final_state", n, s.len()),
            (None, None) => Ok(()),
            (Some(n), None) => check_len("final_state", n, 0),
            (None, Some(s)) => check_len("final_state", 0, s.len()),
        }
    }

    /// Runs every unit on the calling thread.
    pub fn run(
        &self,
        out: &mut [f32],
        state: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.check_out(out, state.as_deref())?;
        let need = self.scratch_len();
        if scratch.len() < need {
            return Err(Error::Scratch {
                needed: need,
                actual: scratch.len(),
            });
        }
        if self.nothing_to_do(state.is_some()) {
            return Ok(());
        }
        let out = Sink::new(out);
        let state = state.map(Sink::new);
        self.run_units(0..self.v.units, &out, state.as_ref(), scratch);
        Ok(())
    }

    /// Splits the scan into `count` work items over disjoint parts of the outputs; each item is
    /// `Send` and runs with its own scratch of [`ScanPlan::scratch_len`] elements. Any `count`
    /// gives bitwise the same result. `count` is clamped to `1..=units` (at least 1).
    pub fn split<'o>(
        &'o self,
        out: &'o mut [f32],
        state: Option<&'o mut [f32]>,
        count: usize,
    ) -> Result<WorkItems<'o>, Error> {
        self.check_out(out, state.as_deref())?;
        let count = count.clamp(1, self.v.units.max(1));
        Ok(WorkItems {
            plan: self,
            out: Sink::new(out),
            state: state.map(Sink::new),
            next: 0,
            count,
        })
    }

    /// Runs units at the plan's level.
    fn run_units(
        &self,
        units: core::ops::Range<usize>,
        out: &Sink<'_>,
        state: Option<&Sink<'_>>,
        scratch: &mut [f32],
    ) {
        dispatch!(
            self.level,
            scan::run_units(self, units, out, state, scratch)
        )
    }

    /// True when a run writes nothing: no positions and no final state (then a huge batch
    /// must not cost a loop over its units).
    fn nothing_to_do(&self, has_state: bool) -> bool {
        self.v.shape.seqlen == 0 && !has_state
    }
}

/// `Some(rev)` when the walk visits consecutive positions, `start + s` (or `start - s` when
/// `rev`) at step `s`: forward and reversed 1D walks, cross-scan directions 0 and 2.
pub(crate) fn linear_walk(w: &Walk) -> Option<bool> {
    let (oc, os) = w.outer;
    let (ic, is) = w.inner;
    let step = if ic <= 1 {
        if oc <= 1 {
            1
        } else {
            os
        }
    } else if oc <= 1 || isize::try_from(ic).ok().and_then(|c| c.checked_mul(is)) == Some(os) {
        is
    } else {
        return None;
    };
    match step {
        1 => Some(false),
        -1 => Some(true),
        _ => None,
    }
}

/// An output buffer shared by work items that write disjoint elements.
///
/// Built from a `&mut [f32]`, so nothing else can access the buffer while it lives. Each
/// work item writes only the elements of its own units (disjoint by construction of the
/// unit partition), so concurrent `put`s from different items never touch the same element.
pub(crate) struct Sink<'o> {
    ptr: *mut f32,
    len: usize,
    _m: PhantomData<&'o mut [f32]>,
}

// SAFETY: a Sink is a `&mut [f32]` split among work items that write disjoint elements (see
// the type docs); f32 is Send, so sending or sharing it between threads is sound.
unsafe impl Send for Sink<'_> {}
// SAFETY: as above: concurrent `put`s through a shared Sink never target the same element.
unsafe impl Sync for Sink<'_> {}

impl<'o> Sink<'o> {
    pub(crate) fn new(s: &'o mut [f32]) -> Self {
        Sink {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _m: PhantomData,
        }
    }

    /// Writes (or adds, when `ADD`) `vals` at `start..start + vals.len()`; out-of-range writes
    /// are dropped (validation makes them impossible).
    #[inline(always)]
    pub(crate) fn put_slice<const ADD: bool>(&self, start: usize, vals: &[f32]) {
        if start <= self.len && vals.len() <= self.len - start {
            if ADD {
                for (i, &v) in vals.iter().enumerate() {
                    // SAFETY: in bounds (checked above); by the work-item partition only this
                    // item touches these elements while the buffer is exclusively borrowed.
                    unsafe { *self.ptr.add(start + i) += v };
                }
            } else {
                // SAFETY: as above; the source is a distinct local slice.
                unsafe {
                    core::ptr::copy_nonoverlapping(vals.as_ptr(), self.ptr.add(start), vals.len())
                };
            }
        }
    }

    /// Writes `vals` at `start..` (see [`Sink::put_slice`]).
    #[inline(always)]
    pub(crate) fn put(&self, start: usize, vals: &[f32]) {
        self.put_slice::<false>(start, vals)
    }

    /// Start of the buffer, for prefetch hints only (never dereferenced through this).
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *const f32 {
        self.ptr
    }

    /// Number of elements.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Start of the buffer, for the vector stores of `generic::vecs::SinkLanes` (whose
    /// callers keep to the bounds and the work-item partition, see the type docs).
    #[inline(always)]
    pub(crate) fn as_mut_ptr(&self) -> *mut f32 {
        self.ptr
    }
}

/// The work items of a split scan (iterator; each item is yielded exactly once).
pub struct WorkItems<'o> {
    plan: &'o ScanPlan<'o>,
    out: Sink<'o>,
    state: Option<Sink<'o>>,
    next: usize,
    count: usize,
}

/// One work item: a contiguous range of units. `Send`, so a host pool can run it anywhere.
pub struct WorkItem<'o> {
    plan: &'o ScanPlan<'o>,
    out: &'o Sink<'o>,
    state: Option<&'o Sink<'o>>,
    units: core::ops::Range<usize>,
}

impl<'o> WorkItems<'o> {
    /// Number of items.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Borrowing iterator over the items (each yielded once per `WorkItems`).
    pub fn items(&mut self) -> impl Iterator<Item = WorkItem<'_>> + '_ {
        let (plan, count, units) = (self.plan, self.count, self.plan.v.units);
        let out = &self.out;
        let state = self.state.as_ref();
        let start = self.next;
        self.next = count;
        (start..count).map(move |i| WorkItem {
            plan,
            out,
            state,
            units: share(i, units, count)..share(i + 1, units, count),
        })
    }
}

/// `i * units / count` without overflow (`i <= count`, so the result is at most `units`).
pub(crate) fn share(i: usize, units: usize, count: usize) -> usize {
    (i as u128 * units as u128 / count.max(1) as u128) as usize
}

impl WorkItem<'_> {
    /// Runs the item with its own scratch of [`ScanPlan::scratch_len`] elements.
    pub fn run(self, scratch: &mut [f32]) -> Result<(), Error> {
        let need = self.plan.scratch_len();
        if scratch.len() < need {
            return Err(Error::Scratch {
                needed: need,
                actual: scratch.len(),
            });
        }
        if self.plan.nothing_to_do(self.state.is_some()) {
            return Ok(());
        }
        self.plan
            .run_units(self.units, self.out, self.state, scratch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::shape::{BcLayout, Layout};

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, lo: f32, hi: f32) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
        }
    }

    const BUF: usize = 6000;

    fn check(shape: ScanShape, walk: Walk, with_z: bool) {
        let mut g = Lcg(7);
        let bdl = shape.batch * shape.dim * shape.seqlen;
        let mut fill = |n: usize, lo: f32, hi: f32| -> [f32; BUF] {
            let mut a = [0.0; BUF];
            for x in a.iter_mut().take(n) {
                *x = g.next(lo, hi);
            }
            a
        };
        let u = fill(bdl, -1.0, 1.0);
        let delta = fill(bdl, -3.0, 0.5);
        let z = fill(bdl, -2.0, 2.0);
        let a = fill(shape.dim * shape.dstate, -3.0, -0.1);
        let bl = shape.bc_len(shape.b).unwrap();
        let cl = shape.bc_len(shape.c).unwrap();
        let bb = fill(bl, -1.0, 1.0);
        let cc = fill(cl, -1.0, 1.0);
        let dd = fill(shape.dim, 0.5, 1.5);
        let bias = fill(shape.dim, -1.0, 0.0);
        let args = ScanArgs {
            u: &u[..bdl],
            delta: &delta[..bdl],
            a: &a[..shape.dim * shape.dstate],
            b: &bb[..bl],
            c: &cc[..cl],
            d_skip: Some(&dd[..shape.dim]),
            z: if with_z { Some(&z[..bdl]) } else { None },
            delta_bias: Some(&bias[..shape.dim]),
            delta_softplus: true,
            initial_state: None,
        };
        let mut out = [0.0f32; BUF];
        let mut want = [0.0f64; BUF];
        let mut scratch = [0.0f32; 8192];
        let v = shape.validate().unwrap();
        let need = scratch_len(&v);
        reference::selective_scan::<f64>(&shape, &walk, &args, &mut want[..bdl], None).unwrap();
        let m = want[..bdl].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut levels = 0;
        for level in SimdLevel::available() {
            levels += 1;
            let plan = ScanPlan::new(&shape, &walk, args, bdl, None)
                .unwrap()
                .with_level(level)
                .unwrap();
            assert_eq!(plan.level(), level);
            out[..bdl].fill(f32::NAN);
            plan.run(&mut out[..bdl], None, &mut scratch[..need])
                .unwrap();
            for i in 0..bdl {
                let e = (out[i] as f64 - want[i]).abs();
                assert!(
                    e <= 1e-5 * m + 1e-6,
                    "{level} {shape:?} {walk:?} i={i} got {} want {}",
                    out[i],
                    want[i]
                );
            }
        }
        assert!(levels >= 1);
    }

    #[test]
    fn kernel_matches_reference_small() {
        for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
            for (dim, n, g) in [(3, 4, 1), (40, 16, 2), (17, 1, 1), (34, 3, 2)] {
                for (bl, cl) in [
                    (BcLayout::Grouped(g), BcLayout::Grouped(g)),
                    (BcLayout::Constant, BcLayout::Grouped(g)),
                    (BcLayout::Grouped(g), BcLayout::Constant),
                ] {
                    let seqlen = 37;
                    let shape = ScanShape {
                        batch: 2,
                        dim,
                        seqlen,
                        dstate: n,
                        b: bl,
                        c: cl,
                        layout,
                    };
                    check(shape, Walk::forward(seqlen), true);
                    check(shape, Walk::reverse(seqlen), false);
                    check(shape, Walk::cross(37, 1, 1).unwrap(), false);
                }
            }
        }
    }

    /// One state (VMamba's released models), channel-first: lengths with and without a tail
    /// vector, forward and reversed, initial and final state, constant and grouped B/C,
    /// softplus on and off; against the f64 reference at every level, and bitwise the same for
    /// every split of the work.
    #[test]
    fn one_state_time_in_lanes_matches_reference_and_splits() {
        let mut cases = 0;
        for (seqlen, dim, g) in [(1, 3, 1), (15, 5, 1), (16, 4, 2), (17, 6, 3), (100, 18, 2)] {
            for (bl, cl) in [
                (BcLayout::Grouped(g), BcLayout::Grouped(g)),
                (BcLayout::Constant, BcLayout::Constant),
            ] {
                let shape = ScanShape {
                    batch: 2,
                    dim,
                    seqlen,
                    dstate: 1,
                    b: bl,
                    c: cl,
                    layout: Layout::ChannelFirst,
                };
                for (walk, softplus) in [
                    (Walk::forward(seqlen), true),
                    (Walk::reverse(seqlen), false),
                ] {
                    one_state_case(shape, walk, softplus);
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 20);
    }

    fn one_state_case(shape: ScanShape, walk: Walk, softplus: bool) {
        let mut g = Lcg(11);
        let bdl = shape.batch * shape.dim * shape.seqlen;
        let mut fill = |n: usize, lo: f32, hi: f32| -> [f32; BUF] {
            let mut a = [0.0; BUF];
            for x in a.iter_mut().take(n) {
                *x = g.next(lo, hi);
            }
            a
        };
        let u = fill(bdl, -1.0, 1.0);
        // Without the softplus, dt is delta + bias itself: keep it positive (dA < 1).
        let (lo, hi) = if softplus { (-3.0, 0.5) } else { (1.05, 1.5) };
        let delta = fill(bdl, lo, hi);
        let a = fill(shape.dim, -3.0, -0.1);
        let bl = shape.bc_len(shape.b).unwrap();
        let cl = shape.bc_len(shape.c).unwrap();
        let bb = fill(bl, -1.0, 1.0);
        let cc = fill(cl, -1.0, 1.0);
        let dd = fill(shape.dim, 0.5, 1.5);
        let bias = fill(shape.dim, -1.0, 0.0);
        let h0 = fill(shape.batch * shape.dim, -1.0, 1.0);
        let z = fill(bdl, -2.0, 2.0);
        let sl = shape.batch * shape.dim;
        let args = ScanArgs {
            u: &u[..bdl],
            delta: &delta[..bdl],
            a: &a[..shape.dim],
            b: &bb[..bl],
            c: &cc[..cl],
            d_skip: Some(&dd[..shape.dim]),
            z: Some(&z[..bdl]),
            delta_bias: Some(&bias[..shape.dim]),
            delta_softplus: softplus,
            initial_state: Some(&h0[..sl]),
        };
        let mut want = [0.0f64; BUF];
        let mut want_st = [0.0f64; 64];
        reference::selective_scan::<f64>(
            &shape,
            &walk,
            &args,
            &mut want[..bdl],
            Some(&mut want_st[..sl]),
        )
        .unwrap();
        let m = want[..bdl].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let ms = want_st[..sl].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut scratch = [0.0f32; 8192];
        let mut levels = 0;
        for level in SimdLevel::available() {
            levels += 1;
            let plan = ScanPlan::new(&shape, &walk, args, bdl, Some(sl))
                .unwrap()
                .with_level(level)
                .unwrap();
            let need = plan.scratch_len();
            let mut out = [f32::NAN; BUF];
            let mut st = [f32::NAN; 64];
            plan.run(&mut out[..bdl], Some(&mut st[..sl]), &mut scratch[..need])
                .unwrap();
            for i in 0..bdl {
                let e = (out[i] as f64 - want[i]).abs();
                // `!(e <= tol)` fails on NaN too.
                assert!(
                    e <= 1e-5 * m + 1e-6,
                    "{level} {shape:?} {walk:?} i={i} got {} want {}",
                    out[i],
                    want[i]
                );
            }
            for i in 0..sl {
                let e = (st[i] as f64 - want_st[i]).abs();
                assert!(
                    e <= 1e-5 * ms + 1e-6,
                    "{level} state {i}: {} vs {}",
                    st[i],
                    want_st[i]
                );
            }
            for count in 1..=plan.units() {
                let mut o2 = [f32::NAN; BUF];
                let mut s2 = [f32::NAN; 64];
                {
                    let mut items = plan
                        .split(&mut o2[..bdl], Some(&mut s2[..sl]), count)
                        .unwrap();
                    for item in items.items() {
                        item.run(&mut scratch[..need]).unwrap();
                    }
                }
                for i in 0..bdl {
                    assert_eq!(
                        o2[i].to_bits(),
                        out[i].to_bits(),
                        "{level} split {count} i={i}"
                    );
                }
                for i in 0..sl {
                    assert_eq!(s2[i].to_bits(), st[i].to_bits(), "{level} split {count}");
                }
            }
        }
        assert!(levels >= 1);
    }

    #[test]
    fn kernel_matches_reference_chunks_tails_and_walks() {
        // Several chunks plus a tail, partial panels, state blocks beyond one vector, and
        // every kind of walk (runs up and down, strided 2D directions).
        for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
            for (dim, n, g) in [(20, 16, 2), (20, 20, 1), (20, 1, 2), (20, 2, 1), (16, 3, 1)] {
                let (hh, ww) = (10, 15);
                let seqlen = hh * ww;
                let shape = ScanShape {
                    batch: 1,
                    dim,
                    seqlen,
                    dstate: n,
                    b: BcLayout::Grouped(g),
                    c: BcLayout::Grouped(g),
                    layout,
                };
                check(shape, Walk::forward(seqlen), true);
                check(shape, Walk::reverse(seqlen), false);
                for k in 0..4 {
                    check(shape, Walk::cross(hh, ww, k).unwrap(), false);
                }
            }
        }
    }
}
