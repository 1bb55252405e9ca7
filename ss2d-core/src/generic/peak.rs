//! The FMA peak micro-kernel at one level (see `crate::peak`).

use super::{fma, splat, to_arr, LANES};
use crate::peak::CHAINS;

level_fn! {
    /// `iters` rounds of one FMA on each of [`CHAINS`] independent accumulators; returns the
    /// sum of all lanes (so the work cannot be removed). Plain loops only: a closure would be
    /// compiled without the level's target features.
    #[inline(never)]
    pub(crate) fn fma_chains(iters: usize, x: f32) -> (f32, usize) {
        let m = splat(x);
        let c = splat(1.0 - x);
        let mut acc = [splat(0.0); CHAINS];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = splat(i as f32);
        }
        for _ in 0..iters {
            macro_rules! step {
                ($($i:literal)*) => { $( acc[$i] = fma(acc[$i], m, c); )* };
            }
            step!(0 1 2 3 4 5 6 7 8 9);
        }
        let mut s = splat(0.0);
        for a in acc {
            s += a;
        }
        let mut t = 0.0;
        for v in to_arr(s) {
            t += v;
        }
        (t, LANES)
    }
}
