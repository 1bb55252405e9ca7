//! The naive scalar selective scan: the specification in code.
//!
//! A line-for-line transcription of mamba's `selective_scan_ref` (docs/semantics.md section 1),
//! generic over the float type so tests can run it in `f64` as an oracle. It shares no code
//! with the SIMD kernel: its own index arithmetic, libm's `exp`/`log1p`, the torch softplus
//! threshold, one channel and one position at a time.

use crate::error::Error;
use crate::scan::ScanArgs;
use crate::shape::{BcLayout, Layout, ScanShape};
use crate::walk::Walk;

/// Float types the reference runs in.
pub trait Real:
    Copy
    + PartialOrd
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
    + core::ops::Neg<Output = Self>
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Conversion from the `f32` inputs.
    fn of(x: f32) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `ln(1 + x)`.
    fn log1p(self) -> Self;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn of(x: f32) -> f32 {
        x
    }
    fn exp(self) -> f32 {
        libm::expf(self)
    }
    fn log1p(self) -> f32 {
        libm::log1pf(self)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn of(x: f32) -> f64 {
        x as f64
    }
    fn exp(self) -> f64 {
        libm::exp(self)
    }
    fn log1p(self) -> f64 {
        libm::log1p(self)
    }
}

/// Runs the reference scan. Same contract as [`crate::selective_scan`]: validates everything,
/// writes `out` (and `final_state`) only on success. Needs no scratch.
pub fn selective_scan<T: Real>(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [T],
    mut final_state: Option<&mut [T]>,
) -> Result<(), Error> {
    let v = crate::scan::validate(
        shape,
        walk,
        args,
        out.len(),
        final_state.as_deref().map(<[T]>::len),
    )?;
    let s = v.shape();
    let (bs, dm, ln, ns) = (s.batch, s.dim, s.seqlen, s.dstate);
    // Index of (b, d, l) in u / delta / z / out.
    let idx = |b: usize, d: usize, l: usize| match s.layout {
        Layout::ChannelFirst => (b * dm + d) * ln + l,
        Layout::ChannelLast => (b * ln + l) * dm + d,
    };
    // Value of B or C for (b, d, n, l).
    let bc = |t: &[f32], layout: BcLayout, b: usize, d: usize, n: usize, l: usize| match layout {
        BcLayout::Constant => t[d * ns + n],
        BcLayout::Grouped(g) => {
            let grp = d / (dm / g);
            t[((b * g + grp) * ns + n) * ln + l]
        }
    };
    if bs == 0 || dm == 0 || (ln == 0 && final_state.is_none()) {
        // Nothing to write: do not loop over a (possibly huge) batch or batch x dim.
        return Ok(());
    }
    let twenty = T::of(20.0);
    let mut h = [T::ZERO; crate::shape::MAX_DSTATE];
    for b in 0..bs {
        for d in 0..dm {
            for (n, hn) in h[..ns].iter_mut().enumerate() {
                *hn = match args.initial_state {
                    Some(st) => T::of(st[(b * dm + d) * ns + n]),
                    None => T::ZERO,
                };
            }
            for l in walk.iter() {
                let i = idx(b, d, l);
                let u = T::of(args.u[i]);
                let mut dt = T::of(args.delta[i]);
                if let Some(bias) = args.delta_bias {
                    dt = dt + T::of(bias[d]);
                }
                if args.delta_softplus && dt <= twenty {
                    dt = dt.exp().log1p();
                }
                let mut y = T::ZERO;
                for (n, hn) in h[..ns].iter_mut().enumerate() {
                    let da = (dt * T::of(args.a[d * ns + n])).exp();
                    let dbu = dt * T::of(bc(args.b, s.b, b, d, n, l)) * u;
                    *hn = da * *hn + dbu;
                    y = y + *hn * T::of(bc(args.c, s.c, b, d, n, l));
                }
                if let Some(dd) = args.d_skip {
                    y = y + u * T::of(dd[d]);
                }
                if let Some(z) = args.z {
                    let z = T::of(z[i]);
                    y = y * (z / (T::ONE + (-z).exp()));
                }
                out[i] = y;
            }
            if let Some(fs) = final_state.as_deref_mut() {
                fs[(b * dm + d) * ns..(b * dm + d + 1) * ns].copy_from_slice(&h[..ns]);
            }
        }
    }
    Ok(())
}
