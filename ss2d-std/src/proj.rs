//! The fused scan's `x_proj` on `ss2d_core::gemm`, offered to `fused` (whose `project_into`
//! runs it on the `gemm` crate through `ss2d-gemm`): same signature and result layout, so the
//! switch is one call. Not wired in yet (`fused.rs` is being rewritten on another branch).

use ss2d_core::gemm::{Bias, Product};
use ss2d_core::Error;

use crate::unfused::Ss2dScanShape;
use crate::Parallelism;

/// Positions per product item (the products are bitwise the same for any split).
const BLOCK: usize = 256;

/// `proj[b, l, k*C + c] = sum_d W[k, c, d] x[b, d, l]` into `proj` (`(B, L, 4C)` row-major,
/// `C = R + 2N`, every element written), from `x_proj_weight` `(4C, D)` and `x` in the
/// shape's layout: a drop-in for `fused::project_into`. Channel-first `x` is `A` with unit
/// row stride (the kernel's fastest broadcasts); `W` is transposed once per call (`4C x D`
/// floats, small next to the product).
///
/// Errors: [`Error::Length`] when `x_proj_weight`, `x` or `proj` do not have the shape's
/// sizes; [`Error::Overflow`] when a size overflows.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn project_into_kernel(
    shape: &Ss2dScanShape,
    x_proj_weight: &[f32],
    x: &[f32],
    proj: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let overflow = Error::Overflow {
        what: "x_proj sizes",
    };
    let (d, l) = (shape.dim, shape.h.checked_mul(shape.w).ok_or(overflow)?);
    let c4 = (shape.dt_rank + 2 * shape.dstate)
        .checked_mul(4)
        .ok_or(overflow)?;
    let len = |a: usize, b: usize, c: usize| {
        a.checked_mul(b)
            .and_then(|x| x.checked_mul(c))
            .ok_or(overflow)
    };
    for (tensor, want, got) in [
        ("x_proj_weight", len(1, c4, d)?, x_proj_weight.len()),
        ("x", len(shape.batch, d, l)?, x.len()),
        ("proj", len(shape.batch, l, c4)?, proj.len()),
    ] {
        if want != got {
            return Err(Error::Length {
                tensor,
                expected: want,
                actual: got,
            });
        }
    }
    if proj.is_empty() {
        return Ok(());
    }
    let mut wt = vec![0.0f32; c4 * d];
    for r in 0..c4 {
        for k in 0..d {
            wt[k * c4 + r] = x_proj_weight[r * d + k];
        }
    }
    let blocks_per_b = l.div_ceil(BLOCK);
    // Blocks never straddle batch items: chunk per batch item, then per BLOCK rows.
    let chunks: Vec<(usize, &mut [f32])> = proj
        .chunks_mut(l * c4)
        .flat_map(|pb| pb.chunks_mut(BLOCK * c4))
        .enumerate()
        .collect();
    par.try_for_each(chunks, |(i, dst)| {
        let (b, l0) = (i / blocks_per_b, (i % blocks_per_b) * BLOCK);
        let rows = dst.len() / c4;
        // Positions l0.. of batch item b as the rows of A (rows x D).
        let (a, a_strides) = if shape.channel_first {
            (&x[b * d * l + l0..(b + 1) * d * l], (1, l))
        } else {
            (&x[(b * l + l0) * d..(b * l + l0 + rows) * d], (d, 1))
        };
        Product {
            m: rows,
            k: d,
            n: c4,
            a,
            a_strides,
            b: &wt,
            b_row_stride: c4,
            bias: Bias::None,
            silu: false,
        }
        .run(dst, c4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross::ScanMode;
    use crate::testutil::fill;

    /// Both layouts, a grid with a partial block and two batch items, against the naive sum,
    /// and bitwise the same on 3 threads; a wrong length is refused.
    #[test]
    fn matches_the_naive_projection() {
        for channel_first in [true, false] {
            let shape = Ss2dScanShape {
                batch: 2,
                dim: 20,
                h: 17,
                w: 19,
                dstate: 3,
                dt_rank: 2,
                mode: ScanMode::Cross2d,
                channel_first,
            };
            let (d, l, c4) = (20, 17 * 19, 4 * 8);
            let w = fill(c4 * d, 1);
            let x = fill(2 * d * l, 2);
            let mut got = vec![f32::NAN; 2 * l * c4];
            project_into_kernel(&shape, &w, &x, &mut got, Parallelism::Sequential).unwrap();
            for b in 0..2 {
                for p in 0..l {
                    for r in 0..c4 {
                        let mut want = 0.0f64;
                        for k in 0..d {
                            let xv = if channel_first {
                                x[(b * d + k) * l + p]
                            } else {
                                x[(b * l + p) * d + k]
                            };
                            want += w[r * d + k] as f64 * xv as f64;
                        }
                        let g = got[(b * l + p) * c4 + r] as f64;
                        assert!((g - want).abs() <= 1e-5, "{g} vs {want}");
                    }
                }
            }
            let mut threaded = vec![0.0f32; got.len()];
            project_into_kernel(&shape, &w, &x, &mut threaded, Parallelism::Threads(3)).unwrap();
            assert!(got
                .iter()
                .zip(&threaded)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let short = &mut threaded[1..];
            let err = project_into_kernel(&shape, &w, &x, short, Parallelism::Sequential);
            assert_eq!(
                err,
                Err(Error::Length {
                    tensor: "proj",
                    expected: got.len(),
                    actual: got.len() - 1
                })
            );
        }
    }
}
