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
        slices::transpose_cols(src, rows, cols, c0, nc, dst, rows)
    );
    Ok(())
}

/// Writes `src` (`rows x cols`, row-major) transposed into rows of `dst` that lie `ld` apart:
/// `dst[c * ld + r] = src[r * cols + c]`. The elements between those rows (`rows .. ld` of
/// each) are left as they are, so a host can write a block of positions of a channel-first
/// `(cols, ld)` tensor straight from a channel-last `(rows, cols)` block.
///
/// Same kernel and bits as [`transpose`].
///
/// Errors: [`Error::Overflow`] when `rows * cols` (or `dst`'s extent) overflows,
/// [`Error::Length`] naming `src` when it is not `rows * cols` long,
/// [`Error::Mismatch`] when `ld < rows`, [`Error::Length`] naming `dst` when it is shorter than
/// `(cols - 1) * ld + rows` (the extent of the rows written; 0 when `rows` or `cols` is 0).
/// Nothing is written on error.
pub fn transpose_strided(
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    ld: usize,
) -> Result<(), Error> {
    check_len("src", mul("rows*cols", rows, cols)?, src.len())?;
    if ld < rows {
        return Err(Error::Mismatch {
            what: "transpose ld < rows",
            expected: rows,
            actual: ld,
        });
    }
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let extent = mul("(cols-1)*ld", cols - 1, ld)?
        .checked_add(rows)
        .ok_or(Error::Overflow { what: "dst extent" })?;
    if dst.len() < extent {
        return Err(Error::Length {
            tensor: "dst",
            expected: extent,
            actual: dst.len(),
        });
    }
    crate::platform::dispatch!(
        crate::SimdLevel::current(),
        slices::transpose_cols(src, rows, cols, 0, cols, &mut dst[..extent], ld)
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
    fn strided_equals_the_naive_transpose_and_keeps_the_gaps() {
        let mut src = [0.0f32; 4096];
        for (i, x) in src.iter_mut().enumerate() {
            *x = i as f32 * 0.25 - 3.0;
        }
        for rows in [1usize, 3, 16, 17, 33] {
            for cols in [1usize, 5, 16, 31, 40] {
                for gap in [0usize, 1, 19] {
                    let ld = rows + gap;
                    let s = &src[..rows * cols];
                    let want = naive(s, rows, cols);
                    let mut got = [f32::NAN; 4096];
                    let extent = (cols - 1) * ld + rows;
                    transpose_strided(s, rows, cols, &mut got[..extent + 3], ld).unwrap();
                    for c in 0..cols {
                        let row = &got[c * ld..c * ld + rows];
                        assert_eq!(row, &want[c * rows..(c + 1) * rows], "{rows}x{cols}+{gap}");
                        if c + 1 < cols {
                            let between = &got[c * ld + rows..(c + 1) * ld];
                            assert!(between.iter().all(|x| x.is_nan()), "gap written");
                        }
                    }
                    assert!(got[extent..].iter().all(|x| x.is_nan()), "past the extent");
                }
            }
        }
    }

    #[test]
    fn strided_bad_arguments_are_errors_and_write_nothing() {
        let src = [1.0f32; 12];
        let mut dst = [7.0f32; 40];
        assert_eq!(
            transpose_strided(&src, 3, 5, &mut dst, 3),
            Err(Error::Length {
                tensor: "src",
                expected: 15,
                actual: 12
            })
        );
        assert_eq!(
            transpose_strided(&src, 3, 4, &mut dst, 2),
            Err(Error::Mismatch {
                what: "transpose ld < rows",
                expected: 3,
                actual: 2
            })
        );
        assert_eq!(
            transpose_strided(&src, 3, 4, &mut dst[..20], 6),
            Err(Error::Length {
                tensor: "dst",
                expected: 21,
                actual: 20
            })
        );
        assert!(matches!(
            transpose_strided(&[], usize::MAX, 2, &mut [], usize::MAX),
            Err(Error::Overflow { .. })
        ));
        assert_eq!(transpose_strided(&[], 0, 4, &mut [], 0), Ok(()));
        assert_eq!(dst, [7.0; 40]);
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
