//! The roofline column of `ss2d bench`: each kernel's and stage's time against what this
//! machine can do, measured at the start of the run.
//!
//! **Peak.** [`measure_peak`] times [`ss2d_core::peak::fma_chains`] (independent FMA chains,
//! one register of the level's lanes each) at the current SIMD level, best of several runs, in
//! flop/s of one core; with `T` threads the peak is `min(T, cores) x` that.
//!
//! **Limits** (seconds at the peak), from the model of issue 13:
//! - selective scan: per 16 `(d, l)` positions `19 + 11 N` vector operations of 16 lanes
//!   (`N = 1`: ~30: softplus ~17, `exp` 7, the rest FMAs; `N = 16`: ~195), one vector
//!   operation counting as one 16-lane FMA slot (32 flops of the peak);
//! - GEMM `M x K x N`: `2 M K N` flops; the fused SS2D scan adds its `x_proj`
//!   (`2 * 4 * L * D * (R + 2N)`) and `dt_proj` (`2 * 4 * L * R * D`) GEMMs to the scan;
//! - depthwise conv `k x k` over `H x W x C`: `2 k^2 H W C` flops;
//! - norm and gate: per 16 elements 4 operations (LayerNorm), + 20 (GELU), + 12 (SiLU gate)
//!   or 1 (plain gate).
//!
//! **Memory.** [`measure_peak`] also times a streaming copy of [`STREAM_BYTES`] (best of
//! several runs, on `min(T, cores)` threads) for the bandwidth; each op's compulsory traffic
//! (its inputs read once, its outputs written once, f32) over that bandwidth is its memory
//! limit, and the limit of an op is the larger of the two (the roofline): the 1D scan at
//! `N = 1` moves 12 bytes per `(d, l)` position for ~2 flop-equivalents of arithmetic per byte,
//! so on most machines its roof is memory, not FMAs.
//!
//! The share printed is `limit / measured` (100% = at the model's limit). The layer's GEMM
//! stages (`ss2d_core::gemm`) run at the current level like the other kernels; the `gemm_in`
//! stage also applies `in_proj`'s bias and, for gated forwards, the SiLU of `z`, which the
//! model does not count. The fused scan's `x_proj` runs on the same kernel, at the same level.

use std::time::Instant;

use ss2d_core::peak::{fma_chains, fma_chains_flops};
use ss2d_core::SimdLevel;

use crate::error::Error;

/// Bytes of the bandwidth measurement's source (and as many of its destination): far larger
/// than any core's L2, so the copy streams from the last-level cache or memory as the model
/// shapes' tensors do.
pub const STREAM_BYTES: usize = 64 << 20;

/// The measured FMA peak of one core at a level, and the streaming bandwidth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// The level measured.
    pub level: SimdLevel,
    /// Flop/s of one core (an FMA is two flops).
    pub flops_per_s: f64,
    /// Cores the limits may use: `min(threads, available cores)`.
    pub cores: usize,
    /// Bytes/s (read + written) of a streaming copy on those `cores` threads.
    pub bytes_per_s: f64,
}

/// The work of an op in the roofline model: flop-equivalents and compulsory bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Flop-equivalents (vector operations of 16 lanes x 32).
    pub flops: f64,
    /// Bytes read and written at least once.
    pub bytes: f64,
}

impl Work {
    /// `flops` flop-equivalents over `floats` f32 values of traffic.
    pub fn new(flops: f64, floats: usize) -> Work {
        Work {
            flops,
            bytes: 4.0 * floats as f64,
        }
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            flops: self.flops + o.flops,
            bytes: self.bytes + o.bytes,
        }
    }
}

impl std::iter::Sum for Work {
    fn sum<I: Iterator<Item = Work>>(it: I) -> Work {
        it.fold(Work::default(), |a, b| a + b)
    }
}

impl Peak {
    /// Flop/s available to a kernel on `cores` cores.
    pub fn total(&self) -> f64 {
        self.flops_per_s * self.cores as f64
    }

    /// Seconds `work` takes at the roof: the larger of its time at the FMA peak and its time
    /// at the bandwidth.
    pub fn secs(&self, work: Work) -> f64 {
        let mem = if self.bytes_per_s > 0.0 {
            work.bytes / self.bytes_per_s
        } else {
            0.0
        };
        (work.flops / self.total()).max(mem)
    }

