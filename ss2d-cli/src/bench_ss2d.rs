//! `ss2d bench --op ss2d`: the fused SS2D scan (`ss2d_std::fused::ss2d_scan`) against the
//! unfused composition (`ss2d_std::unfused::ss2d_scan_unfused`: cross-scan, x_proj, dt_proj,
//! selective scan over `(B, 4D, L)`, cross-merge), side by side.
//!
//! Shapes are `B=..,D=..,H=..,W=..,N=..,R=..` (`D` = `d_inner`, `R` = `dt_rank`; `B` defaults
//! to 1). Default: VMamba-T s1l8 stage 1 (`D 96, 56 x 56, N 1, R 6`, channel-first) and
//! vanilla VMamba-T (v0) stage 1 (`D 192, 56 x 56, N 16, R 6`, channel-last, as v0 runs).
//!
//! An element is one `(b, k, d, l, n)` state update: `elements = B * 4 * D * L * N`. Inputs are
//! deterministic (a seeded LCG) and VMamba-like: `x ~ U(-1, 1)`, `x_proj_weight ~
//! U(+-1/sqrt(D))` (nn.Linear's init), `dt_projs_weight ~ U(+-R^-0.5)`, `dt_projs_bias =
//! softplus^-1(dt)` with `dt` log-uniform in `[1e-3, 1e-1]` (`mamba_init.dt_init`), `A_logs =
//! log(1..=N)`, `Ds = 1`. Each bench checks fused against unfused (max |fused - unfused| <=
//! 1e-5 x max |unfused|) and refuses to report a speed for a wrong result.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use ss2d_core::SimdLevel;
use ss2d_std::cross::ScanMode;
use ss2d_std::fused::ss2d_scan;
use ss2d_std::unfused::{ss2d_scan_unfused, Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

use crate::bench::{
    dur, fill, measure, rel_diff, si, Lcg, RepPolicy, Timing, CHECK_REL, MAX_BENCH_BYTES,
};
use crate::error::{zeros, Error};
use crate::roofline::{limit_json, measure_peak, pct, peak_json, peak_line, ss2d_work, Peak, Work};

/// `--layout` of `bench --op ss2d`: of `x` and `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchLayout {
    /// `(B, D, H, W)`.
    Cf,
    /// `(B, H, W, D)`.
    Cl,
}

impl BenchLayout {
    /// `cf` / `cl`.
    pub fn name(self) -> &'static str {
        match self {
            BenchLayout::Cf => "cf",
            BenchLayout::Cl => "cl",
        }
    }

    fn channel_first(self) -> bool {
        self == BenchLayout::Cf
    }
}

/// A problem size for `--op ss2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ss2dBenchShape {
    /// Batch.
    pub b: usize,
    /// Channels (`d_inner`).
    pub d: usize,
    /// Grid height.
    pub h: usize,
    /// Grid width.
    pub w: usize,
    /// State size (`d_state`).
    pub n: usize,
    /// `dt_rank`.
    pub r: usize,
}

/// The default cases: VMamba-T s1l8 stage 1 (channel-first) and vanilla VMamba-T (v0)
/// stage 1 (channel-last).
pub const DEFAULT_CASES: [(Ss2dBenchShape, BenchLayout); 2] = [
    (
        Ss2dBenchShape {
            b: 1,
            d: 96,
            h: 56,
            w: 56,
            n: 1,
            r: 6,
        },
        BenchLayout::Cf,
    ),
    (
        Ss2dBenchShape {
            b: 1,
            d: 192,
            h: 56,
            w: 56,
            n: 16,
            r: 6,
        },
        BenchLayout::Cl,
    ),
];

impl fmt::Display for Ss2dBenchShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "B={},D={},H={},W={},N={},R={}",
            self.b, self.d, self.h, self.w, self.n, self.r
        )
    }
}

impl FromStr for Ss2dBenchShape {
    type Err = String;

