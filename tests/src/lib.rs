//! Conformance tests: golden data, proptest against the reference, determinism.
//!
//! This library holds the shared pieces of the test files in `tests/`:
//! - everything of `ss2d-testsupport`, re-exported: the golden data ([`golden_dir`],
//!   [`Golden`]), the NaN-propagating comparisons ([`diff`], [`assert_close`], [`rel_err`],
//!   [`assert_bitwise`]), the seeded generator [`Lcg`] and counted skips ([`skip`]);
//! - [`Problem`] / [`Spec`]: owned, random but valid selective-scan problems in the model's value
//!   domains, with helpers to run the kernel and the reference and to re-lay the data (channel
//!   last, permutations along the sequence).
#![forbid(unsafe_code)]

use ss2d_core::{reference, BcLayout, Error, Layout, ScanArgs, ScanPlan, ScanShape, Walk};

pub mod golden_problem;

// ---------------------------------------------------------------------------------------------
// SIMD level
// ---------------------------------------------------------------------------------------------

/// Applies `SS2D_ISA` (once) and returns the level the kernels run at in this test process:
/// `.ci/levels.sh` runs the suite once per level the CPU has, from one build, with `SS2D_ISA`
/// set. An invalid or unsupported value fails the test (it must not silently test another
/// level).
pub fn level() -> ss2d_core::SimdLevel {
    ss2d_std::cpu::level_from_env().unwrap_or_else(|m| panic!("SS2D_ISA: {m}"))
}

/// [`ss2d_testsupport::golden_dir`], after applying `SS2D_ISA` ([`level`]): every golden test
/// goes through here, so it runs at the pinned level.
pub fn golden_dir() -> std::path::PathBuf {
    level();
    ss2d_testsupport::golden_dir()
}

/// [`ss2d_testsupport::golden_cases`], after applying `SS2D_ISA` ([`level`]).
pub fn golden_cases(group: &str) -> Vec<std::path::PathBuf> {
    level();
    ss2d_testsupport::golden_cases(group)
}
pub use ss2d_testsupport::*;

// ---------------------------------------------------------------------------------------------
// Layout helpers
// ---------------------------------------------------------------------------------------------

/// Transposes the last two axes of a `(outer, rows, cols)` tensor to `(outer, cols, rows)`.
/// `(B, D, L)` -> `(B, L, D)` is `transpose(x, B, D, L)`, and back `transpose(x, B, L, D)`.
pub fn transpose(x: &[f32], outer: usize, rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(x.len(), outer * rows * cols);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for r in 0..rows {
            for c in 0..cols {
                y[(o * cols + c) * rows + r] = x[(o * rows + r) * cols + c];
            }
        }
    }
    y
}

/// Permutes the middle axis of an `(outer, len, inner)` tensor: `y[o, i, k] = x[o, order[i], k]`.
pub fn permute_axis(x: &[f32], outer: usize, inner: usize, order: &[usize]) -> Vec<f32> {
    let len = order.len();
    assert_eq!(x.len(), outer * len * inner);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for (i, &src) in order.iter().enumerate() {
            let (d, s) = ((o * len + i) * inner, (o * len + src) * inner);
            y[d..d + inner].copy_from_slice(&x[s..s + inner]);
        }
    }
    y
}

/// Inverse of [`permute_axis`]: `y[o, order[i], k] = x[o, i, k]`.
pub fn unpermute_axis(x: &[f32], outer: usize, inner: usize, order: &[usize]) -> Vec<f32> {
    let len = order.len();
    assert_eq!(x.len(), outer * len * inner);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for (i, &dst) in order.iter().enumerate() {
            let (d, s) = ((o * len + dst) * inner, (o * len + i) * inner);
            y[d..d + inner].copy_from_slice(&x[s..s + inner]);
        }
    }
    y
}

/// `(outer, inner)` around the sequence axis of a `u`-shaped tensor of `shape`.
pub fn seq_axis(shape: &ScanShape) -> (usize, usize) {
    match shape.layout {
        Layout::ChannelFirst => (shape.batch * shape.dim, 1),
        Layout::ChannelLast => (shape.batch, shape.dim),
    }
}

/// `softplus^-1(y) = ln(e^y - 1)` for `y > 0`.
pub fn softplus_inv(y: f64) -> f64 {
    y.exp_m1().ln()
}

/// `max(x, 0) + ln(1 + e^-|x|)` in `f64`.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