    /// `limit_s / measured_s` (NaN when either is not positive).
    pub fn share(limit_s: f64, measured_s: f64) -> f64 {
        if limit_s > 0.0 && measured_s > 0.0 {
            limit_s / measured_s
        } else {
            f64::NAN
        }
    }
}

impl Peak {
    /// A fixed peak for tests of the limit arithmetic: 1 GFLOP/s and 1 GB/s on one core at
    /// the current level.
    #[cfg(test)]
    pub(crate) fn unit() -> Peak {
        Peak {
            level: SimdLevel::current(),
            flops_per_s: 1e9,
            cores: 1,
            bytes_per_s: 1e9,
        }
    }
}

/// Measures the peak of one core at the current level (about 50 ms; the best of 25 runs), for a bench on `threads`
/// threads.
pub fn measure_peak(threads: usize) -> Result<Peak, Error> {
    measure_peak_at(SimdLevel::current(), threads)
}

/// [`measure_peak`] at `level`.
pub fn measure_peak_at(level: SimdLevel, threads: usize) -> Result<Peak, Error> {
    let run = |iters: usize| -> Result<f64, Error> {
        let t = Instant::now();
        let s = fma_chains(level, iters, std::hint::black_box(0.999_999)).map_err(|source| {
            Error::Core {
                context: "FMA peak".into(),
                source,
            }
        })?;
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(s);
        Ok(dt)
    };
    // Size a run to ~2 ms, then keep the best of 25: on a shared machine the best run is the
    // one least disturbed by other processes.
    let mut iters = 1 << 12;
    while run(iters)? < 1e-3 && iters < 1 << 30 {
        iters *= 2;
    }
    iters = iters.saturating_mul(2);
    let mut best = f64::INFINITY;
    for _ in 0..25 {
        best = best.min(run(iters)?);
    }
    let flops = iters as f64 * fma_chains_flops(level) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = threads.clamp(1, cores);
    Ok(Peak {
        level,
        flops_per_s: flops / best.max(1e-12),
        cores,
        bytes_per_s: measure_bandwidth(cores),
    })
}

/// Bytes/s (read + written) of a copy of [`STREAM_BYTES`] split over `threads` threads, best
/// of 7 runs after a warm-up (page faults).
pub fn measure_bandwidth(threads: usize) -> f64 {
    let n = STREAM_BYTES / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; n];
    let part = n.div_ceil(threads.max(1));
    let mut best = f64::INFINITY;
    for rep in 0..8 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(part).zip(src.chunks(part)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        });
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(&dst);
        if rep > 0 {
            best = best.min(dt);
        }
    }
    2.0 * STREAM_BYTES as f64 / best.max(1e-12)
}

/// Flop-equivalents of a selective scan over `positions` `(b, d, l)` positions with `n` states
/// (vector operations of 16 lanes x 32).
pub fn scan_flops(positions: usize, n: usize) -> f64 {
    positions as f64 / 16.0 * (19.0 + 11.0 * n as f64) * 32.0
}

/// The 1D selective scan's work: [`scan_flops`]; `u`, `delta` and `out` per position and
/// `B`, `C` per `(b, g, n, l)` (`bc` values each).
pub fn scan_work(positions: usize, n: usize, bc: usize) -> Work {
    Work::new(scan_flops(positions, n), 3 * positions + 2 * bc)
}

/// Flops of an `m x k x n` GEMM.
pub fn gemm_flops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64
}

/// Flop-equivalents of the fused SS2D scan (`x_proj`, `dt_proj`, the 4-direction scan) for
/// `batch x l` positions, `d` channels, `n` states, rank `r`.
pub fn ss2d_flops(batch_l: usize, d: usize, n: usize, r: usize) -> f64 {
    let m = 4 * batch_l;
    scan_flops(m * d, n) + gemm_flops(m, d, r + 2 * n) + gemm_flops(m, r, d)
}

/// The fused SS2D scan's work: [`ss2d_flops`]; `x` read, `y` written, the projection
/// (`4 (R + 2N)` per position) written and read.
pub fn ss2d_work(batch_l: usize, d: usize, n: usize, r: usize) -> Work {
    Work::new(
        ss2d_flops(batch_l, d, n, r),
        2 * batch_l * d + 2 * batch_l * 4 * (r + 2 * n),
    )
}

