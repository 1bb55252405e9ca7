//! Shared input builders for the criterion benches and examples: deterministic inputs in the
//! VMamba domain.

use ss2d_core::{BcLayout, Layout, ScanShape};
use ss2d_testsupport::Lcg;

/// Owned inputs of a scan in the VMamba domain: bias + softplus, D, grouped B/C.
pub struct ScanInputs {
    /// The shape.
    pub shape: ScanShape,
    /// u.
    pub u: Vec<f32>,
    /// delta.
    pub delta: Vec<f32>,
    /// A.
    pub a: Vec<f32>,
    /// B.
    pub b: Vec<f32>,
    /// C.
    pub c: Vec<f32>,
    /// D.
    pub d: Vec<f32>,
    /// delta_bias.
    pub bias: Vec<f32>,
}

impl ScanInputs {
    /// Deterministic inputs for (batch, dim, seqlen, dstate, groups), channel-first.
    pub fn new(batch: usize, dim: usize, seqlen: usize, dstate: usize, groups: usize) -> Self {
        let mut g = Lcg::new(42);
        let shape = ScanShape {
            batch,
            dim,
            seqlen,
            dstate,
            b: BcLayout::Grouped(groups),
            c: BcLayout::Grouped(groups),
            layout: Layout::ChannelFirst,
        };
        let bdl = batch * dim * seqlen;
        let bc = batch * groups * dstate * seqlen;
        ScanInputs {
            shape,
            u: g.fill(bdl, -1.0, 1.0),
            delta: g.fill(bdl, -0.5, 0.5),
            a: (0..dim * dstate)
                .map(|i| -((i % dstate) as f32 + 1.0))
                .collect(),
            b: g.fill(bc, -1.0, 1.0),
            c: g.fill(bc, -1.0, 1.0),
            d: vec![1.0; dim],
            // softplus(bias) in ~[1e-3, 1e-1]: inverse softplus of dt.
            bias: (0..dim)
                .map(|_| {
                    let dt = (g.uniform(0.001f32.ln(), 0.1f32.ln())).exp();
                    dt + (-(-dt).exp_m1()).ln()
                })
                .collect(),
        }
    }

    /// The arguments as the kernel takes them.
    pub fn args(&self) -> ss2d_core::ScanArgs<'_> {
        ss2d_core::ScanArgs {
            u: &self.u,
            delta: &self.delta,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d_skip: Some(&self.d),
            z: None,
            delta_bias: Some(&self.bias),
            delta_softplus: true,
            initial_state: None,
        }
    }
}

/// `C (m x n) = A (m x k) B (k x n)` with `ss2d_core::gemm`, one call per `block` rows of `A`
/// as the layer's items call it: `x` is `A` with adjacent columns (`(m, k)` row-major), or
/// channel-first `(k, m)` read through strides (`cf`); `w` is `B`, `(k, n)` row-major.
#[allow(clippy::too_many_arguments)]
pub fn blocked_product(
    m: usize,
    k: usize,
    n: usize,
    block: usize,
    cf: bool,
    x: &[f32],
    w: &[f32],
    c: &mut [f32],
) {
    for (j, cb) in c[..m * n].chunks_mut(block * n).enumerate() {
        let (l0, rows) = (j * block, cb.len() / n);
        let (a, a_strides) = if cf {
            (&x[l0..], (1, m))
        } else {
            (&x[l0 * k..(l0 + rows) * k], (k, 1))
        };
        let p = ss2d_core::gemm::Product {
            m: rows,
            k,
            n,
            a,
            a_strides,
            b: w,
            b_row_stride: n,
            bias: ss2d_core::gemm::Bias::None,
            silu: false,
        };
        p.run(cb, n).expect("gemm");
    }
}

/// `C = A B` for channel-last `A` (`m x k`) in blocks of `block` rows, `C` stored transposed
/// (`Product::run_transposed`): column `j` of block `i` at `c[j * m + i * block..]`, or with
/// `hot` every block at `c[j * block..]` (the output stays in cache).
#[allow(clippy::too_many_arguments)]
pub fn blocked_product_t(
    m: usize,
    k: usize,
    n: usize,
    block: usize,
    hot: bool,
    x: &[f32],
    w: &[f32],
    c: &mut [f32],
) {
    let mut l0 = 0;
    while l0 < m {
        let rows = block.min(m - l0);
        let p = ss2d_core::gemm::Product {
            m: rows,
            k,
            n,
            a: &x[l0 * k..(l0 + rows) * k],
            a_strides: (k, 1),
            b: w,
            b_row_stride: n,
            bias: ss2d_core::gemm::Bias::None,
            silu: false,
        };
        let r = if hot {
            p.run_transposed(c, block)
        } else {
            p.run_transposed(&mut c[l0..], m)
        };
        r.expect("gemm");
        l0 += rows;
    }
}

/// Runs `f` for about 0.3 s (the clock ramps up), then `reps` timed runs: `(median, best)`
/// seconds.
pub fn time_runs(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let warm = std::time::Instant::now();
    while warm.elapsed().as_secs_f64() < 0.3 {
        f();
    }
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// The first `n` command-line arguments as numbers (the examples' sizes); panics with the
/// example's usage line when one is missing or not a number.
pub fn size_args(n: usize, usage: &str) -> Vec<usize> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .take(n)
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(a.len() == n, "usage: {usage}");
    a
}

/// A deterministic SS2D scan problem (batch 1) for the examples: `x` `(D, H, W)` or `(H, W, D)`
/// and the scan's weights.
pub struct Ss2dCase {
    /// The shape.
    pub shape: ss2d_std::unfused::Ss2dScanShape,
    /// The input.
    pub x: Vec<f32>,
    x_proj_weight: Vec<f32>,
    dt_projs_weight: Vec<f32>,
    dt_projs_bias: Vec<f32>,
    a_logs: Vec<f32>,
    ds: Vec<f32>,
}

impl Ss2dCase {
    /// `d` channels on an `h x w` grid, `n` states, rank `r`, channel-first when `cf`.
    pub fn new(d: usize, h: usize, w: usize, n: usize, r: usize, cf: bool) -> Self {
        let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
        let shape = ss2d_std::unfused::Ss2dScanShape {
            batch: 1,
            dim: d,
            h,
            w,
            dstate: n,
            dt_rank: r,
            mode: Default::default(),
            channel_first: cf,
        };
        Ss2dCase {
            shape,
            x: (0..d * h * w).map(|i| val(i, 7919)).collect(),
            x_proj_weight: (0..4 * (r + 2 * n) * d)
                .map(|i| val(i, 104_729) * 0.2)
                .collect(),
            dt_projs_weight: (0..4 * d * r).map(|i| val(i, 15_485_863)).collect(),
            dt_projs_bias: (0..4 * d).map(|i| val(i, 32_452_843) - 3.0).collect(),
            a_logs: (0..4 * d * n)
                .map(|i| ((i % n) as f32 + 1.0).ln())
                .collect(),
            ds: vec![1.0f32; 4 * d],
        }
    }

    /// The weights, borrowed.
    pub fn weights(&self) -> ss2d_std::unfused::Ss2dScanWeights<'_> {
        ss2d_std::unfused::Ss2dScanWeights {
            x_proj_weight: &self.x_proj_weight,
            dt_projs_weight: &self.dt_projs_weight,
            dt_projs_bias: &self.dt_projs_bias,
            a_logs: &self.a_logs,
            ds: &self.ds,
        }
    }
}
