//! Walks: the order in which a scan visits the positions of a sequence.
//!
//! A walk is a two-level strided order: `outer.0` runs of `inner.0` steps each,
//! position `start + i * outer.1 + j * inner.1` for `i in 0..outer.0`, `j in 0..inner.0`.
//! A plain 1D sequence is `Walk::forward(L)`; its reverse is `Walk::reverse(L)`. Every direction
//! of VMamba's cross-scan over an `H x W` grid (position `p = h * W + w`) is such a walk:
//!
//! | direction | order | outer (count, stride) | inner (count, stride) |
//! |---|---|---|---|
//! | 0 | row-major | (H, W) | (W, 1) |
//! | 1 | column-major | (W, 1) | (H, W) |
//! | 2 | row-major reversed, from `L-1` | (H, -W) | (W, -1) |
//! | 3 | column-major reversed, from `L-1` | (W, -1) | (H, -W) |
//!
//! The kernel reads its inputs and writes its outputs at the walked positions, so a reversed or
//! transposed scan needs no permuted copy: the output stays in the unpermuted order.

use crate::error::Error;

/// A two-level strided order of positions (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// First position visited.
    pub start: usize,
    /// (count, stride) of the outer level.
    pub outer: (usize, isize),
    /// (count, stride) of the inner level.
    pub inner: (usize, isize),
}

impl Walk {
    /// Positions `0, 1, ..., len - 1`.
    pub const fn forward(len: usize) -> Walk {
        Walk {
            start: 0,
            outer: (1, 0),
            inner: (len, 1),
        }
    }

    /// Positions `len - 1, ..., 1, 0`.
    pub const fn reverse(len: usize) -> Walk {
        Walk {
            start: if len == 0 { 0 } else { len - 1 },
            outer: (1, 0),
            inner: (len, -1),
        }
    }

    /// Direction `k` (0..4) of VMamba's cross-scan over an `h x w` row-major grid
    /// (module table). Returns `None` for `k >= 4` or sizes whose strides overflow `isize`.
    pub fn cross(h: usize, w: usize, k: usize) -> Option<Walk> {
        let l = h.checked_mul(w)?;
        let wi = isize::try_from(w).ok()?;
        isize::try_from(l).ok()?;
        let last = l.saturating_sub(1);
        Some(match k {
            0 => Walk {
                start: 0,
                outer: (h, wi),
                inner: (w, 1),
            },
            1 => Walk {
                start: 0,
                outer: (w, 1),
                inner: (h, wi),
            },
            2 => Walk {
                start: last,
                outer: (h, -wi),
                inner: (w, -1),
            },
            3 => Walk {
                start: last,
                outer: (w, -1),
                inner: (h, -wi),
            },
            _ => return None,
        })
    }

    /// Number of positions visited.
    pub fn len(&self) -> Option<usize> {
        self.outer.0.checked_mul(self.inner.0)
    }

    /// True when the walk visits no position.
    pub fn is_empty(&self) -> bool {
        self.outer.0 == 0 || self.inner.0 == 0
    }

    /// Checks that the walk visits exactly `seqlen` positions, all inside `0..seqlen`, each
    /// once (a permutation of the sequence: [`Error::WalkLength`], [`Error::WalkBounds`],
    /// [`Error::WalkRepeats`]).
    ///
    /// `seqlen` in-bounds steps are a permutation exactly when they are distinct, and for a
    /// two-level walk with both counts above 1 that holds only in mixed radix: one stride is
    /// `±1` and the other `±` the count of the first (the position `1` must be one stride,
    /// and a smaller other stride would revisit a position of the first level). A one-level
    /// walk of more than one step needs stride `±1`.
    pub fn validate(&self, seqlen: usize) -> Result<(), Error> {
        let n = self.len().ok_or(Error::Overflow {
            what: "walk length",
        })?;
        if n != seqlen {
            return Err(Error::WalkLength {
                expected: seqlen,
                actual: n,
            });
        }
        if n == 0 {
            return Ok(());
        }
        let bounds = Error::WalkBounds { seqlen };
        let start = i128::try_from(self.start).map_err(|_| bounds)?;
        let span = |count: usize, stride: isize| -> (i128, i128) {
            let e = (count as i128 - 1) * stride as i128;
            if e < 0 {
                (e, 0)
            } else {
                (0, e)
            }
        };
        let (lo_o, hi_o) = span(self.outer.0, self.outer.1);
        let (lo_i, hi_i) = span(self.inner.0, self.inner.1);
        let lo = start + lo_o + lo_i;
        let hi = start + hi_o + hi_i;
        if lo < 0 || hi >= seqlen as i128 {
            return Err(bounds);
        }
        let ((oc, os), (ic, is)) = (self.outer, self.inner);
        let unit = |c: usize, st: isize| c <= 1 || st.unsigned_abs() == 1;
        let distinct = match (oc > 1, ic > 1) {
            (false, _) => unit(ic, is),
            (true, false) => unit(oc, os),
            (true, true) => {
                (is.unsigned_abs() == 1 && os.unsigned_abs() == ic)
                    || (os.unsigned_abs() == 1 && is.unsigned_abs() == oc)
            }
        };
        if !distinct {
            return Err(Error::WalkRepeats { seqlen });
        }
        Ok(())
    }

