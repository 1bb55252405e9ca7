//! Depthwise 2D convolution of one channel plane on lanes (the SS2D layer's `conv2d`, with
//! `groups = channels`, stride 1 and `k / 2` zero padding), at the current SIMD level.

use crate::error::{check_len, mul, Error};
use crate::level::{SimdLevel, MAX_LANES};

/// Scratch floats [`depthwise_plane`] needs for a `k x k` kernel over an `h x w` plane: the
/// zero-bordered copy of the plane plus one vector of slack. Saturates where the size does
/// not fit (such a scratch cannot exist).
pub fn depthwise_plane_scratch(k: usize, h: usize, w: usize) -> usize {
    let p = k / 2;
    h.saturating_add(2 * p)
        .saturating_mul(w.saturating_add(2 * p))
        .saturating_add(MAX_LANES)
}

/// `out[y, x] = sum over taps (i, j) ascending of weight[i, j] * in[y + i - k/2, x + j - k/2]`
/// (zero outside the plane), then `+ bias`: one channel of a depthwise convolution.
///
/// `weight` is `k x k`, `inp` and `out` are `h x w` (row-major), `scratch` at least
/// [`depthwise_plane_scratch`] floats (its contents do not matter). Every output is computed
/// with the same per-element expression (FMA where the level has it), so results do not
/// depend on where a row's vectors start. Errors name the buffer whose length is wrong;
/// nothing is written on error.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_plane(
    weight: &[f32],
    bias: Option<f32>,
    k: usize,
    h: usize,
    w: usize,
    inp: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    check_len("conv weight", mul("k*k", k, k)?, weight.len())?;
    let hw = mul("H*W", h, w)?;
    check_len("conv input", hw, inp.len())?;
    check_len("conv output", hw, out.len())?;
    let need = depthwise_plane_scratch(k, h, w);
    if scratch.len() < need {
        return Err(Error::Scratch {
            needed: need,
            actual: scratch.len(),
        });
    }
    if hw == 0 || k == 0 {
        out.fill(bias.unwrap_or(0.0));
        return Ok(());
    }
    crate::platform::dispatch!(
        SimdLevel::current(),
        slices::depthwise_plane(weight, bias, k, h, w, inp, out, scratch)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planes wide enough for several groups of vectors plus a partial one, every odd `k`,
    /// against a naive f64 convolution.
    #[test]
    fn depthwise_plane_matches_naive() {
        let mut cases = 0;
        for (k, h, w) in [(3, 5, 70), (1, 3, 33), (5, 4, 65), (7, 9, 17), (3, 2, 128)] {
            let f = |i: usize, s: u32| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 500.0 - 1.0
            };
            let wk: [f32; 49] = core::array::from_fn(|i| f(i, 3));
            let wk = &wk[..k * k];
            let mut inp = [0.0f32; 1152];
            for (i, x) in inp.iter_mut().enumerate() {
                *x = f(i, 5);
            }
            let inp = &inp[..h * w];
            let mut out = [f32::NAN; 1152];
            let mut scratch = [0.0f32; 2048];
            depthwise_plane(
                wk,
                Some(0.25),
                k,
                h,
                w,
                inp,
                &mut out[..h * w],
                &mut scratch[..depthwise_plane_scratch(k, h, w)],
            )
            .unwrap();
            let p = (k / 2) as isize;
            for y in 0..h {
                for x in 0..w {
                    let mut want = 0.25f64;
                    for i in 0..k {
                        for j in 0..k {
                            let (yy, xx) =
                                (y as isize + i as isize - p, x as isize + j as isize - p);
                            if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                want += f64::from(wk[i * k + j])
                                    * f64::from(inp[yy as usize * w + xx as usize]);
                            }
                        }
                    }
                    let got = f64::from(out[y * w + x]);
                    // `!(e <= tol)` fails on NaN (an unwritten output) too.
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "k={k} {h}x{w} ({y},{x}): {got} vs {want}"
                    );
                }
            }
            cases += 1;
        }
        assert_eq!(cases, 5);
    }
}
