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