    /// Parses `B=1,D=96,H=56,W=56,N=1,R=6`; `B` defaults to 1, the others are required.
    /// Keys are case-insensitive; every value must be a positive integer.
    fn from_str(s: &str) -> Result<Self, String> {
        const KEYS: [&str; 6] = ["B", "D", "H", "W", "N", "R"];
        const EXAMPLE: &str = "B=1,D=96,H=56,W=56,N=1,R=6";
        let mut vals: [Option<usize>; 6] = [None; 6];
        if s.trim().is_empty() {
            return Err(format!("empty shape (expected e.g. {EXAMPLE})"));
        }
        for part in s.split(',') {
            let part = part.trim();
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!(
                    "`{part}` is not KEY=VALUE (keys: B, D, H, W, N, R)"
                ));
            };
            let k = k.trim().to_ascii_uppercase();
            let Some(i) = KEYS.iter().position(|&key| key == k) else {
                return Err(format!(
                    "unknown key `{k}` (keys for --op ss2d: B, D, H, W, N, R, e.g. {EXAMPLE})"
                ));
            };
            if vals[i].is_some() {
                return Err(format!("key `{k}` given twice"));
            }
            let v = v.trim();
            let x: usize = v.parse().map_err(|e: std::num::ParseIntError| {
                use std::num::IntErrorKind::*;
                match e.kind() {
                    PosOverflow => format!("{k}={v} is too large"),
                    _ => format!("{k}={v} is not a positive integer"),
                }
            })?;
            if x == 0 {
                return Err(format!("{k} must be at least 1"));
            }
            vals[i] = Some(x);
        }
        let need =
            |i: usize| vals[i].ok_or_else(|| format!("missing key `{}` (e.g. {EXAMPLE})", KEYS[i]));
        Ok(Ss2dBenchShape {
            b: vals[0].unwrap_or(1),
            d: need(1)?,
            h: need(2)?,
            w: need(3)?,
            n: need(4)?,
            r: need(5)?,
        })
    }
}

impl Ss2dBenchShape {
    /// The library shape.
    pub fn scan_shape(&self, mode: ScanMode, layout: BenchLayout) -> Ss2dScanShape {
        Ss2dScanShape {
            batch: self.b,
            dim: self.d,
            h: self.h,
            w: self.w,
            dstate: self.n,
            dt_rank: self.r,
            mode,
            channel_first: layout.channel_first(),
        }
    }

    /// `B * 4 * D * H * W * N`, `None` on overflow.
    pub fn elements(&self) -> Option<usize> {
        self.b
            .checked_mul(4)?
            .checked_mul(self.d)?
            .checked_mul(self.h)?
            .checked_mul(self.w)?
            .checked_mul(self.n)
    }

    /// Everything a bench needs before allocating: the library's size validation, the element
    /// count representable, and the unfused path's buffers below [`MAX_BENCH_BYTES`].
    pub fn check(&self) -> Result<(), Error> {
        let s = self.scan_shape(ScanMode::Cross2d, BenchLayout::Cf);
        let sizes = s.sizes().map_err(|source| Error::Core {
            context: format!("shape {self}"),
            source,
        })?;
        if self.elements().is_none() {
            return Err(Error::Usage(format!("shape {self}: B*4*D*H*W*N overflows")));
        }
        // x, two outputs; xs, dts, ys; x_dbl; Bs, Cs (f32 each).
        let bytes = (|| {
            sizes
                .x_len
                .checked_mul(3)?
                .checked_add(sizes.seq_len.checked_mul(3)?)?
                .checked_add(sizes.x_dbl_len)?
                .checked_add(sizes.bc_len.checked_mul(2)?)?
                .checked_mul(4)
        })();
        match bytes {
            Some(b) if b <= MAX_BENCH_BYTES => Ok(()),
            _ => Err(Error::Usage(format!(
                "shape {self} needs more than {} GiB of buffers",
                MAX_BENCH_BYTES >> 30
            ))),
        }
    }
}

/// The inputs of an SS2D bench (see the module docs for the distributions).
#[derive(Clone, Debug)]
pub struct Ss2dInputs {
    /// `x` (B, D, H, W) or (B, H, W, D) (i.i.d., so the same data serves both layouts).
    pub x: Vec<f32>,
    /// `x_proj_weight` (4, R + 2N, D).
    pub x_proj_weight: Vec<f32>,
    /// `dt_projs_weight` (4, D, R).
    pub dt_projs_weight: Vec<f32>,
    /// `dt_projs_bias` (4, D).
    pub dt_projs_bias: Vec<f32>,
    /// `A_logs` (4D, N).
    pub a_logs: Vec<f32>,
    /// `Ds` (4D,).
    pub ds: Vec<f32>,
}

