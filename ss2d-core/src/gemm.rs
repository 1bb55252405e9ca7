//! A register-blocked `f32` matrix product for the skinny shapes of the SS2D layer (`k` and
//! one of `m`, `n` in the hundreds, the other in the thousands), with the bias and SiLU of its
//! projections applied while the results are in registers.
//!
//! `C (m x n) = A (m x k) B (k x n)`, then `+ bias` (per row or per column), then optionally
//! SiLU. `A` is any strided view (its elements are broadcast), `B` and `C` have unit column
//! stride (their rows are vectors of lanes):
//!
//! - channel-first activations `out (o, L) = W (o, i) x (i, L)`: `A = W` (stored transposed,
//!   `W^T (i, o)`, as strides `(1, o)`: a tile's broadcasts are adjacent), `B = x`, bias per row;
//! - channel-last `out (L, o) = x (L, i) W^T (i, o)`: `A = x`, `B = W^T`, bias per column.
//!
//! ## Determinism and accuracy
//! Every output element is the same sequence of operations whatever its position, the sizes,
//! or how a caller splits a product into calls: `acc = 0`, then `acc = fma(a[i, p], b[p, j],
//! acc)` for `p` ascending (multiply and add on levels without FMA), then `+ bias`, then SiLU
//! (the vector [`MathFn::Silu`](crate::math::MathFn::Silu) of [`crate::math::map`], bitwise).
//! Results are bitwise identical for any split over threads; across levels they differ by
//! rounding (FMA or not).

use crate::error::{mul, Error};
use crate::level::SimdLevel;

/// The bias of a [`Product`], added after the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Bias<'a> {
    /// No bias.
    #[default]
    None,
    /// `bias[i]` added to row `i` (`m` values).
    Row(&'a [f32]),
    /// `bias[j]` added to column `j` (`n` values).
    Col(&'a [f32]),
}

/// One product `C = A B (+ bias) (SiLU)`; [`Product::run`] checks every view before it
/// writes.
#[derive(Clone, Copy, Debug)]
pub struct Product<'a> {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// `A`: element `(i, p)` at `a[i * a_strides.0 + p * a_strides.1]`.
    pub a: &'a [f32],
    /// Row and column stride of `A`.
    pub a_strides: (usize, usize),
    /// `B`: element `(p, j)` at `b[p * b_row_stride + j]`.
    pub b: &'a [f32],
    /// Row stride of `B`.
    pub b_row_stride: usize,
    /// The bias.
    pub bias: Bias<'a>,
    /// SiLU after the bias.
    pub silu: bool,
}

/// The checked product as the kernels take it (pointers into the views; null biases absent).
pub(crate) struct Raw {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) a: *const f32,
    pub(crate) ars: usize,
    pub(crate) acs: usize,
    pub(crate) b: *const f32,
    pub(crate) brs: usize,
    pub(crate) c: *mut f32,
    /// Row stride of `C`, or its column stride when `ct`.
    pub(crate) crs: usize,
    /// `C` stored transposed: element `(i, j)` at `c[j * crs + i]`.
    pub(crate) ct: bool,
    pub(crate) bias_row: *const f32,
    pub(crate) bias_col: *const f32,
    pub(crate) silu: bool,
}

/// Elements a `rows x cols` view with these strides spans (`0` when empty).
fn span(
    what: &'static str,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<usize, Error> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    let last = mul(what, rows - 1, rs)?
        .checked_add(mul(what, cols - 1, cs)?)
        .and_then(|x| x.checked_add(1))
        .ok_or(Error::Overflow { what })?;
    Ok(last)
}

/// `len >= need`, else [`Error::Length`].
fn at_least(tensor: &'static str, need: usize, len: usize) -> Result<(), Error> {
    if len >= need {
        Ok(())
    } else {
        Err(Error::Length {
            tensor,
            expected: need,
            actual: len,
        })
    }
}

