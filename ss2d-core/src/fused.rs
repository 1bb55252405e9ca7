//! The fused 4-direction SS2D scan: VMamba's cross-scan, dt projection, selective scan and
//! cross-merge in one pass, with no permuted `(B, 4, D, L)` tensor.
//!
//! Inputs: `x` (after conv + SiLU) as `(B, D, H, W)` or `(B, H, W, D)`, and `proj`, the x_proj
//! output computed on the *unpermuted* grid, `(B, L, 4, R + 2N)` (per position and direction:
//! `dt_low (R) | B (N) | C (N)`); projections are per position, so they commute with the
//! permutations of the cross-scan. Per work unit (batch item, channel panel, direction `k`):
//!
//! ```text
//! for p in walk_k (row-major, column-major, reversed ...):     // a `Walk`, no copies
//!     dt = softplus(sum_r dt_projs_weight[k, d, r] * proj[b, p, k, r] + dt_projs_bias[k, d])
//!     scan step with A = -exp(A_logs[k*D + d]), B/C = proj[b, p, k, R..], D = Ds[k*D + d]
//!     y_k[p] = ...                                               // written at p: unpermuted
//! ```
//!
//! At `d_state = 1` on channel-last data (the released VMamba v2/v3 models) a unit walks each
//! direction once for a group of up to [`MAX_GROUP`] channel panels ([`FusedPlan::with_group`]),
//! sharing the walk, the projection row and B/C, in two passes per chunk of steps (the dt
//! projection and the first half of the softplus; then the rest of the step and the state); the
//! lanes run the same operations as the general kernel, so the bits do not change.
//!
//! Merge order (fixed, the same for every split, equal to upstream's cross2d association):
//! `y = (y0 + y2) + (y1 + y3)`. A work split ([`FusedSplit`]) only changes which buffer holds
//! which partial sum, never the operations, so results are bitwise identical for every split and
//! thread count.

use crate::error::{check_len, mul, Error};
use crate::level::SimdLevel;
use crate::platform::dispatch;
use crate::scan::{vectors_len, Sink, CHUNK};
use crate::shape::{Layout, MAX_DSTATE};
use crate::walk::Walk;

/// Direction set of the 2D scan (VMamba's `scans` argument): which four sequences the
/// cross-scan builds. The one definition of the scan mode (`ss2d_std::cross::ScanMode`
/// re-exports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum CrossMode {
    /// Row-major, column-major and both reversed (`scans = 0`, every released model).
    #[default]
    Cross2d,
    /// Four row-major scans (`scans = 1`, `v051d`).
    Unidi,
    /// Row-major twice, reversed row-major twice (`scans = 2`, `v052d`).
    Bidi,
}

impl CrossMode {
    /// Every mode, in `scans` order.
    pub const ALL: [CrossMode; 3] = [CrossMode::Cross2d, CrossMode::Unidi, CrossMode::Bidi];

    /// The walk of direction `k` (0..4) over an `h x w` row-major grid: step `s` visits pixel
    /// `p`, and `xs[k][s] = x[p]`. `None` for `k >= 4` or sizes whose strides overflow `isize`.
    pub fn walk(self, h: usize, w: usize, k: usize) -> Option<Walk> {
        let base = match (self, k) {
            (_, k) if k >= 4 => return None,
            (CrossMode::Cross2d, k) => k,
            (CrossMode::Unidi, _) => 0,
            (CrossMode::Bidi, k) => (k / 2) * 2,
        };
        Walk::cross(h, w, base)
    }

    /// From VMamba's integer `scans` argument (0, 1, 2). `scans=3` is referenced upstream but
    /// not implemented there, so it is [`Error::Unsupported`] here too.
    pub fn from_scans(scans: i64) -> Result<CrossMode, Error> {
        match scans {
            0 => Ok(CrossMode::Cross2d),
            1 => Ok(CrossMode::Unidi),
            2 => Ok(CrossMode::Bidi),
            _ => Err(Error::Unsupported {
                what: "cross-scan mode (scans must be 0, 1 or 2)",
            }),
        }
    }

    /// VMamba's integer `scans` argument.
    pub fn scans(self) -> u8 {
        match self {
            CrossMode::Cross2d => 0,
            CrossMode::Unidi => 1,
            CrossMode::Bidi => 2,
        }
    }

    /// From the names used in the golden metadata `scan_mode`: `cross2d`, `unidi`, `bidi`
    /// (`cascade2d` is not a cross-scan mode: [`Error::Unsupported`]).
    pub fn from_name(name: &str) -> Result<CrossMode, Error> {
        match name {
            "cross2d" => Ok(CrossMode::Cross2d),
            "unidi" => Ok(CrossMode::Unidi),
            "bidi" => Ok(CrossMode::Bidi),
            _ => Err(Error::Unsupported {
                what: "scan mode (expected cross2d, unidi or bidi)",
            }),
        }
    }

