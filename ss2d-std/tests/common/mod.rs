//! The SS2D-scan golden cases of the ss2d-std tests (loading and comparisons come from
//! `ss2d-testsupport`).
#![allow(dead_code, unused_imports)]
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};
pub use ss2d_testsupport::{bits, golden_cases, rel_err, Golden};

/// (B, D, L) -> (B, L, D).
pub fn to_channel_last(x: &[f32], b: usize, d: usize, l: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for di in 0..d {
            for li in 0..l {
                out[(bi * l + li) * d + di] = x[(bi * d + di) * l + li];
            }
        }
    }
    out
}

pub struct Case {
    pub name: String,
    pub shape: Ss2dScanShape,
    pub x_proj_weight: Vec<f32>,
    pub dt_projs_weight: Vec<f32>,
    pub dt_projs_bias: Vec<f32>,
    pub a_logs: Vec<f32>,
    pub ds: Vec<f32>,
    pub g: Golden,
}

impl Case {
    pub fn weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.x_proj_weight,
            dt_projs_weight: &self.dt_projs_weight,
            dt_projs_bias: &self.dt_projs_bias,
            a_logs: &self.a_logs,
            ds: &self.ds,
        }
    }

    /// x (B, D, L) channel-first: direction 0 of `debug.us` (row-major in every mode).
    pub fn x_cf(&self) -> Vec<f32> {
        let us = self.g.tensor("debug.us");
        let (b, d) = (self.shape.batch, self.shape.dim);
        let l = self.shape.h * self.shape.w;
        let mut x = Vec::with_capacity(b * d * l);
        for bi in 0..b {
            x.extend_from_slice(&us[bi * 4 * d * l..(bi * 4 * d + d) * l]);
        }
        x
    }
}

pub const DEBUG: [&str; 6] = [
    "debug.us",
    "debug.dts",
    "debug.Bs",
    "debug.Cs",
    "debug.ys",
    "debug.y_merged",
];

pub fn cases() -> Vec<Case> {
    let mut out = vec![];
    for path in golden_cases("ss2d") {
        let g = Golden::load(&path);
        let Ok(mode) = ScanMode::from_name(g.meta("scan_mode")) else {
            continue;
        };
        if !DEBUG.iter().all(|t| g.has(t)) {
            continue;
        }
        let shape = Ss2dScanShape {
            batch: g.meta_usize("Bsz"),
            dim: g.meta_usize("d_inner"),
            h: g.meta_usize("H"),
            w: g.meta_usize("W"),
            dstate: g.meta_usize("d_state"),
            dt_rank: g.meta_usize("dt_rank_resolved"),
            mode,
            channel_first: true,
        };
        out.push(Case {
            name: g.name.clone(),
            shape,
            x_proj_weight: g.tensor("x_proj_weight").to_vec(),
            dt_projs_weight: g.tensor("dt_projs_weight").to_vec(),
            dt_projs_bias: g.tensor("dt_projs_bias").to_vec(),
            a_logs: g.tensor("A_logs").to_vec(),
            ds: g.tensor("Ds").to_vec(),
            g,
        });
    }
    assert!(
        !out.is_empty(),
        "no golden SS2D case with the scan intermediates"
    );
    out
}
