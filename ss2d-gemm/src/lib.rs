//! # ss2d-gemm
//!
//! A safe, bounds-checked `f32` matrix product, `dst = lhs @ rhs`, over the
//! [`gemm`](https://crates.io/crates/gemm) crate (sarah-quinones): the one place where the SS2D
//! layer crosses into `unsafe` code, so that `ss2d-std` can keep `#![forbid(unsafe_code)]`.
//!
//! Matrices are strided views of slices ([`MatRef`], [`MatMut`]): element `(i, j)` lives at
//! `data[i * row_stride + j * col_stride]`. [`matmul`] checks that every element of every view
//! lies inside its slice (and that no two destination elements share a slot) before the call,
//! so no argument can make it read or write out of bounds.
//!
//! ## Determinism
//! The product runs on the calling thread (`gemm::Parallelism::None`). `gemm` picks its kernel
//! once per process (runtime CPU detection) and its blocking from the sizes and the cache
//! sizes only, so the same call gives bitwise the same result every time. Callers that thread
//! should split the problem into blocks whose sizes do not depend on the thread count (the
//! SS2D layer does), because `gemm` picks different code paths (and so different summation
//! orders) for different shapes.
//!
//! ## Why `gemm`
//! Chosen by benchmark against `matrixmultiply` at the SS2D layer shapes; the numbers are in
//! the docs of `ss2d_std::layer` (module `gemm`).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fmt;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The backing slice.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows (elements).
    pub row_stride: usize,
    /// Distance between columns (elements).
    pub col_stride: usize,
}

/// A mutable strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The backing slice.
    pub data: &'a mut [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows (elements).
    pub row_stride: usize,
    /// Distance between columns (elements).
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix (`row_stride = cols`, `col_stride = 1`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (a view of the same data).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix (`row_stride = cols`, `col_stride = 1`).
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
}