    /// The name used in the golden metadata (`cross2d`, `unidi`, `bidi`).
    pub fn name(self) -> &'static str {
        match self {
            CrossMode::Cross2d => "cross2d",
            CrossMode::Unidi => "unidi",
            CrossMode::Bidi => "bidi",
        }
    }
}

/// Sizes of a fused SS2D scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedShape {
    /// Batch size.
    pub batch: usize,
    /// Channels (`d_inner`).
    pub dim: usize,
    /// Grid height.
    pub h: usize,
    /// Grid width.
    pub w: usize,
    /// State size `N` (1..=256).
    pub dstate: usize,
    /// dt rank `R`.
    pub dt_rank: usize,
    /// Directions.
    pub mode: CrossMode,
    /// Layout of `x` and of the output: channel-first `(B, D, H, W)` or channel-last
    /// `(B, H, W, D)`.
    pub layout: Layout,
}

/// Per-direction parameters under VMamba's names (the x_proj weight is applied by the caller
/// to produce `proj`).
#[derive(Clone, Copy, Debug)]
pub struct FusedWeights<'a> {
    /// `dt_projs_weight`: (4, D, R).
    pub dt_projs_weight: &'a [f32],
    /// `dt_projs_bias`: (4, D).
    pub dt_projs_bias: &'a [f32],
    /// `A_logs`: (4D, N); `A = -exp(A_logs)`.
    pub a_logs: &'a [f32],
    /// `Ds`: (4D,).
    pub ds: &'a [f32],
}

/// How the four directions of a panel are distributed over work units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedSplit {
    /// One unit per (batch, panel) does all four directions; one output buffer.
    All,
    /// One unit per (batch, panel, pair): directions {0, 2} into buffer 0, {1, 3} into buffer 1;
    /// the caller then forms `buf0 + buf1` (see [`combine`]).
    Pairs,
    /// One unit per (batch, panel, direction): direction `k` into buffer `k`; the caller then
    /// forms `(buf0 + buf2) + (buf1 + buf3)` (see [`combine`]).
    Dirs,
}

impl FusedSplit {
    /// Output buffers this split needs.
    pub const fn buffers(self) -> usize {
        match self {
            FusedSplit::All => 1,
            FusedSplit::Pairs => 2,
            FusedSplit::Dirs => 4,
        }
    }

    pub(crate) const fn per_panel(self) -> usize {
        match self {
            FusedSplit::All => 1,
            FusedSplit::Pairs => 2,
            FusedSplit::Dirs => 4,
        }
    }
}

/// Combines the partial buffers of a split into `bufs[0]`, elementwise, in the fixed merge
/// order; `range` restricts it to a sub-range (so a host can parallelize it).
pub fn combine(split: FusedSplit, bufs: &mut [&mut [f32]], range: core::ops::Range<usize>) {
    match split {
        FusedSplit::All => {}
        FusedSplit::Pairs => {
            if let [a, b, ..] = bufs {
                for (x, y) in a[range.clone()].iter_mut().zip(&b[range]) {
                    *x += *y;
                }
            }
        }
        FusedSplit::Dirs => {
            if let [a, b1, b2, b3, ..] = bufs {
                let it = a[range.clone()]
                    .iter_mut()
                    .zip(&b1[range.clone()])
                    .zip(&b2[range.clone()])
                    .zip(&b3[range]);
                for (((y0, y1), y2), y3) in it {
                    *y0 = (*y0 + *y2) + (*y1 + *y3);
                }
            }
        }
    }
}

/// Most channel panels one work unit of the grouped (`d_state = 1`) kernel walks together: six,
/// so that s1l8's 96 channels at 16 lanes are one unit per direction (the per-step work of the
/// walk, the projection row and its broadcasts shared by all of them: fused s1l8 scan, 1
/// thread, 1.15-1.18 -> 1.01-1.04 ms against groups of three).
pub const MAX_GROUP: usize = 6;

/// Vectors of work space (before the `(L, group)` merge buffer) of a grouped unit: the weights
/// of the dt projection and three per-step arrays, `group` panels each.
pub(crate) fn grouped_head(group: usize, dt_rank: usize) -> usize {
    group.saturating_mul(dt_rank.saturating_add(3 * CHUNK))
}

