//! `ss2d demo`: one VMamba-T s1l8 stage-1 SS2D layer (d_model 96, 56 x 56, batch 1,
//! `ssm_ratio 1`, `d_state 1`, `v05_noz`, channel-first) on deterministic VMamba-like weights
//! and input: checks the fast path against the scalar reference path, then times it.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use ss2d_core::SimdLevel;
use ss2d_std::layer::{init, Backend, ForwardOptions, Grid, Ss2d, Ss2dConfig, StageTimes, STAGES};
use ss2d_std::Parallelism;

use crate::bench::{dur, si};
use crate::error::Error;

/// Seed of the demo's weights (the input uses `SEED + 1`).
pub const SEED: u64 = 0x55D2_0096;

/// Timed forwards (the median is reported), after one warm-up.
pub const RUNS: usize = 9;

/// Progress on stderr: one line rewritten in place, only when stderr is a terminal (a log or a
/// pipe gets no carriage returns).
struct Progress {
    width: usize,
    on: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            width: 0,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, msg: &str) {
        if !self.on {
            return;
        }
        let pad = self.width.saturating_sub(msg.len());
        let _ = write!(std::io::stderr(), "\rss2d demo: {msg}{}", " ".repeat(pad));
        let _ = std::io::stderr().flush();
        self.width = msg.len();
    }

    fn done(&mut self) {
        if !self.on {
            return;
        }
        let _ = write!(
            std::io::stderr(),
            "\r{}\r",
            " ".repeat(self.width + "ss2d demo: ".len())
        );
        let _ = std::io::stderr().flush();
    }
}

/// max |a - b| and max |b| (NaN-propagating in the difference).
pub fn max_diff(a: &[f32], reference: &[f32]) -> (f32, f32) {
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(reference).fold(0.0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() || d > m {
            d
        } else {
            m
        }
    });
    (diff, scale)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn layer_err(e: ss2d_std::LayerError) -> Error {
    Error::Usage(format!("demo layer: {e}"))
}

/// `ss2d demo [--threads N]`.
pub fn command(a: &crate::cli::DemoArgs, out: &mut dyn Write) -> Result<(), Error> {
    let threads = a
        .threads
        .map_or_else(crate::scan::default_threads, |t| t as usize);
    let mut progress = Progress::new();
    let started = Instant::now();

    progress.show("building VMamba-T[s1l8] stage-1 layer (deterministic weights)...");
    let config = Ss2dConfig::s1l8(96);
    let layer: Ss2d = init::vmamba_like(&config, SEED).map_err(layer_err)?;
    let grid = Grid {
        batch: 1,
        h: 56,
        w: 56,
    };
    let dims = layer.dims().clone();
    let n: usize = dims.io_shape(grid).iter().product();
    let x = init::input(n, SEED + 1);

    progress.show("reference path (scalar products, conv, norm and selective scan)...");
    let mut reference = vec![0.0f32; n];
    let t0 = Instant::now();
    layer
        .forward_with(
            &x,
            grid,
            &mut reference,
            ForwardOptions {
                backend: Backend::Reference,
                ..ForwardOptions::default()
            },
        )
        .map_err(layer_err)?;
    let ref_s = t0.elapsed().as_secs_f64();

    let mut y = vec![0.0f32; n];
    let mut totals = Vec::with_capacity(RUNS);
    let mut stages: Vec<Vec<f64>> = vec![Vec::with_capacity(RUNS); STAGES.len()];
    for i in 0..=RUNS {
        if i == 0 {
            progress.show(&format!("fast path on {threads} thread(s): warm-up..."));
        } else {
            progress.show(&format!(
                "fast path on {threads} thread(s): timing run {i}/{RUNS}..."
            ));
        }
        let mut st = StageTimes::default();
        let t0 = Instant::now();
        layer
            .forward_with(
                &x,
                grid,
                &mut y,
                ForwardOptions {
                    backend: Backend::Fast,
                    par: Parallelism::Threads(threads),
                    times: Some(&mut st),
                    debug: None,
                },
            )
            .map_err(layer_err)?;
        let s = t0.elapsed().as_secs_f64();
        if i > 0 {
            totals.push(s);
            for (v, d) in stages.iter_mut().zip(st.as_array()) {
                v.push(d.as_secs_f64());
            }
        }
    }
    progress.done();

    let (diff, scale) = max_diff(&y, &reference);
    let rel = if scale > 0.0 { diff / scale } else { diff };
    let ok = f64::from(rel) <= crate::bench::CHECK_REL && !rel.is_nan();
    let t = median(&mut totals);
    let d_inner = dims.d_inner;
    let l = grid.h * grid.w;
    let elements = (4 * d_inner * l * dims.d_state * grid.batch) as f64;
    let mut w = |s: String| writeln!(out, "{s}").map_err(Error::Stdout);
    w(format!(
        "ss2d demo: VMamba-T[s1l8] stage-1 SS2D layer: d_model {}, d_inner {d_inner}, \
         d_state {}, dt_rank {}, {} ({}), batch {} x {}x{}, {} parameters",
        dims.d_model,
        dims.d_state,
        dims.dt_rank,
        dims.forward,
        if dims.channel_first {
            "channel-first"
        } else {
            "channel-last"
        },
        grid.batch,
        grid.h,
        grid.w,
        layer.param_count()
    ))?;
    w(format!(
        "  isa {} ({} lanes), {threads} thread(s)",
        SimdLevel::current().name(),
        SimdLevel::current().lanes()
    ))?;
    w(format!(
        "  check vs reference path: max |fast - ref| = {diff:.3e}, max |ref| = {scale:.3e}, \
         relative {rel:.2e} (limit {:.0e}): {}",
        crate::bench::CHECK_REL,
        if ok { "ok" } else { "FAILED" }
    ))?;
    let stage_txt: Vec<String> = STAGES
        .iter()
        .zip(stages.iter_mut())
        .map(|(name, v)| format!("{name} {}", dur(median(v))))
        .collect();
    w(format!(
        "  time per forward: {} (median of {RUNS}); {}images/s, {}elem/s \
         (element = one of 4 x d_inner x L x d_state state updates)",
        dur(t),
        si(1.0 / t),
        si(elements / t)
    ))?;
    w(format!("  stages (medians): {}", stage_txt.join(", ")))?;
    w(format!(
        "  reference path: {} ({:.0}x the fast path); demo took {:.1} s",
        dur(ref_s),
        ref_s / t,
        started.elapsed().as_secs_f64()
    ))?;
    out.flush().map_err(Error::Stdout)?;
    if ok {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "demo: the fast path and the reference path disagree: max |fast - ref| = {diff:e}, \
             max |ref| = {scale:e}"
        )))
    }
}