/// A GEMM's work: [`gemm_flops`]; the operands read and the product written once.
pub fn gemm_work(m: usize, k: usize, n: usize) -> Work {
    Work::new(gemm_flops(m, k, n), m * k + k * n + m * n)
}

/// Flops of a `k x k` depthwise conv over `positions x c`.
pub fn conv_flops(k: usize, positions: usize, c: usize) -> f64 {
    2.0 * (k * k) as f64 * positions as f64 * c as f64
}

/// Flop-equivalents of the out-norm and gate over `elements` elements.
pub fn norm_gate_flops(elements: usize, layer_norm: bool, gelu: bool, gate: Option<bool>) -> f64 {
    let ops = if layer_norm { 4.0 } else { 0.0 }
        + if gelu { 20.0 } else { 0.0 }
        + match gate {
            Some(true) => 12.0,
            Some(false) => 1.0,
            None => 0.0,
        };
    elements as f64 / 16.0 * ops * 32.0
}

/// The header line of the peak.
pub fn peak_line(p: &Peak) -> String {
    format!(
        "FMA peak at {} (measured now): {:.1} GFLOP/s per core, x{} core(s) for the limits; \
         copy bandwidth {:.1} GB/s on {} thread(s); roof = model limit / time \
         (ss2d_cli::roofline)",
        p.level.name(),
        p.flops_per_s / 1e9,
        p.cores,
        p.bytes_per_s / 1e9,
        p.cores
    )
}

/// `"peak":{...}` for the JSON lines.
pub fn peak_json(p: &Peak) -> String {
    format!(
        "\"peak\":{{\"isa\":\"{}\",\"flops_per_s_per_core\":{},\"cores\":{},\"bytes_per_s\":{}}}",
        p.level.name(),
        json_num(p.flops_per_s),
        p.cores,
        json_num(p.bytes_per_s)
    )
}

/// `"limit_s":..,"roofline":..` for a JSON object.
pub fn limit_json(limit_s: f64, measured_s: f64) -> String {
    format!(
        "\"limit_s\":{},\"roofline\":{}",
        json_num(limit_s),
        json_num(Peak::share(limit_s, measured_s))
    )
}

/// `71%` (or `-` for NaN).
pub fn pct(share: f64) -> String {
    if share.is_finite() {
        format!("{:.0}%", share * 100.0)
    } else {
        "-".into()
    }
}

fn json_num(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_issue() {
        // Per 16 lanes: N = 1 ~30 operations, N = 16 ~195 (x 32 flops each).
        assert_eq!(scan_flops(16, 1), 30.0 * 32.0);
        assert_eq!(scan_flops(16, 16), 195.0 * 32.0);
        // s1l8's GEMMs: 58 MFLOP each (3136 x 96 x 96, x2 for... in_proj 96 -> 96).
        assert_eq!(gemm_flops(3136, 96, 96), 2.0 * 3136.0 * 96.0 * 96.0);
        // The depthwise conv of s1l8: 5.4 MFLOP.
        assert!((conv_flops(3, 3136, 96) - 5.42e6).abs() < 0.01e6);
        let p = Peak {
            level: SimdLevel::Baseline,
            flops_per_s: 1e9,
            cores: 2,
            bytes_per_s: 1e9,
        };
        assert_eq!(p.secs(Work::new(4e9, 0)), 2.0);
        // Memory-bound: 1 GB at 1 GB/s beats 1 s of flops.
        assert_eq!(p.secs(Work::new(1e9, 500_000_000)), 2.0);
        assert_eq!(scan_work(16, 1, 0).bytes, 3.0 * 16.0 * 4.0);
        assert_eq!(Peak::share(1.0, 2.0), 0.5);
        assert!(Peak::share(0.0, 2.0).is_nan());
        assert_eq!(pct(0.714), "71%");
        assert_eq!(pct(f64::NAN), "-");
    }

    #[test]
    fn peak_is_positive_at_every_level() {
        let mut n = 0;
        for level in SimdLevel::available() {
            let p = measure_peak_at(level, 1).unwrap();
            assert!(p.flops_per_s > 1e6, "{level}: {}", p.flops_per_s);
            assert!(p.bytes_per_s > 1e6, "{level}: {} B/s", p.bytes_per_s);
            assert_eq!(p.level, level);
            n += 1;
        }
        assert!(n > 0);
    }
}