/// A validated fused scan.
#[derive(Clone, Copy, Debug)]
pub struct FusedPlan<'a> {
    pub(crate) s: FusedShape,
    pub(crate) wts: FusedWeights<'a>,
    pub(crate) x: &'a [f32],
    pub(crate) proj: &'a [f32],
    pub(crate) l: usize,
    pub(crate) c: usize,
    pub(crate) panels: usize,
    /// Panels per work unit (1..=[`MAX_GROUP`]; more than 1 only where the grouped kernel runs).
    pub(crate) group: usize,
    out_len: usize,
    /// An available level (checked by `new` / `with_level`).
    pub(crate) level: SimdLevel,
}

impl<'a> FusedPlan<'a> {
    /// Validates sizes and buffer lengths: `x` is `B*D*H*W`, `proj` is `B*H*W*4*(R+2N)`.
    pub fn new(
        shape: &FusedShape,
        weights: FusedWeights<'a>,
        x: &'a [f32],
        proj: &'a [f32],
    ) -> Result<Self, Error> {
        let s = *shape;
        if s.dstate == 0 || s.dstate > MAX_DSTATE {
            return Err(Error::Dstate { dstate: s.dstate });
        }
        let l = mul("H*W", s.h, s.w)?;
        let bdl = mul("B*D*L", mul("B*D*L", s.batch, s.dim)?, l)?;
        let c = s
            .dt_rank
            .checked_add(mul("2*d_state", 2, s.dstate)?)
            .ok_or(Error::Overflow { what: "R+2N" })?;
        let plen = mul(
            "proj size",
            mul("proj size", s.batch, l)?,
            mul("proj size", 4, c)?,
        )?;
        let d4 = mul("4*D", 4, s.dim)?;
        let wlen = mul("dt_projs_weight size", d4, s.dt_rank)?;
        let alen = mul("A_logs size", d4, s.dstate)?;
        if isize::try_from(bdl).is_err() || isize::try_from(plen).is_err() {
            return Err(Error::Overflow {
                what: "tensor size",
            });
        }
        check_len("x", bdl, x.len())?;
        check_len("proj", plen, proj.len())?;
        check_len("dt_projs_weight", wlen, weights.dt_projs_weight.len())?;
        check_len("dt_projs_bias", d4, weights.dt_projs_bias.len())?;
        check_len("A_logs", alen, weights.a_logs.len())?;
        check_len("Ds", d4, weights.ds.len())?;
        let level = SimdLevel::current();
        let plan = FusedPlan {
            s,
            wts: weights,
            x,
            proj,
            l,
            c,
            panels: s.dim.div_ceil(level.lanes()),
            group: 1,
            out_len: bdl,
            level,
        };
        Ok(plan.with_group(MAX_GROUP))
    }

    /// True when the grouped kernel runs this plan: `d_state = 1` on channel-last data (the
    /// released VMamba v2/v3 configurations; `ss2d-std` transposes channel-first data to
    /// channel-last before the scan).
    pub(crate) fn grouped_kernel(&self) -> bool {
        self.s.dstate == 1 && self.s.layout == Layout::ChannelLast
    }

    /// The same plan with up to `group` channel panels per work unit (clamped to
    /// `1..=`[`MAX_GROUP`] and to the panel count; always 1 where the grouped kernel does not
    /// run, see [`FusedPlan::group`]). A unit then walks each direction once for all its panels,
    /// sharing the walk, the projection row and B/C between them, and the panels' independent
    /// recurrences overlap. Results do not depend on the group (every lane runs the same
    /// operations); fewer, larger units leave less to spread over threads, so a threaded host
    /// picks the largest group that still gives every thread work ([`FusedPlan::units`]).
    pub fn with_group(self, group: usize) -> Self {
        let group = if self.grouped_kernel() {
            group.clamp(1, MAX_GROUP).min(self.panels.max(1))
        } else {
            1
        };
        FusedPlan { group, ..self }
    }

    /// Most channel panels per work unit ([`FusedPlan::with_group`]; the panels are spread
    /// evenly over `ceil(panels / group)` units); a panel is [`SimdLevel::lanes`] channels.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Panel groups per batch item (the units of [`FusedSplit::All`] per batch item).
    pub(crate) fn groups(&self) -> usize {
        self.panels.div_ceil(self.group.max(1))
    }

    /// The same plan at `level`; its work units ([`FusedPlan::units`]) follow the level's lane
    /// count, its scratch size does not. [`Error::Unsupported`] when the CPU (or this build)
    /// lacks the level.
    pub fn with_level(self, level: SimdLevel) -> Result<Self, Error> {
        level.check()?;
        Ok(FusedPlan {
            panels: self.s.dim.div_ceil(level.lanes()),
            level,
            ..self
        }
        .with_group(self.group))
    }