    /// Fills `buf` with the positions of steps `from .. from + buf.len()`.
    ///
    /// Only for validated walks (every position is in bounds, so the arithmetic cannot wrap).
    #[inline]
    pub(crate) fn positions(&self, from: usize, buf: &mut [usize]) {
        let ic = self.inner.0;
        if ic == 0 {
            return;
        }
        let mut i = from / ic;
        let mut j = from % ic;
        let mut row = self.start as isize + i as isize * self.outer.1;
        let mut pos = row + j as isize * self.inner.1;
        for slot in buf.iter_mut() {
            *slot = pos as usize;
            j += 1;
            pos += self.inner.1;
            if j == ic {
                j = 0;
                i += 1;
                row += self.outer.1;
                pos = row;
            }
        }
        let _ = i;
    }

    /// Iterator over all positions, in walk order (for references and tests).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let ic = self.inner.0;
        (0..self.outer.0).flat_map(move |i| {
            (0..ic).map(move |j| {
                (self.start as isize + i as isize * self.outer.1 + j as isize * self.inner.1)
                    as usize
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_walks_visit_every_position_once() {
        for (h, w) in [(1, 1), (1, 5), (4, 1), (3, 7), (5, 5)] {
            for k in 0..4 {
                let walk = Walk::cross(h, w, k).unwrap();
                walk.validate(h * w).unwrap();
                let mut seen = [0u8; 64];
                for p in walk.iter() {
                    seen[p] += 1;
                }
                assert!(seen[..h * w].iter().all(|&c| c == 1), "h={h} w={w} k={k}");
                let mut buf = [0usize; 64];
                for from in 0..h * w {
                    let n = h * w - from;
                    walk.positions(from, &mut buf[..n]);
                    let expect: [usize; 64] = {
                        let mut e = [0; 64];
                        for (s, p) in walk.iter().skip(from).enumerate() {
                            e[s] = p;
                        }
                        e
                    };
                    assert_eq!(&buf[..n], &expect[..n]);
                }
            }
        }
        // Direction 1 is column-major: q = w * H + h visits p = h * W + w.
        let walk = Walk::cross(2, 3, 1).unwrap();
        let v: [usize; 6] = core::array::from_fn(|i| walk.iter().nth(i).unwrap());
        assert_eq!(v, [0, 3, 1, 4, 2, 5]);
    }

    /// Brute force: in-bounds walks over small boxes are accepted exactly when their steps
    /// are a permutation.
    #[test]
    fn validate_accepts_exactly_the_permutations() {
        for oc in 0..5usize {
            for ic in 0..5usize {
                let n = oc * ic;
                for os in -6isize..=6 {
                    for is in -6isize..=6 {
                        for start in 0..n.max(1) {
                            let w = Walk {
                                start,
                                outer: (oc, os),
                                inner: (ic, is),
                            };
                            let mut pos = [0usize; 16];
                            let mut seen = [false; 16];
                            let mut inside = true;
                            let mut k = 0;
                            for i in 0..oc {
                                for j in 0..ic {
                                    let p = start as isize + i as isize * os + j as isize * is;
                                    if p < 0 || p >= n as isize {
                                        inside = false;
                                    } else {
                                        pos[k] = p as usize;
                                    }
                                    k += 1;
                                }
                            }
                            let perm = inside
                                && pos[..n]
                                    .iter()
                                    .all(|&p| !core::mem::replace(&mut seen[p], true));
                            let r = w.validate(n);
                            match r {
                                Ok(()) => assert!(perm, "{w:?} accepted"),
                                Err(Error::WalkBounds { .. }) => assert!(!inside, "{w:?}"),
                                Err(Error::WalkRepeats { .. }) => {
                                    assert!(inside && !perm, "{w:?}")
                                }
                                Err(e) => panic!("{w:?}: {e:?}"),
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn validate_rejects_bad_walks() {
        assert_eq!(
            Walk::forward(5).validate(6),
            Err(Error::WalkLength {
                expected: 6,
                actual: 5
            })
        );
        let w = Walk {
            start: 1,
            outer: (1, 0),
            inner: (5, 1),
        };
        assert_eq!(w.validate(5), Err(Error::WalkBounds { seqlen: 5 }));
        let w = Walk {
            start: 0,
            outer: (1, 0),
            inner: (5, -1),
        };
        assert_eq!(w.validate(5), Err(Error::WalkBounds { seqlen: 5 }));
        let w = Walk {
            start: 0,
            outer: (usize::MAX, 1),
            inner: (2, 1),
        };
        assert_eq!(
            w.validate(5),
            Err(Error::Overflow {
                what: "walk length"
            })
        );
        assert_eq!(Walk::reverse(0).validate(0), Ok(()));
    }
}
