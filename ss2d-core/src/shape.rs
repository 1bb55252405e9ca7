//! Shapes and layouts of a selective scan, validated once.

use crate::error::{mul, Error};
use crate::level::SimdLevel;

/// Maximum `dstate` (the reference CUDA kernel's limit).
pub const MAX_DSTATE: usize = 256;

/// Memory layout of `u`, `delta`, `z` and `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// `(batch, dim, seqlen)`: mamba's layout, positions contiguous.
    #[default]
    ChannelFirst,
    /// `(batch, seqlen, dim)`: channels contiguous.
    ChannelLast,
}

/// Layout of `B` or `C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcLayout {
    /// `(dim, dstate)`: one value per channel and state, the same at every position.
    Constant,
    /// `(batch, groups, dstate, seqlen)`: channel `d` uses group `d / (dim / groups)`.
    /// `Grouped(1)` is mamba's `(batch, dstate, seqlen)` form.
    Grouped(usize),
}

/// The sizes and layouts of one selective scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanShape {
    /// Batch size (`Bsz`).
    pub batch: usize,
    /// Channels (`D`).
    pub dim: usize,
    /// Sequence length (`L`).
    pub seqlen: usize,
    /// State size (`N`), `1..=256`.
    pub dstate: usize,
    /// Layout of `B`.
    pub b: BcLayout,
    /// Layout of `C`.
    pub c: BcLayout,
    /// Layout of `u`, `delta`, `z` and `out`.
    pub layout: Layout,
}

/// A [`ScanShape`] that passed validation, with the derived sizes the driver needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidShape {
    pub(crate) shape: ScanShape,
    /// `batch * dim * seqlen` (elements of `u`).
    pub(crate) bdl: usize,
    /// Channels per segment: panels never straddle a segment, so every lane of a panel uses
    /// the same B group and the same C group.
    pub(crate) seg: usize,
    /// Lanes per panel (the plan's SIMD level).
    pub(crate) lanes: usize,
    /// Panels per segment (`ceil(seg / lanes)`).
    pub(crate) panels_per_seg: usize,
    /// Panels per batch item.
    pub(crate) panels: usize,
    /// Work units (`batch * panels`).
    pub(crate) units: usize,
}

const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl ScanShape {
    /// Elements of a `B` (or `C`) tensor in the given layout.
    pub fn bc_len(&self, layout: BcLayout) -> Result<usize, Error> {
        match layout {
            BcLayout::Constant => mul("B/C size", self.dim, self.dstate),
            BcLayout::Grouped(g) => mul(
                "B/C size",
                mul("B/C size", self.batch, g)?,
                mul("B/C size", self.dstate, self.seqlen)?,
            ),
        }
    }

    /// Validates the shape: `dstate` in `1..=256`, groups non-zero and dividing `dim`, and every
    /// size product (including strides) representable. Zero `batch`, `dim` or `seqlen` are valid
    /// (an empty problem). The work units are those of [`SimdLevel::current`]'s lane count.
    pub fn validate(&self) -> Result<ValidShape, Error> {
        self.validate_lanes(SimdLevel::current().lanes())
    }

    fn validate_lanes(&self, lanes: usize) -> Result<ValidShape, Error> {
        if self.dstate == 0 || self.dstate > MAX_DSTATE {
            return Err(Error::Dstate {
                dstate: self.dstate,
            });
        }
        let bdl = mul(
            "batch*dim*seqlen",
            mul("batch*dim*seqlen", self.batch, self.dim)?,
            self.seqlen,
        )?;
        // Every index is formed as an isize offset somewhere; keep all sizes below isize::MAX.
        let bdn = mul(
            "batch*dim*dstate",
            mul("batch*dim*dstate", self.batch, self.dim)?,
            self.dstate,
        )?;
        if isize::try_from(bdl).is_err() || isize::try_from(bdn).is_err() {
            return Err(Error::Overflow {
                what: "tensor size",
            });
        }
        let mut seg = self.dim;
        for (name, layout) in [("B", self.b), ("C", self.c)] {
            if let BcLayout::Grouped(g) = layout {
                if g == 0 {
                    return Err(Error::Zero { field: name });
                }
                if !self.dim.is_multiple_of(g) {
                    return Err(Error::Groups {
                        tensor: name,
                        dim: self.dim,
                        groups: g,
                    });
                }
                let len = self.bc_len(layout)?;
                if isize::try_from(len).is_err() {
                    return Err(Error::Overflow { what: "B/C size" });
                }
                seg = gcd(seg, self.dim / g);
            }
        }
        let (panels_per_seg, panels) = if seg == 0 {
            (0, 0)
        } else {
            let pps = seg.div_ceil(lanes);
            (pps, (self.dim / seg) * pps)
        };
        let units = mul("work units", self.batch, panels)?;
        Ok(ValidShape {
            shape: *self,
            bdl,
            seg,
            lanes,
            panels_per_seg,
            panels,
            units,
        })
    }
}