    /// The SIMD level this plan runs at.
    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// Elements of the output (and of each split buffer): `B*D*H*W`.
    pub fn out_len(&self) -> usize {
        self.out_len
    }

    /// Work units for `split` (0 for an empty problem: an empty grid writes nothing, whatever
    /// the batch).
    pub fn units(&self, split: FusedSplit) -> usize {
        if self.out_len == 0 {
            return 0;
        }
        // At most `4 * B * D`, and `B * D * L` fits: saturation is for form's sake.
        self.s
            .batch
            .saturating_mul(self.groups())
            .saturating_mul(split.per_panel())
    }

    /// Scratch elements one work item needs for `split` (a function of `L`, `N` and `R`
    /// only, so a plan with `batch = 0` sizes the scratch of any batch). Saturates at
    /// `usize::MAX` where the exact size does not fit (such a scratch cannot exist); an item
    /// without units (an empty problem) runs with any scratch.
    pub fn scratch_len(&self, split: FusedSplit) -> usize {
        let n = self.s.dstate;
        let g = self.group.max(1);
        let tmp = if split == FusedSplit::All {
            vectors_len(self.l.saturating_mul(g))
        } else {
            0
        };
        let head = if self.grouped_kernel() {
            grouped_head(g, self.s.dt_rank)
        } else {
            (2 * n + 4 * CHUNK).saturating_add(self.s.dt_rank)
        };
        vectors_len(head).saturating_add(tmp)
    }

    /// Runs everything on the calling thread into `out` (`FusedSplit::All`).
    pub fn run(&self, out: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        let mut bufs = [out];
        let mut items = self.split(&mut bufs, FusedSplit::All, 1)?;
        for item in items.items() {
            item.run(scratch)?;
        }
        Ok(())
    }

    /// Splits the scan into `count` work items writing the `split.buffers()` buffers (each
    /// `out_len` long; their prior contents are ignored). After all items ran, [`combine`]
    /// forms the result in `bufs[0]`.
    pub fn split<'s, 'o: 's>(
        &'s self,
        bufs: &'s mut [&'o mut [f32]],
        split: FusedSplit,
        count: usize,
    ) -> Result<FusedItems<'s>, Error> {
        if bufs.len() != split.buffers() {
            return Err(Error::Mismatch {
                what: "output buffers for the split",
                expected: split.buffers(),
                actual: bufs.len(),
            });
        }
        for b in bufs.iter() {
            check_len("out", self.out_len, b.len())?;
        }
        let mut it = bufs.iter_mut();
        let mut next = || it.next().map(|b| Sink::new(b));
        let sinks = [next(), next(), next(), next()];
        let units = self.units(split);
        Ok(FusedItems {
            plan: self,
            sinks,
            split,
            next: 0,
            count: count.clamp(1, units.max(1)),
        })
    }
}

/// The work items of a split fused scan (each yielded once).
pub struct FusedItems<'o> {
    plan: &'o FusedPlan<'o>,
    sinks: [Option<Sink<'o>>; 4],
    split: FusedSplit,
    next: usize,
    count: usize,
}

impl<'o> FusedItems<'o> {
    /// Number of items.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The items (each yielded once per `FusedItems`); `Send`, for a host pool.
    pub fn items(&mut self) -> impl Iterator<Item = FusedItem<'_>> + '_ {
        let (plan, count, split) = (self.plan, self.count, self.split);
        let units = plan.units(split);
        let sinks = &self.sinks;
        let start = self.next;
        self.next = count;
        (start..count).map(move |i| FusedItem {
            plan,
            sinks,
            split,
            units: crate::scan::share(i, units, count)..crate::scan::share(i + 1, units, count),
        })
    }
}

/// One work item of a fused scan: a contiguous range of units.
pub struct FusedItem<'o> {
    plan: &'o FusedPlan<'o>,
    sinks: &'o [Option<Sink<'o>>; 4],
    split: FusedSplit,
    units: core::ops::Range<usize>,
}

impl FusedItem<'_> {
    /// Runs the item with its own scratch of [`FusedPlan::scratch_len`] elements.
    pub fn run(self, scratch: &mut [f32]) -> Result<(), Error> {
        if self.units.is_empty() {
            return Ok(());
        }
        let need = self.plan.scratch_len(self.split);
        if scratch.len() < need {
            return Err(Error::Scratch {
                needed: need,
                actual: scratch.len(),
            });
        }
        dispatch!(
            self.plan.level,
            fused::run_units(self.plan, self.split, self.sinks, self.units, scratch)
        );
        Ok(())
    }
}