/// Everything a selective scan reads, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Sizes and layouts.
    pub shape: ScanShape,
    /// Visiting order.
    pub walk: Walk,
    /// `u`.
    pub u: Vec<f32>,
    /// `delta` (raw).
    pub delta: Vec<f32>,
    /// `A` (dim, dstate).
    pub a: Vec<f32>,
    /// `B`.
    pub b: Vec<f32>,
    /// `C`.
    pub c: Vec<f32>,
    /// `D` (dim,).
    pub d_skip: Option<Vec<f32>>,
    /// `z`.
    pub z: Option<Vec<f32>>,
    /// `delta_bias` (dim,).
    pub delta_bias: Option<Vec<f32>>,
    /// Softplus on `delta + delta_bias`.
    pub delta_softplus: bool,
    /// State before the first step (batch, dim, dstate).
    pub initial_state: Option<Vec<f32>>,
    /// Whether the final state is requested.
    pub want_final: bool,
}

/// Output of one scan: `out` and the final state when requested.
pub type ScanOut<T> = (Vec<T>, Option<Vec<T>>);

impl Problem {
    /// The borrowed arguments.
    pub fn args(&self) -> ScanArgs<'_> {
        ScanArgs {
            u: &self.u,
            delta: &self.delta,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d_skip: self.d_skip.as_deref(),
            z: self.z.as_deref(),
            delta_bias: self.delta_bias.as_deref(),
            delta_softplus: self.delta_softplus,
            initial_state: self.initial_state.as_deref(),
        }
    }

    /// Elements of `u` / `out`.
    pub fn out_len(&self) -> usize {
        self.shape.batch * self.shape.dim * self.shape.seqlen
    }

    /// Elements of a state.
    pub fn state_len(&self) -> usize {
        self.shape.batch * self.shape.dim * self.shape.dstate
    }

    /// A validated plan for buffers of the right size.
    pub fn plan(&self) -> ScanPlan<'_> {
        level();
        ScanPlan::new(
            &self.shape,
            &self.walk,
            self.args(),
            self.out_len(),
            self.want_final.then(|| self.state_len()),
        )
        .expect("valid problem")
    }

    /// Scratch elements the kernel needs.
    pub fn scratch_len(&self) -> usize {
        self.plan().scratch_len()
    }

    /// Runs the kernel (`selective_scan`) into the given buffers.
    pub fn run_into(
        &self,
        out: &mut [f32],
        state: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        level();
        ss2d_core::selective_scan(&self.shape, &self.walk, &self.args(), out, state, scratch)
    }

    /// Runs the kernel into fresh zeroed buffers.
    pub fn run(&self) -> ScanOut<f32> {
        let mut out = vec![0.0; self.out_len()];
        let mut st = self.want_final.then(|| vec![0.0; self.state_len()]);
        let mut scratch = vec![0.0; self.scratch_len()];
        self.run_into(&mut out, st.as_deref_mut(), &mut scratch)
            .expect("kernel on a valid problem");
        (out, st)
    }

    /// Runs the reference in `T` (`f32` or `f64`).
    pub fn reference<T: reference::Real>(&self) -> ScanOut<T> {
        let mut out = vec![T::ZERO; self.out_len()];
        let mut st = self.want_final.then(|| vec![T::ZERO; self.state_len()]);
        reference::selective_scan(
            &self.shape,
            &self.walk,
            &self.args(),
            &mut out,
            st.as_deref_mut(),
        )
        .expect("reference on a valid problem");
        (out, st)
    }

    /// The same problem with `u`, `delta`, `z` (and the layout) in `layout`.
    pub fn with_layout(&self, layout: Layout) -> Problem {
        let mut p = self.clone();
        if layout == self.shape.layout {
            return p;
        }
        let (b, d, l) = (self.shape.batch, self.shape.dim, self.shape.seqlen);
        let f = |x: &[f32]| match layout {
            Layout::ChannelLast => transpose(x, b, d, l),
            Layout::ChannelFirst => transpose(x, b, l, d),
        };
        p.u = f(&self.u);
        p.delta = f(&self.delta);
        p.z = self.z.as_deref().map(f);
        p.shape.layout = layout;
        p
    }

    /// Converts an output of this problem's layout to channel-first `(B, D, L)`.
    pub fn out_to_channel_first(&self, out: &[f32]) -> Vec<f32> {
        let (b, d, l) = (self.shape.batch, self.shape.dim, self.shape.seqlen);
        match self.shape.layout {
            Layout::ChannelFirst => out.to_vec(),
            Layout::ChannelLast => transpose(out, b, l, d),
        }
    }

    /// The same scan on data permuted along the sequence: position `i` of the new problem holds
    /// position `order[i]` of this one (`u`, `delta`, `z` and varying `B`/`C`). The walk is
    /// set to `walk` (which must fit the new length).
    pub fn permuted(&self, order: &[usize], walk: Walk) -> Problem {
        assert_eq!(order.len(), self.shape.seqlen);
        let mut p = self.clone();
        let (outer, inner) = seq_axis(&self.shape);
        let f = |x: &[f32]| permute_axis(x, outer, inner, order);
        p.u = f(&self.u);
        p.delta = f(&self.delta);
        p.z = self.z.as_deref().map(f);
        let bc = |x: &[f32], layout: BcLayout| match layout {
            BcLayout::Constant => x.to_vec(),
            BcLayout::Grouped(g) => {
                permute_axis(x, self.shape.batch * g * self.shape.dstate, 1, order)
            }
        };
        p.b = bc(&self.b, self.shape.b);
        p.c = bc(&self.c, self.shape.c);
        p.walk = walk;
        p
    }

    /// Maps an output of [`Problem::permuted`]`(order, ..)` back to this problem's positions.
    pub fn unpermute_out(&self, out: &[f32], order: &[usize]) -> Vec<f32> {
        let (outer, inner) = seq_axis(&self.shape);
        unpermute_axis(out, outer, inner, order)
    }

    /// The sub-problem made of steps `from..to` of the walk, laid out in walk order and scanned
    /// forward, starting from `initial_state`.
    pub fn steps(&self, from: usize, to: usize, initial_state: Option<Vec<f32>>) -> Problem {
        let order: Vec<usize> = self.walk.iter().skip(from).take(to - from).collect();
        assert_eq!(order.len(), to - from);
        let mut p = self.clone();
        let (outer, inner) = seq_axis(&self.shape);
        let f = |x: &[f32]| sub_axis(x, outer, self.shape.seqlen, inner, &order);
        p.u = f(&self.u);
        p.delta = f(&self.delta);
        p.z = self.z.as_deref().map(f);
        let bc = |x: &[f32], layout: BcLayout| match layout {
            BcLayout::Constant => x.to_vec(),
            BcLayout::Grouped(g) => sub_axis(
                x,
                self.shape.batch * g * self.shape.dstate,
                self.shape.seqlen,
                1,
                &order,
            ),
        };
        p.b = bc(&self.b, self.shape.b);
        p.c = bc(&self.c, self.shape.c);
        p.shape.seqlen = order.len();
        p.walk = Walk::forward(order.len());
        p.initial_state = initial_state;
        p
    }
}