impl Ss2dInputs {
    /// Deterministic inputs for `shape` (checked first: nothing is allocated for a bad shape).
    pub fn generate(shape: &Ss2dBenchShape, seed: u64) -> Result<Ss2dInputs, Error> {
        shape.check()?;
        // check() validated every product below.
        let (d, n, r) = (shape.d, shape.n, shape.r);
        let kd = 4 * d;
        let mut rng = Lcg::new(seed);
        let x = fill(&mut rng, "`x`", shape.b * d * shape.h * shape.w, -1.0, 1.0)?;
        let a = 1.0 / (d as f64).sqrt();
        let x_proj_weight = fill(&mut rng, "`x_proj_weight`", kd * (r + 2 * n), -a, a)?;
        let a = 1.0 / (r as f64).sqrt();
        let dt_projs_weight = fill(&mut rng, "`dt_projs_weight`", kd * r, -a, a)?;
        let mut dt_projs_bias = zeros("`dt_projs_bias`", kd)?;
        let (lo, hi) = (1e-3f64.ln(), 1e-1f64.ln());
        for b in &mut dt_projs_bias {
            let dt = (lo + (hi - lo) * rng.next_f64()).exp().max(1e-4);
            // Inverse softplus: dt + ln(-expm1(-dt)).
            *b = (dt + (-(-dt).exp_m1()).ln()) as f32;
        }
        let mut a_logs = zeros("`A_logs`", kd * n)?;
        for row in a_logs.chunks_exact_mut(n) {
            for (i, v) in row.iter_mut().enumerate() {
                *v = ((i + 1) as f32).ln();
            }
        }
        let ds = vec![1.0f32; kd];
        Ok(Ss2dInputs {
            x,
            x_proj_weight,
            dt_projs_weight,
            dt_projs_bias,
            a_logs,
            ds,
        })
    }

    /// The library's weights borrowing these inputs.
    pub fn weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.x_proj_weight,
            dt_projs_weight: &self.dt_projs_weight,
            dt_projs_bias: &self.dt_projs_bias,
            a_logs: &self.a_logs,
            ds: &self.ds,
        }
    }
}

/// One `--op ss2d` result.
#[derive(Clone, Debug)]
pub struct Ss2dBenchResult {
    /// The shape.
    pub shape: Ss2dBenchShape,
    /// The cross-scan mode.
    pub mode: ScanMode,
    /// Layout of `x` and `y`.
    pub layout: BenchLayout,
    /// Threads (both paths).
    pub threads: usize,
    /// SIMD level compiled in.
    pub isa: &'static str,
    /// `B * 4 * D * L * N`.
    pub elements: usize,
    /// The fused scan.
    pub fused: Timing,
    /// The unfused composition.
    pub unfused: Timing,
    /// `max |fused - unfused| / max |unfused|`.
    pub max_rel_diff: f64,
    /// The fused scan's work in the roofline model ([`crate::roofline::ss2d_work`]: `x_proj`,
    /// `dt_proj` and the scan).
    pub limit: Work,
}

