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

/// Pixels `w0 .. w0 + out.len() / c` of output row `oh` of a channel-last depthwise
/// convolution: `img` is one `(h, w, c)` image, `taps` the `k x k` kernels transposed to
/// `(k*k, c)` (tap `(i, j)` of channel `ch` at `(i*k + j)*c + ch`), `bias` `(c,)`, and `out`
/// holds whole pixels of `c` channels. Every output is [`depthwise_plane`]'s per-element
/// expression (taps ascending as FMAs onto 0, then `+ bias`), so both layouts give the same
/// bits; with `silu`, SiLU follows on the output vector before it is stored (the bits of
/// [`crate::math::map`] with `MathFn::Silu` over the outputs). Errors name what is wrong (buffer lengths, a row or pixel range outside the image,
/// zero channels); nothing is written on error.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_cl_row(
    taps: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    h: usize,
    w: usize,
    c: usize,
    img: &[f32],
    oh: usize,
    w0: usize,
    silu: bool,
    out: &mut [f32],
) -> Result<(), Error> {
    check_cl(taps, bias, k, h, w, c, img)?;
    if !out.len().is_multiple_of(c) {
        return Err(Error::Mismatch {
            what: "conv output (whole pixels of C channels)",
            expected: out.len() / c * c,
            actual: out.len(),
        });
    }
    let n = out.len() / c;
    if oh >= h {
        return Err(Error::Mismatch {
            what: "conv output row (below H)",
            expected: h.saturating_sub(1),
            actual: oh,
        });
    }
    if w0.checked_add(n).is_none_or(|e| e > w) {
        return Err(Error::Mismatch {
            what: "conv output pixels (within W)",
            expected: w.saturating_sub(w0),
            actual: n,
        });
    }
    if n == 0 {
        return Ok(());
    }
    crate::platform::dispatch!(
        SimdLevel::current(),
        slices::depthwise_cl_row(taps, bias, k, h, w, c, img, oh, w0, silu, out)
    );
    Ok(())
}

/// The checks the channel-last entry points share: channels, taps, bias and input lengths.
#[allow(clippy::too_many_arguments)]
fn check_cl(
    taps: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    h: usize,
    w: usize,
    c: usize,
    img: &[f32],
) -> Result<(), Error> {
    if c == 0 {
        return Err(Error::Zero {
            field: "conv channels",
        });
    }
    check_len("conv taps", mul("k*k*C", mul("k*k", k, k)?, c)?, taps.len())?;
    if let Some(b) = bias {
        check_len("conv bias", c, b.len())?;
    }
    check_len("conv input", mul("H*W*C", mul("H*W", h, w)?, c)?, img.len())
}

