//! Blocked matrix transpose on lanes: the layout change between channel-first `(D, L)` and
//! channel-last `(L, D)` data (per batch item), as the fused 2D scan of `ss2d-std` needs it.

use crate::error::{check_len, mul, Error};

/// Writes columns `c0 .. c0 + dst.len() / rows` of `src` (`rows x cols`, row-major) as rows
/// of `dst`: `dst[(c - c0) * rows + r] = src[r * cols + c]`. With `c0 = 0` and
/// `dst.len() == rows * cols` this is the whole transpose; other `c0` let a host split it
/// into disjoint parts of `dst` for its threads.
///
/// `LANES x LANES` blocks are loaded as rows and transposed in registers; the ragged edges go
/// element by element. Values are copied bit for bit (NaN payloads included).
///
/// Errors: [`Error::Overflow`] when `rows * cols` overflows, [`Error::Length`] naming `src`
/// when it is not `rows * cols` long, or `dst` when its length is not a multiple of `rows`
/// (when `rows > 0`: empty otherwise) or reaches past column `cols`. Nothing is written on
/// error.
pub fn transpose(
    src: &[f32],
    rows: usize,
    cols: usize,
    c0: usize,
    dst: &mut [f32],
) -> Result<(), Error> {
    check_len("src", mul("rows*cols", rows, cols)?, src.len())?;
    if rows == 0 {
        return check_len("dst", 0, dst.len());
    }
    let nc = dst.len() / rows;
    let fits = c0.checked_add(nc).is_some_and(|end| end <= cols);
    if nc * rows != dst.len() || !fits {
        // The longest part that fits from `c0`.
        let expected = cols.saturating_sub(c0).saturating_mul(rows);
        return Err(Error::Length {
            tensor: "dst",
            expected,
            actual: dst.len(),
        });
    }
    crate::platform::dispatch!(
        crate::SimdLevel::current(),
        slices::transpose_cols(src, rows, cols, c0, dst)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(src: &[f32], rows: usize, cols: usize) -> [f32; 4096] {
        let mut out = [0.0f32; 4096];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = src[r * cols + c];
            }
        }
        out
    }

    #[test]
    fn whole_and_parts_equal_the_naive_transpose() {
        let mut src = [0.0f32; 4096];
        for (i, x) in src.iter_mut().enumerate() {
            *x = i as f32 * 0.5 - 7.0;
        }
        for rows in [0usize, 1, 3, 15, 16, 17, 33, 48] {
            for cols in [0usize, 1, 5, 16, 31, 32, 40, 64] {
                if rows * cols > 4096 {
                    continue;
                }
                let s = &src[..rows * cols];
                let want = naive(s, rows, cols);
                let mut got = [f32::NAN; 4096];
                transpose(s, rows, cols, 0, &mut got[..rows * cols]).unwrap();
                assert_eq!(&got[..rows * cols], &want[..rows * cols], "{rows}x{cols}");
                if rows == 0 {
                    continue;
                }
                // In parts of 1, 7 and 17 columns.
                for part in [1usize, 7, 17] {
                    let mut got = [f32::NAN; 4096];
                    let mut c0 = 0;
                    while c0 < cols {
                        let n = part.min(cols - c0);
                        transpose(s, rows, cols, c0, &mut got[c0 * rows..(c0 + n) * rows]).unwrap();
                        c0 += n;
                    }
                    assert_eq!(
                        &got[..rows * cols],
                        &want[..rows * cols],
                        "{rows}x{cols}/{part}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors_and_write_nothing() {
        let src = [1.0f32; 12];
        let mut dst = [7.0f32; 13];
        assert_eq!(
            transpose(&src, 3, 5, 0, &mut dst[..12]),
            Err(Error::Length {
                tensor: "src",
                expected: 15,
                actual: 12
            })
        );
        assert_eq!(
            transpose(&src, 3, 4, 0, &mut dst[..13]),
            Err(Error::Length {
                tensor: "dst",
                expected: 12,
                actual: 13
            })
        );
        assert_eq!(
            transpose(&src, 3, 4, 2, &mut dst[..9]),
            Err(Error::Length {
                tensor: "dst",
                expected: 6,
                actual: 9
            })
        );
        assert_eq!(
            transpose(&[], 0, 4, 0, &mut dst[..1]),
            Err(Error::Length {
                tensor: "dst",
                expected: 0,
                actual: 1
            })
        );
        assert!(matches!(
            transpose(&[], usize::MAX, 2, 0, &mut []),
            Err(Error::Overflow { .. })
        ));
        assert_eq!(dst, [7.0; 13]);
    }
}
