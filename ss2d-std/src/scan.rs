//! The 1D selective scan on threads.

use rayon::prelude::*;
use ss2d_core::{Error, ScanArgs, ScanPlan, ScanShape, Walk};

use crate::Parallelism;

/// Work items per thread: more than one so uneven items balance.
const ITEMS_PER_THREAD: usize = 4;

/// [`ss2d_core::selective_scan`] on `par`'s threads, allocating the scratch itself.
/// Bitwise identical for every thread count.
pub fn selective_scan(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let plan = ScanPlan::new(
        shape,
        walk,
        *args,
        out.len(),
        final_state.as_deref().map(<[f32]>::len),
    )?;
    let scratch_len = plan.scratch_len();
    if par.is_sequential() {
        let mut scratch = vec![0.0f32; scratch_len];
        return plan.run(out, final_state, &mut scratch);
    }
    let count = par.threads() * ITEMS_PER_THREAD;
    let mut items = plan.split(out, final_state, count)?;
    let items: Vec<_> = items.items().collect();
    par.install(|| {
        items.into_par_iter().try_for_each_init(
            || vec![0.0f32; scratch_len],
            |scratch, item| item.run(scratch),
        )
    })
}
