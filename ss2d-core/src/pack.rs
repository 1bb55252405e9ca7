//! Packing: where a panel's lanes sit in a tensor (`Lanes`) and runs of consecutive positions
//! (`Run`). The packers that move lanes between tensors and lane-major scratch are in
//! `generic/pack.rs` (one copy per level).
//!
//! A panel's element (position `p`, lane `j`) of a `u`-shaped tensor sits at
//! `base + p * pstride + j * lstride`. Channel-last data has `lstride == 1`: a position's lanes
//! are one contiguous load. Channel-first data has `pstride == 1`: `LANES` consecutive
//! positions of `LANES` rows are loaded as rows and transposed in registers; walks that are not
//! contiguous there fall back to a gather.

use crate::shape::Layout;

/// A run of consecutive positions in walk order: step `s` of a chunk of `len` steps is at
/// `first + s` (`rev == false`) or `first - s` (`rev == true`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    /// Position of step 0.
    pub first: usize,
    /// Walking down instead of up.
    pub rev: bool,
    /// Steps.
    pub len: usize,
}

impl Run {
    /// Lowest and highest position of a non-empty run (`None` when empty, or when a
    /// reversed run would start below position 0).
    #[inline(always)]
    pub(crate) fn span(&self) -> Option<(usize, usize)> {
        let d = self.len.checked_sub(1)?;
        if self.rev {
            Some((self.first.checked_sub(d)?, self.first))
        } else {
            Some((self.first, self.first.checked_add(d)?))
        }
    }

    /// Position of step `s`.
    #[inline(always)]
    pub(crate) fn pos(&self, s: usize) -> usize {
        if self.rev {
            self.first.wrapping_sub(s)
        } else {
            self.first.wrapping_add(s)
        }
    }
}

/// Where a panel's lanes sit in a `u`-shaped tensor (module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lanes {
    pub base: usize,
    pub pstride: usize,
    pub lstride: usize,
    /// Lanes in use (`1..=LANES`); the rest are zero on gather and never written on scatter.
    pub nl: usize,
}

impl Lanes {
    /// The `nl` lanes from channel `d0` of batch item `b` in a `(B, D, L)` (channel-first) or
    /// `(B, L, D)` (channel-last) tensor of `dim` channels and `l` positions.
    #[inline(always)]
    pub(crate) fn panel(
        layout: Layout,
        b: usize,
        d0: usize,
        nl: usize,
        dim: usize,
        l: usize,
    ) -> Lanes {
        match layout {
            Layout::ChannelFirst => Lanes {
                base: (b * dim + d0) * l,
                pstride: 1,
                lstride: l,
                nl,
            },
            Layout::ChannelLast => Lanes {
                base: b * l * dim + d0,
                pstride: dim,
                lstride: 1,
                nl,
            },
        }
    }
}
