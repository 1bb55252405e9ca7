//! The 1D selective scan on an executor.

use ss2d_core::{Error, ScanArgs, ScanPlan, ScanShape, Walk};

use crate::pool::Buf;
use crate::Parallelism;

/// [`ss2d_core::selective_scan`] on `par`, with scratch from the per-thread buffer pool.
/// Bitwise identical for every executor and thread count.
pub fn selective_scan(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    par: Parallelism<'_>,
) -> Result<(), Error> {
    scan(shape, walk, args, out, final_state, par, None)
}

/// Scratch elements [`selective_scan_with_scratch`] needs for `shape` on `par`: one slot of
/// the kernel's scratch per item that may run at once.
pub fn selective_scan_scratch_len(shape: &ScanShape, par: Parallelism<'_>) -> Result<usize, Error> {
    let v = shape.validate()?;
    let per = ss2d_core::scratch_len(&v);
    let slots = par.scratch_slots(par.items_for(v.units()));
    slots.checked_mul(per).ok_or(Error::Overflow {
        what: "scratch size",
    })
}

/// [`selective_scan`] with the caller's scratch (at least
/// [`selective_scan_scratch_len`] elements, contents unspecified on entry and exit):
/// [`Error::Scratch`] when it is shorter, before anything is written.
pub fn selective_scan_with_scratch(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    par: Parallelism<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    scan(shape, walk, args, out, final_state, par, Some(scratch))
}

fn scan(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    par: Parallelism<'_>,
    arena: Option<&mut [f32]>,
) -> Result<(), Error> {
    let plan = ScanPlan::new(
        shape,
        walk,
        *args,
        out.len(),
        final_state.as_deref().map(<[f32]>::len),
    )?;
    let per = plan.scratch_len();
    if par.is_sequential() {
        let mut own = None;
        let scratch = match arena {
            Some(a) => a,
            None => &mut own.insert(Buf::new(per))[..],
        };
        return plan.run(out, final_state, scratch);
    }
    let count = par.items_for(plan.units());
    if let Some(a) = &arena {
        let needed = par
            .scratch_slots(count)
            .checked_mul(per)
            .ok_or(Error::Overflow {
                what: "scratch size",
            })?;
        if a.len() < needed {
            return Err(Error::Scratch {
                needed,
                actual: a.len(),
            });
        }
    }
    let mut items = plan.split(out, final_state, count)?;
    let items: Vec<_> = items.items().collect();
    par.try_for_each_scratch(items, per, arena, |item, scratch| item.run(scratch))
}