impl ValidShape {
    /// The validated shape.
    pub fn shape(&self) -> &ScanShape {
        &self.shape
    }

    /// Number of independent work units (`batch x channel panels`); a work item runs a
    /// contiguous range of them.
    pub fn units(&self) -> usize {
        self.units
    }

    /// The same shape split into panels of `lanes` channels (valid already: only the derived
    /// panel and unit counts change, and they cannot overflow where a wider split did not,
    /// since `lanes >= 1` panels never outnumber the channels).
    pub(crate) fn for_lanes(self, lanes: usize) -> ValidShape {
        let (panels_per_seg, panels) = if self.seg == 0 {
            (0, 0)
        } else {
            let pps = self.seg.div_ceil(lanes);
            (pps, (self.shape.dim / self.seg) * pps)
        };
        ValidShape {
            lanes,
            panels_per_seg,
            panels,
            // `batch * panels <= batch * dim`, which fits (`batch * dim * dstate` did).
            units: self.shape.batch.saturating_mul(panels),
            ..self
        }
    }

    /// First channel and lane count of panel `p` of a batch item.
    #[inline]
    pub(crate) fn panel_channels(&self, p: usize) -> (usize, usize) {
        let s = p / self.panels_per_seg;
        let k = p % self.panels_per_seg;
        let d0 = s * self.seg + k * self.lanes;
        let n = (self.seg - k * self.lanes).min(self.lanes);
        (d0, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dim: usize, dstate: usize, b: BcLayout, c: BcLayout) -> ScanShape {
        ScanShape {
            batch: 2,
            dim,
            seqlen: 7,
            dstate,
            b,
            c,
            layout: Layout::ChannelFirst,
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        use BcLayout::*;
        assert_eq!(
            shape(4, 0, Constant, Constant).validate(),
            Err(Error::Dstate { dstate: 0 })
        );
        assert_eq!(
            shape(4, 257, Constant, Constant).validate(),
            Err(Error::Dstate { dstate: 257 })
        );
        assert_eq!(
            shape(6, 4, Grouped(4), Constant).validate(),
            Err(Error::Groups {
                tensor: "B",
                dim: 6,
                groups: 4
            })
        );
        assert_eq!(
            shape(6, 4, Constant, Grouped(0)).validate(),
            Err(Error::Zero { field: "C" })
        );
        let mut s = shape(4, 4, Constant, Constant);
        s.seqlen = usize::MAX / 2;
        assert!(matches!(s.validate(), Err(Error::Overflow { .. })));
    }

    #[test]
    fn panels_never_straddle_groups() {
        use BcLayout::*;
        let v = shape(12, 4, Grouped(3), Grouped(2)).validate().unwrap();
        // B groups of 4 channels, C groups of 6: segments of gcd = 2 channels.
        assert_eq!(v.seg, 2);
        assert_eq!(v.panels, 6);
        assert_eq!(v.panel_channels(5), (10, 2));
        let v = shape(40, 4, Constant, Constant).validate().unwrap();
        assert_eq!(v.seg, 40);
        let mut covered = 0;
        for p in 0..v.panels {
            let (d0, n) = v.panel_channels(p);
            assert_eq!(d0, covered);
            covered += n;
        }
        assert_eq!(covered, 40);
        let v = shape(0, 4, Grouped(2), Constant).validate().unwrap();
        assert_eq!(v.units(), 0);
    }
}