/// Why [`matmul`] refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The inner or outer dimensions disagree: `dst (m x n) = lhs (m x k) @ rhs (k x n)`.
    Dims {
        /// `(rows, cols)` of `dst`.
        dst: (usize, usize),
        /// `(rows, cols)` of `lhs`.
        lhs: (usize, usize),
        /// `(rows, cols)` of `rhs`.
        rhs: (usize, usize),
    },
    /// A view reaches past the end of its slice (or its extent overflows `isize`).
    OutOfBounds {
        /// `dst`, `lhs` or `rhs`.
        which: &'static str,
    },
    /// Two elements of `dst` share a slot (the strides overlap).
    Aliasing,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Dims { dst, lhs, rhs } => write!(
                f,
                "matrix product dimensions disagree: dst {}x{}, lhs {}x{}, rhs {}x{}",
                dst.0, dst.1, lhs.0, lhs.1, rhs.0, rhs.1
            ),
            Error::OutOfBounds { which } => {
                write!(f, "matrix view `{which}` reaches past the end of its slice")
            }
            Error::Aliasing => write!(f, "destination strides make two elements overlap"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks that every element of a `rows x cols` view lies inside `len` and that strides fit
/// `isize`. Empty views are always fine.
fn in_bounds(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (|| {
        (rows - 1)
            .checked_mul(rs)?
            .checked_add((cols - 1).checked_mul(cs)?)
    })();
    matches!(last, Some(l) if l < len && isize::try_from(l).is_ok())
        && isize::try_from(rs).is_ok()
        && isize::try_from(cs).is_ok()
}

/// True when distinct `(i, j)` of a `rows x cols` view map to distinct offsets: one stride
/// steps over the whole extent of the other (the usual row- or column-major forms and their
/// padded variants).
fn non_aliasing(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows <= 1 && cols <= 1 {
        return true;
    }
    if rows <= 1 {
        return cs >= 1;
    }
    if cols <= 1 {
        return rs >= 1;
    }
    let col_extent = (cols - 1).saturating_mul(cs).saturating_add(1);
    let row_extent = (rows - 1).saturating_mul(rs).saturating_add(1);
    (cs >= 1 && rs >= col_extent) || (rs >= 1 && cs >= row_extent)
}

/// `dst = lhs @ rhs` (overwrites `dst`; `dst` is never read). Single-threaded; see the crate
/// docs for determinism.
///
/// Errors (nothing is written): [`Error::Dims`] when the shapes disagree,
/// [`Error::OutOfBounds`] when a view leaves its slice, [`Error::Aliasing`] when `dst`'s
/// strides overlap.
pub fn matmul(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>) -> Result<(), Error> {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    if lhs.rows != m || rhs.cols != n || rhs.rows != k {
        return Err(Error::Dims {
            dst: (dst.rows, dst.cols),
            lhs: (lhs.rows, lhs.cols),
            rhs: (rhs.rows, rhs.cols),
        });
    }
    if !in_bounds(dst.data.len(), m, n, dst.row_stride, dst.col_stride) {
        return Err(Error::OutOfBounds { which: "dst" });
    }
    if !in_bounds(lhs.data.len(), m, k, lhs.row_stride, lhs.col_stride) {
        return Err(Error::OutOfBounds { which: "lhs" });
    }
    if !in_bounds(rhs.data.len(), k, n, rhs.row_stride, rhs.col_stride) {
        return Err(Error::OutOfBounds { which: "rhs" });
    }
    if !non_aliasing(m, n, dst.row_stride, dst.col_stride) {
        return Err(Error::Aliasing);
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                dst.data[i * dst.row_stride + j * dst.col_stride] = 0.0;
            }
        }
        return Ok(());
    }
    // The `as isize` casts are lossless: `in_bounds` checked every stride against isize::MAX.
    // SAFETY: `gemm::gemm` computes `dst = 1 * lhs @ rhs` (`read_dst = false`: `dst` is only
    // written) on the calling thread (`Parallelism::None`). It touches exactly the elements
    // `dst[i*rs + j*cs]` (i < m, j < n), `lhs[i*rs + p*cs]` (i < m, p < k) and
    // `rhs[p*rs + j*cs]` (p < k, j < n) of the three views; `in_bounds` checked above that the
    // largest such offset of each view lies inside its slice, so every access is in bounds. The
    // pointers come from live slices borrowed for the whole call (`dst` mutably and
    // exclusively, so it cannot overlap `lhs` or `rhs`), and `non_aliasing` checked that no two
    // destination elements share a slot. `f32` is one of the element types `gemm` supports
    // (it panics on others), and all three pointers are `f32`-aligned.
    unsafe {
        gemm::gemm::<f32>(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let mut out = vec![0.0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
                out[i * b.cols + j] = s;
            }
        }
        out
    }

    #[test]
    fn matches_naive_in_every_layout() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (96, 96, 200),
            (2, 1, 300),
        ] {
            let a = fill(m * k, 1);
            let b = fill(k * n, 2);
            for ta in [false, true] {
                for tb in [false, true] {
                    let av = if ta {
                        MatRef::row_major(&a, k, m).t()
                    } else {
                        MatRef::row_major(&a, m, k)
                    };
                    let bv = if tb {
                        MatRef::row_major(&b, n, k).t()
                    } else {
                        MatRef::row_major(&b, k, n)
                    };
                    let want = naive(av, bv);
                    let mut c = vec![f32::NAN; m * n];
                    matmul(MatMut::row_major(&mut c, m, n), av, bv).unwrap();
                    for (x, y) in c.iter().zip(&want) {
                        assert!((*x as f64 - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} {y}");
                    }
                    // Column-major destination.
                    let mut ct = vec![f32::NAN; m * n];
                    let d = MatMut {
                        data: &mut ct,
                        rows: m,
                        cols: n,
                        row_stride: 1,
                        col_stride: m,
                    };
                    matmul(d, av, bv).unwrap();
                    for i in 0..m {
                        for j in 0..n {
                            assert_eq!(ct[j * m + i].to_bits(), c[i * n + j].to_bits());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zero_k_writes_zeros_and_empty_is_fine() {
        let mut c = vec![f32::NAN; 6];
        matmul(
            MatMut::row_major(&mut c, 2, 3),
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 3),
        )
        .unwrap();
        assert!(c.iter().all(|&x| x == 0.0));
        matmul(
            MatMut::row_major(&mut [], 0, 3),
            MatRef::row_major(&[], 0, 4),
            MatRef::row_major(&[0.0; 12], 4, 3),
        )
        .unwrap();
    }

    #[test]
    fn refuses_bad_views() {
        let a = [1.0f32; 6];
        let b = [1.0f32; 6];
        let mut c = [0.0f32; 4];
        assert!(matches!(
            matmul(
                MatMut::row_major(&mut c, 2, 2),
                MatRef::row_major(&a, 2, 3),
                MatRef::row_major(&b, 2, 3)
            ),
            Err(Error::Dims { .. })
        ));
        assert_eq!(
            matmul(
                MatMut::row_major(&mut c, 2, 2),
                MatRef::row_major(&a[..5], 2, 3),
                MatRef::row_major(&b, 3, 2)
            ),
            Err(Error::OutOfBounds { which: "lhs" })
        );
        assert_eq!(
            matmul(
                MatMut::row_major(&mut c[..3], 2, 2),
                MatRef::row_major(&a, 2, 3),
                MatRef::row_major(&b, 3, 2)
            ),
            Err(Error::OutOfBounds { which: "dst" })
        );
        let huge = MatRef {
            data: &a,
            rows: 2,
            cols: 3,
            row_stride: usize::MAX,
            col_stride: 1,
        };
        assert_eq!(
            matmul(
                MatMut::row_major(&mut c, 2, 2),
                huge,
                MatRef::row_major(&b, 3, 2)
            ),
            Err(Error::OutOfBounds { which: "lhs" })
        );
        let d = MatMut {
            data: &mut c,
            rows: 2,
            cols: 2,
            row_stride: 1,
            col_stride: 1,
        };
        assert_eq!(
            matmul(d, MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 3, 2)),
            Err(Error::Aliasing)
        );
        // Nothing was written on error.
        assert_eq!(c, [0.0; 4]);
    }
}
