//! Shared golden-file loading for the ss2d-std tests.
#![allow(dead_code)]
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};

pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden");

pub struct Golden {
    pub bytes: Vec<u8>,
    pub meta: HashMap<String, String>,
}

impl Golden {
    pub fn load(path: &Path) -> Golden {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, md) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let meta = md.metadata().clone().unwrap_or_default();
        Golden { bytes, meta }
    }

    pub fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes)
            .expect("safetensors")
            .tensor(name)
            .is_ok()
    }

    pub fn tensor(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.bytes).expect("safetensors");
        let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn meta(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("metadata {key}"))
    }

    pub fn usize(&self, key: &str) -> usize {
        self.meta(key).parse().unwrap()
    }
}

pub fn golden_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(GOLDEN).join(dir))
        .expect("golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// max|a - b| / max|ref|.
pub fn rel_err(a: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(a.len(), reference.len());
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    if scale == 0.0 {
        err
    } else {
        err / scale
    }
}

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
    for path in golden_files("ss2d") {
        let g = Golden::load(&path);
        let Ok(mode) = ScanMode::from_name(g.meta("scan_mode")) else {
            continue;
        };
        if !DEBUG.iter().all(|t| g.has(t)) {
            continue;
        }
        let shape = Ss2dScanShape {
            batch: g.usize("Bsz"),
            dim: g.usize("d_inner"),
            h: g.usize("H"),
            w: g.usize("W"),
            dstate: g.usize("d_state"),
            dt_rank: g.usize("dt_rank_resolved"),
            mode,
            channel_first: true,
        };
        out.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            shape,
            x_proj_weight: g.tensor("x_proj_weight"),
            dt_projs_weight: g.tensor("dt_projs_weight"),
            dt_projs_bias: g.tensor("dt_projs_bias"),
            a_logs: g.tensor("A_logs"),
            ds: g.tensor("Ds"),
            g,
        });
    }
    out
}