/// Gathers positions `order` of the middle axis of an `(outer, len, inner)` tensor into an
/// `(outer, order.len(), inner)` tensor.
pub fn sub_axis(x: &[f32], outer: usize, len: usize, inner: usize, order: &[usize]) -> Vec<f32> {
    assert_eq!(x.len(), outer * len * inner);
    let m = order.len();
    let mut y = vec![0.0; outer * m * inner];
    for o in 0..outer {
        for (i, &src) in order.iter().enumerate() {
            let (d, s) = ((o * m + i) * inner, (o * len + src) * inner);
            y[d..d + inner].copy_from_slice(&x[s..s + inner]);
        }
    }
    y
}

/// Which order a random problem walks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkKind {
    /// `Walk::forward(L)`.
    Forward,
    /// `Walk::reverse(L)`.
    Reverse,
    /// `Walk::cross(h, w, k)` over an `h x w` grid (`L = h * w`).
    Cross {
        /// Grid rows.
        h: usize,
        /// Grid columns.
        w: usize,
        /// Direction 0..4.
        k: usize,
    },
}

impl WalkKind {
    /// The walk for sequence length `seqlen` (ignored for `Cross`, whose length is `h * w`).
    pub fn walk(self, seqlen: usize) -> Walk {
        match self {
            WalkKind::Forward => Walk::forward(seqlen),
            WalkKind::Reverse => Walk::reverse(seqlen),
            WalkKind::Cross { h, w, k } => Walk::cross(h, w, k).expect("small grid"),
        }
    }
}

/// Parameters of a random problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub dim: usize,
    /// Sequence length (must be `h * w` for a cross walk).
    pub seqlen: usize,
    /// State size.
    pub dstate: usize,
    /// Layout of `B`.
    pub b: BcLayout,
    /// Layout of `C`.
    pub c: BcLayout,
    /// Layout of `u`, `delta`, `z`, `out`.
    pub layout: Layout,
    /// Walk.
    pub walk: WalkKind,
    /// `D` given.
    pub has_d: bool,
    /// `z` given.
    pub has_z: bool,
    /// `delta_bias` given.
    pub has_bias: bool,
    /// Softplus on.
    pub softplus: bool,
    /// Initial state given.
    pub has_init: bool,
    /// Final state requested.
    pub want_final: bool,
    /// Data seed.
    pub seed: u64,
}

