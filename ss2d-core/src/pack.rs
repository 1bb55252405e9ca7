//! Packing: moving a panel's lanes between a tensor and lane-major scratch.
//!
//! A panel's element (position `p`, lane `j`) of a `u`-shaped tensor sits at
//! `base + p * pstride + j * lstride`. Channel-last data has `lstride == 1`: a position's lanes
//! are one contiguous load. Channel-first data has `pstride == 1`: `LANES` consecutive
//! positions of `LANES` rows are loaded as rows and transposed in registers; walks that are not
//! contiguous there fall back to a gather.

use crate::scan::Sink;
use crate::simd::{load, splat, transpose, LANES, V};

/// Where a panel's lanes sit in a `u`-shaped tensor (module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lanes {
    pub base: usize,
    pub pstride: usize,
    pub lstride: usize,
    /// Lanes in use (`1..=LANES`); the rest are zero on gather and never written on scatter.
    pub nl: usize,
}

/// Direction of a block of `LANES` steps: +1 or -1 consecutive positions, or neither.
#[inline(always)]
fn run_dir(pos: &[usize]) -> i8 {
    let p0 = pos[0];
    if pos
        .iter()
        .enumerate()
        .all(|(k, &p)| p == p0.wrapping_add(k))
    {
        1
    } else if pos
        .iter()
        .enumerate()
        .all(|(k, &p)| p == p0.wrapping_sub(k))
    {
        -1
    } else {
        0
    }
}

impl Lanes {
    #[inline(always)]
    fn gather_one(&self, t: &[f32], p: usize) -> V {
        let o = self.base + p * self.pstride;
        if self.lstride == 1 && self.nl == LANES {
            load(&t[o..])
        } else {
            let mut a = [0.0f32; LANES];
            for (j, x) in a.iter_mut().enumerate().take(self.nl) {
                *x = t[o + j * self.lstride];
            }
            V::new(a)
        }
    }

    /// `dst[s]` = the panel's lanes at position `pos[s]`.
    #[inline(always)]
    pub(crate) fn gather(&self, t: &[f32], pos: &[usize], dst: &mut [V]) {
        let n = pos.len().min(dst.len());
        let mut s = 0;
        if self.pstride == 1 && self.lstride != 1 {
            while s + LANES <= n {
                let blk = &pos[s..s + LANES];
                let dir = run_dir(blk);
                if dir == 0 {
                    for k in 0..LANES {
                        dst[s + k] = self.gather_one(t, blk[k]);
                    }
                } else {
                    let lo = if dir > 0 { blk[0] } else { blk[LANES - 1] };
                    let mut m = [splat(0.0); LANES];
                    for (j, r) in m.iter_mut().enumerate().take(self.nl) {
                        *r = load(&t[self.base + j * self.lstride + lo..]);
                    }
                    transpose(&mut m);
                    let d = &mut dst[s..s + LANES];
                    if dir > 0 {
                        d.copy_from_slice(&m);
                    } else {
                        for (k, x) in d.iter_mut().enumerate() {
                            *x = m[LANES - 1 - k];
                        }
                    }
                }
                s += LANES;
            }
        }
        for k in s..n {
            dst[k] = self.gather_one(t, pos[k]);
        }
    }

    #[inline(always)]
    fn scatter_one<const ADD: bool>(&self, v: V, p: usize, out: &Sink<'_>) {
        let o = self.base + p * self.pstride;
        if self.lstride == 1 {
            out.put_lanes::<ADD>(o, v, self.nl);
        } else {
            let a = v.to_array();
            for (j, &x) in a.iter().enumerate().take(self.nl) {
                out.put_slice::<ADD>(o + j * self.lstride, core::slice::from_ref(&x));
            }
        }
    }

    /// Writes `src[s]` to the panel's lanes at position `pos[s]` (adds onto them when `ADD`).
    #[inline(always)]
    pub(crate) fn scatter<const ADD: bool>(&self, src: &[V], pos: &[usize], out: &Sink<'_>) {
        let n = pos.len().min(src.len());
        let mut s = 0;
        if self.pstride == 1 && self.lstride != 1 {
            while s + LANES <= n {
                let blk = &pos[s..s + LANES];
                let dir = run_dir(blk);
                if dir == 0 {
                    for k in 0..LANES {
                        self.scatter_one::<ADD>(src[s + k], blk[k], out);
                    }
                } else {
                    let mut m = [splat(0.0); LANES];
                    let lo = if dir > 0 {
                        m.copy_from_slice(&src[s..s + LANES]);
                        blk[0]
                    } else {
                        for (k, x) in m.iter_mut().enumerate() {
                            *x = src[s + LANES - 1 - k];
                        }
                        blk[LANES - 1]
                    };
                    transpose(&mut m);
                    for (j, r) in m.iter().enumerate().take(self.nl) {
                        out.put_lanes::<ADD>(self.base + j * self.lstride + lo, *r, LANES);
                    }
                }
                s += LANES;
            }
        }
        for k in s..n {
            self.scatter_one::<ADD>(src[k], pos[k], out);
        }
    }
}