impl Product<'_> {
    /// Writes `C` into `c` (element `(i, j)` at `c[i * c_row_stride + j]`; elements between
    /// the rows are left as they are), at [`SimdLevel::current`].
    ///
    /// Errors (nothing written): [`Error::Length`] when a view reaches past its slice
    /// (`expected` is the elements it spans: `A`, `B`, `C`) or a bias does not have `m`
    /// (`Row`) or `n` (`Col`) values (`bias`); [`Error::Mismatch`] when `c_row_stride < n`
    /// with more than one row (rows of `C` would overlap); [`Error::Overflow`] when a span
    /// overflows.
    pub fn run(&self, c: &mut [f32], c_row_stride: usize) -> Result<(), Error> {
        self.run_at(SimdLevel::current(), c, c_row_stride)
    }

    /// [`Product::run`] at `level`; [`Error::Unsupported`] when the CPU lacks it.
    pub fn run_at(
        &self,
        level: SimdLevel,
        c: &mut [f32],
        c_row_stride: usize,
    ) -> Result<(), Error> {
        self.run_impl(level, c, c_row_stride, false)
    }

    /// Writes `C` transposed into `c`: element `(i, j)` at `c[j * c_col_stride + i]` (a
    /// channel-first output from channel-last activations, without a separate transpose:
    /// the register tile is transposed before it is stored). The same values, bit for bit,
    /// as [`Product::run`], at [`SimdLevel::current`].
    ///
    /// Errors (nothing written): as [`Product::run`], with [`Error::Mismatch`] when
    /// `c_col_stride < m` with more than one column.
    pub fn run_transposed(&self, c: &mut [f32], c_col_stride: usize) -> Result<(), Error> {
        self.run_transposed_at(SimdLevel::current(), c, c_col_stride)
    }

    /// [`Product::run_transposed`] at `level`; [`Error::Unsupported`] when the CPU lacks it.
    pub fn run_transposed_at(
        &self,
        level: SimdLevel,
        c: &mut [f32],
        c_col_stride: usize,
    ) -> Result<(), Error> {
        self.run_impl(level, c, c_col_stride, true)
    }

    /// Checks the views and runs the product; `ct`: `C` stored transposed (`cs` apart per
    /// column instead of per row).
    fn run_impl(&self, level: SimdLevel, c: &mut [f32], cs: usize, ct: bool) -> Result<(), Error> {
        level.check()?;
        let (m, k, n) = (self.m, self.k, self.n);
        let (ars, acs) = self.a_strides;
        at_least("A", span("A span", m, k, ars, acs)?, self.a.len())?;
        at_least(
            "B",
            span("B span", k, n, self.b_row_stride, 1)?,
            self.b.len(),
        )?;
        // `C`'s rows as stored: `m` rows of `n` (or, transposed, `n` columns of `m`), `cs`
        // apart, which must not overlap.
        let (lines, width, what) = if ct {
            (n, m, "C column stride >= m")
        } else {
            (m, n, "C row stride >= n")
        };
        at_least("C", span("C span", lines, width, cs, 1)?, c.len())?;
        if lines > 1 && width > 0 && cs < width {
            return Err(Error::Mismatch {
                what,
                expected: width,
                actual: cs,
            });
        }
        let (bias_row, bias_col) = match self.bias {
            Bias::None => (core::ptr::null(), core::ptr::null()),
            Bias::Row(v) => {
                crate::error::check_len("bias", m, v.len())?;
                (v.as_ptr(), core::ptr::null())
            }
            Bias::Col(v) => {
                crate::error::check_len("bias", n, v.len())?;
                (core::ptr::null(), v.as_ptr())
            }
        };
        if m == 0 || n == 0 {
            return Ok(());
        }
        let raw = Raw {
            m,
            k,
            n,
            a: self.a.as_ptr(),
            ars,
            acs,
            b: self.b.as_ptr(),
            brs: self.b_row_stride,
            c: c.as_mut_ptr(),
            crs: cs,
            ct,
            bias_row,
            bias_col,
            silu: self.silu,
        };
        // SAFETY: every element of `A`, `B`, `C` and the bias lies inside its slice (spans
        // checked above, `k > 0` for `A` and `B` reads), rows of `C` do not overlap, and `c`
        // is borrowed exclusively for the call. (`dispatch!` wraps the `#[target_feature]`
        // levels in `unsafe` of its own; this block is for the portable level's call.)
        #[allow(unused_unsafe)]
        unsafe {
            crate::platform::dispatch!(level, gemm::matmul(&raw))
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn fill(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 2000) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    fn silu(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    /// The naive triple loop in f64, with the padding elements of `C` kept.
    #[allow(clippy::too_many_arguments)]
    fn naive(p: &Product<'_>, c0: &[f32], crs: usize) -> Vec<f64> {
        let mut c: Vec<f64> = c0.iter().map(|&x| x as f64).collect();
        for i in 0..p.m {
            for j in 0..p.n {
                let mut acc = 0.0f64;
                for q in 0..p.k {
                    acc += p.a[i * p.a_strides.0 + q * p.a_strides.1] as f64
                        * p.b[q * p.b_row_stride + j] as f64;
                }
                acc += match p.bias {
                    Bias::None => 0.0,
                    Bias::Row(v) => v[i] as f64,
                    Bias::Col(v) => v[j] as f64,
                };
                c[i * crs + j] = if p.silu { silu(acc) } else { acc };
            }
        }
        c
    }

    #[derive(Clone, Copy, Debug)]
    struct Case {
        m: usize,
        k: usize,
        n: usize,
        a_t: bool,
        pad: usize,
        bias: u8,
        silu: bool,
        seed: u32,
    }

    /// Runs `case` at every level against the naive loop; returns the levels run.
    fn check(case: Case) -> usize {
        let Case {
            m,
            k,
            n,
            a_t,
            pad,
            bias,
            silu,
            seed,
        } = case;
        // `A` stored transposed (strides (1, m)) or plain (k, 1), with a spare element.
        let a = fill(m * k + 1, seed);
        let a_strides = if a_t { (1, m) } else { (k, 1) };
        let brs = n + pad;
        let b = fill(k * brs, seed + 1);
        let br = fill(m, seed + 2);
        let bc = fill(n, seed + 3);
        let p = Product {
            m,
            k,
            n,
            a: &a,
            a_strides,
            b: &b,
            b_row_stride: brs,
            bias: match bias {
                0 => Bias::None,
                1 => Bias::Row(&br),
                _ => Bias::Col(&bc),
            },
            silu,
        };
        let crs = n + pad;
        let c0 = fill(m * crs, seed + 4);
        let want = naive(&p, &c0, crs);
        let mut levels = 0;
        for level in SimdLevel::available() {
            let mut c = c0.clone();
            p.run_at(level, &mut c, crs).unwrap();
            for (idx, (&g, &w)) in c.iter().zip(&want).enumerate() {
                let tol = 1e-5 * (1.0 + k as f64);
                let ok = (g as f64 - w).abs() <= tol;
                assert!(ok, "{level} {case:?} at {idx}: {g} vs {w}");
            }
            if silu {
                // The SiLU epilogue is `math::map`'s SiLU on the biased product, bitwise.
                let mut plain = c0.clone();
                Product { silu: false, ..p }
                    .run_at(level, &mut plain, crs)
                    .unwrap();
                for row in plain.chunks_mut(crs) {
                    let cols = row.len().min(n);
                    crate::math::map_at(level, crate::math::MathFn::Silu, &mut row[..cols])
                        .unwrap();
                }
                let same = c
                    .iter()
                    .zip(&plain)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{level} {case:?}: the SiLU epilogue differs from math::map's"
                );
            }
            // Split into two calls by rows and by columns: bitwise the same.
            let (mh, nh) = (m / 2, n / 2);
            let mut c2 = c0.clone();
            // The bias of rows `r` and columns `c` of the product.
            let sub = |r: core::ops::Range<usize>, c: core::ops::Range<usize>| match p.bias {
                Bias::Row(v) => Bias::Row(&v[r]),
                Bias::Col(v) => Bias::Col(&v[c]),
                Bias::None => Bias::None,
            };
            let top = Product {
                m: mh,
                bias: sub(0..mh, 0..n),
                ..p
            };
            let bottom = Product {
                m: m - mh,
                // `get`: with `k = 0` the operands are empty.
                a: a.get(mh * a_strides.0..).unwrap_or(&[]),
                bias: sub(mh..m, 0..n),
                ..p
            };
            top.run_at(level, &mut c2, crs).unwrap();
            bottom.run_at(level, &mut c2[mh * crs..], crs).unwrap();
            let mut c3 = c0.clone();
            let left = Product {
                n: nh,
                bias: sub(0..m, 0..nh),
                ..p
            };
            let right = Product {
                n: n - nh,
                b: b.get(nh..).unwrap_or(&[]),
                bias: sub(0..m, nh..n),
                ..p
            };
            left.run_at(level, &mut c3, crs).unwrap();
            right.run_at(level, &mut c3[nh..], crs).unwrap();
            for (x, y) in [(&c, &c2), (&c, &c3)] {
                let same = x
                    .iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{level} {case:?}: a split changed the result");
            }
            // Stored transposed (column stride `m + pad`): the same bits at the mirrored
            // index, the padding between the columns untouched.
            let ccs = m + pad;
            let ct0 = fill(n * ccs, seed + 5);
            let mut ct = ct0.clone();
            p.run_transposed_at(level, &mut ct, ccs).unwrap();
            for (idx, (&g, &w0)) in ct.iter().zip(&ct0).enumerate() {
                let (j, i) = (idx / ccs, idx % ccs);
                let want = if i < m { c[i * crs + j] } else { w0 };
                assert!(
                    g.to_bits() == want.to_bits(),
                    "{level} {case:?}: transposed ({i}, {j}): {g} vs {want}"
                );
            }
            levels += 1;
        }
        levels
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_the_naive_loop_at_every_level(
            m in 1usize..20,
            k in 0usize..300,
            n in 1usize..100,
            a_t: bool,
            pad in 0usize..3,
            bias in 0u8..3,
            silu: bool,
            seed in 0u32..1000,
        ) {
            let levels = check(Case { m, k, n, a_t, pad, bias, silu, seed });
            prop_assert!(levels > 0);
        }
    }

    /// `k = 0` (empty operands: the result is the bias, then the activation), both A
    /// layouts, with the row and column splits of `check` (a CI proptest run once drew it).
    #[test]
    fn empty_inner_dimension() {
        for a_t in [false, true] {
            for bias in 0..3 {
                let case = Case {
                    m: 3,
                    k: 0,
                    n: 5,
                    a_t,
                    pad: 1,
                    bias,
                    silu: true,
                    seed: 3,
                };
                assert!(check(case) > 0);
            }
        }
    }

    #[test]
    fn layer_shapes_match_the_naive_loop() {
        // Channel-first 96 -> 192 over a 64-position block; channel-last 40 positions
        // 192 -> 96 with a column bias and SiLU.
        for (m, k, n, a_t, bias, silu) in
            [(192, 96, 64, true, 1, false), (40, 192, 96, false, 2, true)]
        {
            let case = Case {
                m,
                k,
                n,
                a_t,
                pad: 1,
                bias,
                silu,
                seed: 7,
            };
            assert!(check(case) > 0);
        }
    }

    #[test]
    fn nan_propagates() {
        let a = [1.0, f32::NAN, 2.0, 3.0];
        let b = [1.0; 2];
        let mut c = [0.0f32; 2];
        let p = Product {
            m: 2,
            k: 2,
            n: 1,
            a: &a,
            a_strides: (2, 1),
            b: &b,
            b_row_stride: 1,
            bias: Bias::None,
            silu: false,
        };
        for level in SimdLevel::available() {
            p.run_at(level, &mut c, 1).unwrap();
            assert!(c[0].is_nan(), "{level}");
            assert_eq!(c[1], 5.0, "{level}");
        }
    }

    #[test]
    fn bad_views_are_refused_without_writing() {
        let a = [1.0f32; 6];
        let b = [1.0f32; 6];
        let ok = Product {
            m: 2,
            k: 3,
            n: 2,
            a: &a,
            a_strides: (3, 1),
            b: &b,
            b_row_stride: 2,
            bias: Bias::None,
            silu: false,
        };
        let mut c = [f32::NAN; 4];
        ok.run(&mut c, 2).unwrap();
        assert_eq!(c, [3.0; 4]);
        let len = |tensor, expected, actual| Error::Length {
            tensor,
            expected,
            actual,
        };
        let cases: [(Product<'_>, usize, usize, Error); 6] = [
            (Product { a: &a[..5], ..ok }, 4, 2, len("A", 6, 5)),
            (Product { b: &b[..5], ..ok }, 4, 2, len("B", 6, 5)),
            (ok, 3, 2, len("C", 4, 3)),
            (
                ok,
                4,
                1,
                Error::Mismatch {
                    what: "C row stride >= n",
                    expected: 2,
                    actual: 1,
                },
            ),
            (
                Product {
                    bias: Bias::Row(&a[..1]),
                    ..ok
                },
                4,
                2,
                len("bias", 2, 1),
            ),
            (
                Product {
                    a_strides: (usize::MAX, 1),
                    ..ok
                },
                4,
                2,
                Error::Overflow { what: "A span" },
            ),
        ];
        for (p, clen, crs, want) in cases {
            let mut c = [f32::NAN; 4];
            assert_eq!(p.run(&mut c[..clen], crs), Err(want));
            assert!(c.iter().all(|x| x.is_nan()));
        }
        // Transposed: `C` spans `(n - 1) * stride + m`, the stride is at least `m`.
        let tall = Product {
            m: 3,
            a: &a[..],
            a_strides: (2, 1),
            k: 2,
            ..ok
        };
        let mut c = [f32::NAN; 6];
        tall.run_transposed(&mut c, 3).unwrap();
        assert_eq!(c, [2.0; 6]);
        let cases = [
            (6, 4, len("C", 7, 6)),
            (5, 3, len("C", 6, 5)),
            (
                6,
                2,
                Error::Mismatch {
                    what: "C column stride >= m",
                    expected: 3,
                    actual: 2,
                },
            ),
        ];
        for (clen, ccs, want) in cases {
            let mut c = [f32::NAN; 6];
            assert_eq!(tall.run_transposed(&mut c[..clen], ccs), Err(want));
            assert!(c.iter().all(|x| x.is_nan()));
        }
    }
}
