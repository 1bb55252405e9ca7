//! Deterministic VMamba-like weights and inputs (a seeded LCG), for demos, benches and tests.
//!
//! Follows VMamba's init inside `VSSM` (docs/semantics.md section 2, "Initialization"):
//! `in_proj` / `out_proj` trunc_normal(std 0.02) (as `VSSM._init_weights` re-initializes every
//! linear), conv2d PyTorch's default `U(+-1/sqrt(k*k))` for weight and bias, `x_proj_weight`
//! `U(+-1/sqrt(d_inner))`, `dt_projs_weight` `U(+-R^-0.5)`, `dt_projs_bias` the inverse
//! softplus of `dt = exp(U(ln 1e-3, ln 1e-1))` (floor 1e-4), `A_logs = ln(1..=N)`, `Ds = 1`,
//! out-norm weight 1 and bias 0.

use super::{LayerError, OutNorm, Ss2d, Ss2dConfig, Ss2dWeights, K};

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants; top 24 bits per draw).
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f64 / (1u64 << 24) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.next_f64()) as f32
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-12);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
    }

    /// Normal with standard deviation `std`, redrawn outside `+-2 std` (trunc_normal).
    pub fn trunc_normal(&mut self, std: f64) -> f32 {
        loop {
            let x = self.normal();
            if x.abs() <= 2.0 {
                return (x * std) as f32;
            }
        }
    }

    /// `n` draws from `U(lo, hi)`.
    pub fn fill(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// An input of `len` values with unit variance (`U(-sqrt 3, sqrt 3)`), as after the block's
/// LayerNorm.
pub fn input(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Lcg::new(seed ^ 0x1_0000_0001);
    let a = 3f64.sqrt();
    rng.fill(len, -a, a)
}

/// A layer with VMamba-like weights for `config` (validated first).
pub fn vmamba_like(config: &Ss2dConfig, seed: u64) -> Result<Ss2d, LayerError> {
    let d = config.resolve()?;
    let mut rng = Lcg::new(seed);
    let (dm, di, n, r, k) = (d.d_model, d.d_inner, d.d_state, d.dt_rank, d.d_conv);
    let dp = d.d_proj();
    let in_proj_weight = (0..dp * dm).map(|_| rng.trunc_normal(0.02)).collect();
    let (conv2d_weight, conv2d_bias) = if d.with_conv() {
        let bound = 1.0 / (k as f64);
        let w = rng.fill(di * k * k, -bound, bound);
        let b = d.conv_bias.then(|| rng.fill(di, -bound, bound));
        (Some(w), b)
    } else {
        (None, None)
    };
    let xb = 1.0 / (di as f64).sqrt();
    let x_proj_weight = rng.fill(K * (r + 2 * n) * di, -xb, xb);
    let rb = (r as f64).powf(-0.5);
    let dt_projs_weight = rng.fill(K * di * r, -rb, rb);
    let (lo, hi) = (1e-3f64.ln(), 1e-1f64.ln());
    let dt_projs_bias = (0..K * di)
        .map(|_| {
            let dt = (lo + (hi - lo) * rng.next_f64()).exp().max(1e-4);
            (dt + (-(-dt).exp_m1()).ln()) as f32
        })
        .collect();
    let a_logs = (0..K * di)
        .flat_map(|_| (1..=n).map(|v| (v as f32).ln()))
        .collect();
    let ds = vec![1.0f32; K * di];
    let (out_norm_weight, out_norm_bias) = if d.forward.out_norm == OutNorm::LayerNorm {
        (Some(vec![1.0f32; di]), Some(vec![0.0f32; di]))
    } else {
        (None, None)
    };
    let out_proj_weight = (0..dm * di).map(|_| rng.trunc_normal(0.02)).collect();
    Ss2d::from_weights(
        d,
        Ss2dWeights {
            in_proj_weight,
            in_proj_bias: None,
            conv2d_weight,
            conv2d_bias,
            x_proj_weight,
            dt_projs_weight,
            dt_projs_bias,
            a_logs,
            ds,
            out_norm_weight,
            out_norm_bias,
            out_proj_weight,
            out_proj_bias: None,
        },
    )
}