fn json_num(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

impl Ss2dBenchResult {
    /// Fused speed over unfused speed.
    pub fn speedup(&self) -> f64 {
        self.unfused.median_s / self.fused.median_s
    }

    /// The fused scan's time at the model's limit on `peak`.
    pub fn limit_s(&self, peak: &Peak) -> f64 {
        peak.secs(self.limit)
    }

    /// One line of JSON, keys in the documented order (the fused scan's `limit_s` and
    /// `roofline` share, and the measured `peak`, last).
    pub fn to_json(&self, peak: &Peak) -> String {
        let s = &self.shape;
        format!(
            "{{\"op\":\"ss2d\",\"shape\":{{\"B\":{},\"D\":{},\"H\":{},\"W\":{},\"N\":{},\"R\":{}}},\
             \"mode\":\"{}\",\"layout\":\"{}\",\"threads\":{},\"isa\":\"{}\",\
             \"fused\":{{\"median_s\":{},\"elements_per_s\":{},{}}},\
             \"unfused\":{{\"median_s\":{},\"elements_per_s\":{}}},\"speedup\":{},{}}}",
            s.b,
            s.d,
            s.h,
            s.w,
            s.n,
            s.r,
            self.mode.name(),
            self.layout.name(),
            self.threads,
            self.isa,
            json_num(self.fused.median_s),
            json_num(self.fused.elements_per_s),
            limit_json(self.limit_s(peak), self.fused.median_s),
            json_num(self.unfused.median_s),
            json_num(self.unfused.elements_per_s),
            json_num(self.speedup()),
            peak_json(peak),
        )
    }
}

/// Times the fused scan and the unfused composition on one shape.
pub fn bench_ss2d(
    shape: &Ss2dBenchShape,
    mode: ScanMode,
    layout: BenchLayout,
    threads: usize,
    reps: Option<usize>,
) -> Result<Ss2dBenchResult, Error> {
    let inputs = Ss2dInputs::generate(shape, 0x55D2_2D5C)?;
    let s = shape.scan_shape(mode, layout);
    let w = inputs.weights();
    let elements = shape.elements().unwrap_or(usize::MAX);
    let par = Parallelism::Threads(threads);
    let core_err = |source| Error::Core {
        context: format!("shape {shape}"),
        source,
    };
    let mut y_fused = zeros("fused `y`", inputs.x.len())?;
    let mut y_unfused = zeros("unfused `y`", inputs.x.len())?;
    let policy = RepPolicy {
        fixed: reps,
        target: Duration::from_secs(1),
        min: 3,
        max: 100_000,
        warmup: true,
    };
    // One untimed run of each first: the thread pool, page faults and caches must not skew the
    // adaptive repetition count (measure() sizes it from its own first run).
    ss2d_scan(&s, &w, &inputs.x, &mut y_fused, par).map_err(core_err)?;
    ss2d_scan_unfused(&s, &w, &inputs.x, &mut y_unfused, par).map_err(core_err)?;
    let (f_med, f_reps) =
        measure(policy, || ss2d_scan(&s, &w, &inputs.x, &mut y_fused, par)).map_err(core_err)?;
    let (u_med, u_reps) = measure(policy, || {
        ss2d_scan_unfused(&s, &w, &inputs.x, &mut y_unfused, par)
    })
    .map_err(core_err)?;
    let rel = rel_diff(&y_fused, &y_unfused);
    if rel.is_nan() || rel > CHECK_REL {
        return Err(Error::Check(format!(
            "shape {shape} ({} {}): fused and unfused disagree: max |fused - unfused| / \
             max |unfused| = {rel:e} > {CHECK_REL:e}",
            mode.name(),
            layout.name()
        )));
    }
    let per_s = |t: f64| elements as f64 / t;
    Ok(Ss2dBenchResult {
        shape: *shape,
        mode,
        layout,
        threads,
        isa: SimdLevel::current().name(),
        elements,
        fused: Timing {
            median_s: f_med,
            reps: f_reps,
            elements_per_s: per_s(f_med),
        },
        unfused: Timing {
            median_s: u_med,
            reps: u_reps,
            elements_per_s: per_s(u_med),
        },
        max_rel_diff: rel,
        limit: ss2d_work(shape.b * shape.h * shape.w, shape.d, shape.n, shape.r),
    })
}

fn table_header(threads: usize, peak: &Peak) -> String {
    format!(
        "ss2d bench --op ss2d: isa {} ({} lanes), {threads} thread(s); fused scan vs unfused \
         composition; element = one (b,k,d,l,n) state update (4*D*H*W*N per batch item)\n{}\n\
         {:<30} {:>7} {:>3} {:>10} {:>11} {:>5} {:>13} {:>5} {:>11} {:>5} {:>13} {:>8} {:>9}",
        SimdLevel::current().name(),
        SimdLevel::current().lanes(),
        peak_line(peak),
        "shape",
        "mode",
        "lay",
        "elements",
        "fused",
        "reps",
        "fused elem/s",
        "roof",
        "unfused",
        "reps",
        "unfus elem/s",
        "speedup",
        "max rel"
    )
}

fn table_row(r: &Ss2dBenchResult, peak: &Peak) -> String {
    format!(
        "{:<30} {:>7} {:>3} {:>10} {:>11} {:>5} {:>13} {:>5} {:>11} {:>5} {:>13} {:>7.2}x {:>9.1e}",
        r.shape.to_string(),
        r.mode.name(),
        r.layout.name(),
        si(r.elements as f64),
        dur(r.fused.median_s),
        r.fused.reps,
        si(r.fused.elements_per_s),
        pct(Peak::share(r.limit_s(peak), r.fused.median_s)),
        dur(r.unfused.median_s),
        r.unfused.reps,
        si(r.unfused.elements_per_s),
        r.speedup(),
        r.max_rel_diff
    )
}

/// `ss2d bench --op ss2d ...`: every shape (default: [`DEFAULT_CASES`]), a table or JSON lines.
pub fn command(a: &crate::cli::BenchArgs, out: &mut dyn Write) -> Result<(), Error> {
    if !a.config.is_empty() || !a.sweep.is_empty() {
        return Err(Error::Usage(
            "--config and --sweep apply to bench --op layer only".into(),
        ));
    }
    let mode = a.mode.unwrap_or_default();
    let cases: Vec<(Ss2dBenchShape, BenchLayout)> = if a.shape.is_empty() {
        DEFAULT_CASES
            .iter()
            .map(|&(s, l)| (s, a.layout.unwrap_or(l)))
            .collect()
    } else {
        a.shape
            .iter()
            .map(|s| {
                s.parse::<Ss2dBenchShape>()
                    .map(|shape| (shape, a.layout.unwrap_or(BenchLayout::Cf)))
                    .map_err(|e| Error::Usage(format!("invalid --shape `{s}` for --op ss2d: {e}")))
            })
            .collect::<Result<_, _>>()?
    };
    // Check every shape before timing (or printing) anything.
    for (s, _) in &cases {
        s.check()?;
    }
    let threads = a.threads as usize;
    let reps = a.reps.map(|k| k as usize);
    let peak = measure_peak(threads)?;
    if !a.json {
        writeln!(out, "{}", table_header(threads, &peak)).map_err(Error::Stdout)?;
    }
    for (s, layout) in &cases {
        let r = bench_ss2d(s, mode, *layout, threads, reps)?;
        let line = if a.json {
            r.to_json(&peak)
        } else {
            table_row(&r, &peak)
        };
        writeln!(out, "{line}").map_err(Error::Stdout)?;
        out.flush().map_err(Error::Stdout)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes() {
        let s: Ss2dBenchShape = "B=1,D=96,H=56,W=56,N=1,R=6".parse().unwrap();
        assert_eq!(s, DEFAULT_CASES[0].0);
        assert_eq!(s.to_string(), "B=1,D=96,H=56,W=56,N=1,R=6");
        let s: Ss2dBenchShape = "d=8, h=5, w=7, n=2, r=1".parse().unwrap();
        assert_eq!((s.b, s.d, s.h, s.w, s.n, s.r), (1, 8, 5, 7, 2, 1));
        for (bad, what) in [
            ("", "empty"),
            ("D=8,H=4,W=4,N=2", "missing key `R`"),
            ("D=8,L=4,N=2", "unknown key `L`"),
            ("D=8,H=4,W=4,N=2,R=1,D=3", "twice"),
            ("D=0,H=4,W=4,N=2,R=1", "at least 1"),
            ("D=99999999999999999999999,H=4,W=4,N=2,R=1", "too large"),
            ("D=x,H=4,W=4,N=2,R=1", "not a positive integer"),
        ] {
            let e = bad.parse::<Ss2dBenchShape>().unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_sizes() {
        let s: Ss2dBenchShape = "D=8,H=4,W=4,N=300,R=1".parse().unwrap();
        assert!(s.check().is_err());
        let s: Ss2dBenchShape = "B=100000,D=100000,H=1000,W=1000,N=16,R=6".parse().unwrap();
        assert!(Ss2dInputs::generate(&s, 1).is_err());
    }

    #[test]
    fn inputs_and_json() {
        let s: Ss2dBenchShape = "B=2,D=16,H=5,W=7,N=2,R=1".parse().unwrap();
        let a = Ss2dInputs::generate(&s, 1).unwrap();
        assert_eq!(a.x, Ss2dInputs::generate(&s, 1).unwrap().x);
        assert_eq!(a.x_proj_weight.len(), 4 * 5 * 16);
        assert!(a.x_proj_weight.iter().all(|v| v.abs() <= 0.25));
        assert_eq!(&a.a_logs[..2], &[0.0, 2f32.ln()]);
        for &b in &a.dt_projs_bias {
            let dt = f64::from(b).exp().ln_1p();
            assert!((0.99e-3..=1.01e-1).contains(&dt), "{dt}");
        }
        for layout in [BenchLayout::Cf, BenchLayout::Cl] {
            let r = bench_ss2d(&s, ScanMode::Bidi, layout, 2, Some(2)).unwrap();
            let peak = Peak::unit();
            let v: serde_json::Value = serde_json::from_str(&r.to_json(&peak)).unwrap();
            assert_eq!(v["shape"]["W"], 7);
            // 4 x 70 positions x 16 channels: scan (19 + 22) x 32 per 16, x_proj 2 x 5 and
            // dt_proj 2 x 1 flops per position and channel.
            let flops = 4.0 * 70.0 * 16.0 * (41.0 * 2.0 + 10.0 + 2.0);
            let limit = v["fused"]["limit_s"].as_f64().unwrap();
            assert!((limit - flops / 1e9).abs() < 1e-12, "{limit}");
            assert!(v["fused"]["roofline"].as_f64().unwrap() > 0.0);
            assert_eq!(v["mode"], "bidi");
            assert_eq!(v["layout"], layout.name());
            assert_eq!(r.elements, 2 * 4 * 16 * 35 * 2);
            assert!(r.max_rel_diff <= CHECK_REL);
        }
    }
}