/// Whole output rows `oh .. oh + out.len() / (w * c)` of the channel-last depthwise conv of
/// [`depthwise_cl_row`] (same arguments, `out` holding whole rows of `w` pixels): the same
/// values to the bit as one [`depthwise_cl_row`] call per row, faster where a 3 x 3 kernel's
/// rows come in pairs with their neighbours inside the image (each input vector then serves
/// both rows). Errors as [`depthwise_cl_row`]'s, and [`Error::Mismatch`] when `out` is not
/// whole rows or its last row is not below `H`; nothing is written on error.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_cl_rows(
    taps: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    h: usize,
    w: usize,
    c: usize,
    img: &[f32],
    oh: usize,
    silu: bool,
    out: &mut [f32],
) -> Result<(), Error> {
    check_cl(taps, bias, k, h, w, c, img)?;
    let row = mul("W*C", w, c)?;
    let rows = out.len().checked_div(row).unwrap_or(0);
    if rows * row != out.len() {
        return Err(Error::Mismatch {
            what: "conv output (whole rows of W*C)",
            expected: rows * row,
            actual: out.len(),
        });
    }
    if oh.checked_add(rows).is_none_or(|end| end > h) {
        return Err(Error::Mismatch {
            what: "conv output rows (within H)",
            expected: h.saturating_sub(oh),
            actual: rows,
        });
    }
    if rows == 0 {
        return Ok(());
    }
    crate::platform::dispatch!(
        SimdLevel::current(),
        slices::depthwise_cl_rows(taps, bias, k, h, w, c, img, oh, silu, out)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
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

    /// `got` equals `want` bit for bit (NaN payloads included), element `q` named by `what(q)`.
    fn assert_bits(got: &[f32], want: &[f32], what: impl Fn(usize) -> std::string::String) {
        assert_eq!(got.len(), want.len());
        for (q, (v, x)) in got.iter().zip(want).enumerate() {
            assert_eq!(v.to_bits(), x.to_bits(), "{}", what(q));
        }
    }

    /// Every pixel of images with full and partial channel panels, every odd `k`, row ranges
    /// that start and end anywhere: the same bits as the channel-first plane kernel on each
    /// channel (which the test above checks against f64), and the error variants.
    #[test]
    fn depthwise_cl_row_is_the_plane_kernel() {
        let mut cases = 0;
        for (k, h, w, c) in [
            (3, 5, 21, 19),
            (1, 3, 9, 33),
            (5, 4, 13, 16),
            (7, 6, 11, 5),
            (3, 1, 2, 40),
            (3, 4, 3, 32),
            // One row (no neighbour rows), two rows (each the first or the last), with full
            // and partial channel panels.
            (3, 1, 11, 16),
            (3, 2, 10, 33),
        ] {
            let f = |i: usize, s: u32| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 500.0 - 1.0
            };
            let wk: [f32; 49 * 40] = core::array::from_fn(|i| f(i, 3));
            let wk = &wk[..k * k * c];
            let mut taps = [0.0f32; 49 * 40];
            for ch in 0..c {
                for t in 0..k * k {
                    taps[t * c + ch] = wk[ch * k * k + t];
                }
            }
            let taps = &taps[..k * k * c];
            let bias: [f32; 40] = core::array::from_fn(|i| f(i, 9));
            let img: [f32; 2048] = core::array::from_fn(|i| f(i, 5));
            let img = &img[..h * w * c];
            // The plane kernel, channel by channel.
            let mut want = [0.0f32; 2048];
            let mut plane = [0.0f32; 256];
            let mut pout = [0.0f32; 256];
            let mut scratch = [0.0f32; 1024];
            for ch in 0..c {
                for p in 0..h * w {
                    plane[p] = img[p * c + ch];
                }
                depthwise_plane(
                    &wk[ch * k * k..(ch + 1) * k * k],
                    Some(bias[ch]),
                    k,
                    h,
                    w,
                    &plane[..h * w],
                    &mut pout[..h * w],
                    &mut scratch[..depthwise_plane_scratch(k, h, w)],
                )
                .unwrap();
                for p in 0..h * w {
                    want[p * c + ch] = pout[p];
                }
            }
            for oh in 0..h {
                for (w0, w1) in [(0, w), (1, w), (0, w / 2), (w / 2, w)] {
                    if w0 > w1 {
                        continue;
                    }
                    for silu in [false, true] {
                        let mut out = [f32::NAN; 2048];
                        let out = &mut out[..(w1 - w0) * c];
                        let b = Some(&bias[..c]);
                        depthwise_cl_row(taps, b, k, h, w, c, img, oh, w0, silu, out).unwrap();
                        // With `silu`: the bits of a separate SiLU pass over the outputs.
                        let mut want_row = [0.0f32; 2048];
                        let want_row = &mut want_row[..out.len()];
                        let at = (oh * w + w0) * c;
                        want_row.copy_from_slice(&want[at..at + out.len()]);
                        if silu {
                            crate::math::map(crate::math::MathFn::Silu, want_row);
                        }
                        assert_bits(out, want_row, |q| {
                            std::format!("k={k} {h}x{w}x{c} row {oh} from {w0} silu {silu}: {q}")
                        });
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases >= 120, "{cases}");
        // Bad input: an error naming it, nothing written.
        let (taps, img) = ([0.5f32; 9 * 4], [1.0f32; 3 * 3 * 4]);
        let mut out = [7.0f32; 8];
        let e = |r: Result<(), Error>| r.unwrap_err();
        assert!(matches!(
            e(depthwise_cl_row(
                &taps, None, 3, 3, 3, 0, &img, 0, 0, false, &mut out
            )),
            Error::Zero { .. }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps[1..],
                None,
                3,
                3,
                3,
                4,
                &img,
                0,
                0,
                false,
                &mut out
            )),
            Error::Length {
                tensor: "conv taps",
                ..
            }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps,
                Some(&[0.0; 3]),
                3,
                3,
                3,
                4,
                &img,
                0,
                0,
                false,
                &mut out
            )),
            Error::Length {
                tensor: "conv bias",
                ..
            }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps,
                None,
                3,
                3,
                3,
                4,
                &img[1..],
                0,
                0,
                false,
                &mut out
            )),
            Error::Length {
                tensor: "conv input",
                ..
            }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps,
                None,
                3,
                3,
                3,
                4,
                &img,
                0,
                0,
                false,
                &mut out[..7]
            )),
            Error::Mismatch { .. }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps, None, 3, 3, 3, 4, &img, 3, 0, false, &mut out
            )),
            Error::Mismatch { .. }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps, None, 3, 3, 3, 4, &img, 0, 2, false, &mut out
            )),
            Error::Mismatch { .. }
        ));
        assert!(matches!(
            e(depthwise_cl_row(
                &taps,
                None,
                3,
                3,
                3,
                4,
                &img,
                0,
                usize::MAX,
                false,
                &mut out
            )),
            Error::Mismatch { .. }
        ));
        assert_eq!(out, [7.0; 8]);
    }

    /// Whole rows at once equal one `depthwise_cl_row` call per row, bit for bit: row pairs
    /// inside the image (the paired kernel at 16 lanes), odd counts, boundary rows, partial
    /// channel panels, widths below and at the pixel group's minimum, other kernel sizes.
    #[test]
    fn depthwise_cl_rows_are_rows_of_depthwise_cl_row() {
        use std::vec::Vec;
        let f = |i: usize, s: u32| {
            (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 500.0 - 1.0
        };
        let mut cases = 0;
        for (k, h, w, c) in [
            (3, 6, 12, 16),
            (3, 7, 21, 35),
            (3, 5, 10, 32),
            (3, 9, 19, 17),
            (3, 4, 9, 16),
            (3, 2, 12, 16),
            (5, 6, 12, 16),
            (1, 3, 11, 20),
        ] {
            let taps: Vec<f32> = (0..k * k * c).map(|i| f(i, 3)).collect();
            let bias: Vec<f32> = (0..c).map(|i| f(i, 9)).collect();
            let img: Vec<f32> = (0..h * w * c).map(|i| f(i, 5)).collect();
            for b in [Some(&bias[..]), None] {
                for silu in [false, true] {
                    let mut want = std::vec![0.0f32; h * w * c];
                    for (oh, o) in want.chunks_exact_mut(w * c).enumerate() {
                        depthwise_cl_row(&taps, b, k, h, w, c, &img, oh, 0, silu, o).unwrap();
                    }
                    for oh in 0..=h {
                        for rows in 0..=h - oh {
                            let mut out = std::vec![f32::NAN; rows * w * c];
                            depthwise_cl_rows(&taps, b, k, h, w, c, &img, oh, silu, &mut out)
                                .unwrap();
                            let at = oh * w * c;
                            assert_bits(&out, &want[at..at + out.len()], |q| {
                                std::format!("k={k} {h}x{w}x{c} rows {oh}+{rows} silu {silu}: {q}")
                            });
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases >= 400, "{cases}");
    }

    /// Bad input to `depthwise_cl_rows`: the error naming it, nothing written.
    #[test]
    fn depthwise_cl_rows_refuses_bad_input() {
        let (taps, img, bias) = ([0.5f32; 9 * 4], [1.0f32; 3 * 3 * 4], [0.0f32; 4]);
        let mut out = [7.0f32; 24];
        let mut run =
            |taps: &[f32], b: Option<&[f32]>, c: usize, img: &[f32], oh: usize, n: usize| {
                depthwise_cl_rows(taps, b, 3, 3, 3, c, img, oh, true, &mut out[..n])
            };
        assert_eq!(
            run(&taps, None, 0, &img, 0, 12),
            Err(Error::Zero {
                field: "conv channels"
            })
        );
        assert_eq!(
            run(&taps[..35], None, 4, &img, 0, 12),
            Err(Error::Length {
                tensor: "conv taps",
                expected: 36,
                actual: 35
            })
        );
        assert_eq!(
            run(&taps, Some(&bias[..3]), 4, &img, 0, 12),
            Err(Error::Length {
                tensor: "conv bias",
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            run(&taps, None, 4, &img[..35], 0, 12),
            Err(Error::Length {
                tensor: "conv input",
                expected: 36,
                actual: 35
            })
        );
        assert_eq!(
            run(&taps, None, 4, &img, 0, 13),
            Err(Error::Mismatch {
                what: "conv output (whole rows of W*C)",
                expected: 12,
                actual: 13
            })
        );
        assert_eq!(
            run(&taps, None, 4, &img, 2, 24),
            Err(Error::Mismatch {
                what: "conv output rows (within H)",
                expected: 1,
                actual: 2
            })
        );
        assert_eq!(
            run(&taps, None, 4, &img, usize::MAX, 12),
            Err(Error::Mismatch {
                what: "conv output rows (within H)",
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(run(&taps, None, 4, &img, 3, 0), Ok(()));
        assert_eq!(out, [7.0; 24]);
    }
}