impl Spec {
    /// A plain forward problem with every option off, for tests that tweak one field.
    pub fn plain(batch: usize, dim: usize, seqlen: usize, dstate: usize) -> Spec {
        Spec {
            batch,
            dim,
            seqlen,
            dstate,
            b: BcLayout::Grouped(1),
            c: BcLayout::Grouped(1),
            layout: Layout::ChannelFirst,
            walk: WalkKind::Forward,
            has_d: false,
            has_z: false,
            has_bias: false,
            softplus: false,
            has_init: false,
            want_final: false,
            seed: 1,
        }
    }

    /// Every option on (`D`, `z`, bias, softplus, initial and final state).
    pub fn full(batch: usize, dim: usize, seqlen: usize, dstate: usize) -> Spec {
        Spec {
            has_d: true,
            has_z: true,
            has_bias: true,
            softplus: true,
            has_init: true,
            want_final: true,
            ..Spec::plain(batch, dim, seqlen, dstate)
        }
    }

    /// The shape.
    pub fn shape(&self) -> ScanShape {
        ScanShape {
            batch: self.batch,
            dim: self.dim,
            seqlen: self.seqlen,
            dstate: self.dstate,
            b: self.b,
            c: self.c,
            layout: self.layout,
        }
    }

    /// Builds the problem with data in the model's domains:
    /// `A = -exp(U(-1, 2))`; the effective step `dt = softplus(delta + bias)` (or
    /// `delta + bias` without softplus) log-uniform in `[1e-3, 1]`; `u`, `B`, `C`, `D`, the
    /// initial state `~ U(-1, 1)`; `z ~ U(-3, 3)`.
    pub fn build(&self) -> Problem {
        let mut g = Lcg::new(self.seed);
        let s = self.shape();
        let (bs, dm, ln, ns) = (s.batch, s.dim, s.seqlen, s.dstate);
        let bdl = bs * dm * ln;
        let a: Vec<f32> = (0..dm * ns)
            .map(|_| -(g.uniform(-1.0, 2.0) as f64).exp() as f32)
            .collect();
        let bias: Option<Vec<f32>> = self.has_bias.then(|| {
            if self.softplus {
                g.fill(dm, -4.0, 0.0)
            } else {
                g.fill(dm, -0.5, 0.5)
            }
        });
        let delta: Vec<f32> = (0..bdl)
            .map(|i| {
                let dt = (g.uniform(1e-3f32.ln(), 0.0) as f64).exp();
                let pre = if self.softplus { softplus_inv(dt) } else { dt };
                let d = match s.layout {
                    Layout::ChannelFirst => (i / ln) % dm,
                    Layout::ChannelLast => i % dm,
                };
                let bias = bias.as_ref().map_or(0.0, |b| b[d] as f64);
                (pre - bias) as f32
            })
            .collect();
        let u = g.fill(bdl, -1.0, 1.0);
        let bc = |g: &mut Lcg, layout: BcLayout| match layout {
            BcLayout::Constant => g.fill(dm * ns, -1.0, 1.0),
            BcLayout::Grouped(k) => g.fill(bs * k * ns * ln, -1.0, 1.0),
        };
        let b = bc(&mut g, s.b);
        let c = bc(&mut g, s.c);
        let d_skip = self.has_d.then(|| g.fill(dm, -1.0, 1.0));
        let z = self.has_z.then(|| g.fill(bdl, -3.0, 3.0));
        let initial_state = self.has_init.then(|| g.fill(bs * dm * ns, -1.0, 1.0));
        Problem {
            shape: s,
            walk: self.walk.walk(ln),
            u,
            delta,
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias: bias,
            delta_softplus: self.softplus,
            initial_state,
            want_final: self.want_final,
        }
    }
}

/// Divisors of `n` (`n > 0`), ascending.
pub fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|&k| n.is_multiple_of(k)).collect()
}

/// Concatenates `(outer, la, inner)` and `(outer, lb, inner)` along the middle axis.
pub fn concat_axis(a: &[f32], b: &[f32], outer: usize, inner: usize) -> Vec<f32> {
    if outer == 0 || inner == 0 {
        return Vec::new();
    }
    let (ra, rb) = (a.len() / outer, b.len() / outer);
    assert_eq!(a.len(), outer * ra);
    assert_eq!(b.len(), outer * rb);
    let mut y = Vec::with_capacity(a.len() + b.len());
    for o in 0..outer {
        y.extend_from_slice(&a[o * ra..(o + 1) * ra]);
        y.extend_from_slice(&b[o * rb..(o + 1) * rb]);
    }
    y
}
