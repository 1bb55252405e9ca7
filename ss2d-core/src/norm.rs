//! LayerNorm over the channels of channel-last rows (the SS2D layer's `out_norm`), on lanes at
//! the current SIMD level.
//!
//! Per row of `c` values: `mean` and the (biased) variance as lane sums in a fixed order, `rstd
//! = 1 / sqrt(var + eps)`, then `out = (x - mean) * rstd`, and with an affine `out * weight +
//! bias` (an FMA where the level has one). Every row is computed on its own, so results do not
//! depend on how a caller splits the rows; across levels the sums' order differs (rounding
//! only).

use crate::error::{check_len, Error};
use crate::level::SimdLevel;

/// LayerNorm of each row of `c` values of `y` into `out` (same length), with an optional
/// affine `(weight, bias)` of `c` values each.
///
/// Errors (nothing written): [`Error::Zero`] for `c = 0`; [`Error::Length`] naming `norm
/// input` when `y` is not whole rows, `norm output` when `out` is not as long as `y`, `norm
/// weight` or `norm bias` when they do not have `c` values.
pub fn layer_norm_rows(
    c: usize,
    eps: f32,
    affine: Option<(&[f32], &[f32])>,
    y: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    if c == 0 {
        return Err(Error::Zero {
            field: "norm channels",
        });
    }
    if !y.len().is_multiple_of(c) {
        return Err(Error::Length {
            tensor: "norm input",
            expected: y.len() / c * c,
            actual: y.len(),
        });
    }
    check_len("norm output", y.len(), out.len())?;
    if let Some((w, b)) = affine {
        check_len("norm weight", c, w.len())?;
        check_len("norm bias", c, b.len())?;
    }
    crate::platform::dispatch!(
        SimdLevel::current(),
        slices::layer_norm_rows(c, eps, affine, y, out)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// The f64 LayerNorm of one row.
    fn naive(row: &[f32], eps: f32, affine: Option<(&[f32], &[f32])>) -> Vec<f64> {
        let c = row.len() as f64;
        let mean = row.iter().map(|&x| x as f64).sum::<f64>() / c;
        let var = row.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / c;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        row.iter()
            .enumerate()
            .map(|(i, &x)| {
                let n = (x as f64 - mean) * rstd;
                match affine {
                    Some((w, b)) => n * w[i] as f64 + b[i] as f64,
                    None => n,
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn rows_match_the_f64_norm(
            c in 1usize..70,
            rows in 1usize..5,
            shift in -100.0f32..100.0,
            seed in 0u32..1000,
            with_affine: bool,
        ) {
            let v = |i: usize, s: u32| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 2000) as f32 / 1000.0 - 1.0
            };
            let y: Vec<f32> = (0..rows * c).map(|i| v(i, seed) + shift).collect();
            let w: Vec<f32> = (0..c).map(|i| v(i, seed + 1)).collect();
            let b: Vec<f32> = (0..c).map(|i| v(i, seed + 2)).collect();
            let affine = with_affine.then_some((&w[..], &b[..]));
            let mut out = vec![f32::NAN; rows * c];
            layer_norm_rows(c, 1e-5, affine, &y, &mut out).unwrap();
            let mut compared = 0;
            for (r, (row, o)) in y.chunks(c).zip(out.chunks(c)).enumerate() {
                let want = naive(row, 1e-5, affine);
                // The centred values lose the bits of the shift: error relative to it.
                let tol = 1e-5 * (1.0 + shift.abs() as f64);
                for (i, (&g, &w)) in o.iter().zip(&want).enumerate() {
                    let err = (g as f64 - w).abs();
                    prop_assert!(err <= tol, "row {r} ch {i}: {g} vs {w} (tol {tol})");
                    compared += 1;
                }
                // Rows are independent: the row alone gives the same bits.
                let mut one = vec![0.0f32; c];
                layer_norm_rows(c, 1e-5, affine, row, &mut one).unwrap();
                prop_assert_eq!(
                    one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    o.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
            }
            prop_assert_eq!(compared, rows * c);
        }
    }

    #[test]
    fn bad_arguments_name_what_is_wrong_and_write_nothing() {
        let y = [1.0f32; 6];
        let w = [1.0f32; 3];
        let mut out = [7.0f32; 6];
        let e = |r: Result<(), Error>| r.unwrap_err();
        assert_eq!(
            e(layer_norm_rows(0, 1e-5, None, &y, &mut out)),
            Error::Zero {
                field: "norm channels"
            }
        );
        assert_eq!(
            e(layer_norm_rows(4, 1e-5, None, &y, &mut out)),
            Error::Length {
                tensor: "norm input",
                expected: 4,
                actual: 6
            }
        );
        assert_eq!(
            e(layer_norm_rows(3, 1e-5, None, &y, &mut out[..5])),
            Error::Length {
                tensor: "norm output",
                expected: 6,
                actual: 5
            }
        );
        assert_eq!(
            e(layer_norm_rows(3, 1e-5, Some((&w[..2], &w)), &y, &mut out)),
            Error::Length {
                tensor: "norm weight",
                expected: 3,
                actual: 2
            }
        );
        assert_eq!(
            e(layer_norm_rows(3, 1e-5, Some((&w, &w[..1])), &y, &mut out)),
            Error::Length {
                tensor: "norm bias",
                expected: 3,
                actual: 1
            }
        );
        assert_eq!(out, [7.0; 6]);
        // A constant row: mean removed exactly, zeros out; NaN propagates.
        layer_norm_rows(3, 1e-5, None, &y, &mut out).unwrap();
        assert_eq!(out, [0.0; 6]);
        let nan = [1.0, f32::NAN, 2.0];
        let mut o = [0.0f32; 3];
        layer_norm_rows(3, 1e-5, None, &nan, &mut o).unwrap();
        assert!(o.iter().all(|x| x.is_nan()));
    }
}
