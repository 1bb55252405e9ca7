//! `ss2d bench`: median time and elements/s of the kernel and the scalar reference.
//!
//! An element is one `(b, d, l, n)` state update: `elements = B * D * L * N`. Inputs are
//! deterministic (a seeded LCG) and drawn from the VMamba domain: `u ~ U(-1, 1)`,
//! `delta ~ U(-4, -2)`, `delta_bias = softplus^-1(U(1e-3, 1e-1))` (VMamba's dt init),
//! `A = -(1..=N)` per channel (the `A_logs` init), grouped `B`/`C` (B, G, N, L) `~ U(-1, 1)`,
//! `D = 1`, softplus on, channel-first. Every bench also checks the kernel against the reference
//! (max |kernel - ref| <= 1e-5 x max |ref|) so a fast wrong kernel is an error, not a result.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, SimdLevel, Walk};

use crate::error::{zeros, Error};
use crate::roofline::{limit_json, measure_peak, pct, peak_json, peak_line, scan_work, Peak, Work};
use crate::scan::{execute, Backend};

/// The operation a bench times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// The 1D selective scan (`ss2d scan`).
    Scan,
    /// The fused 4-direction SS2D scan against the unfused composition (see
    /// [`crate::bench_ss2d`]).
    Ss2d,
    /// The full SS2D layer (`ss2d layer`), stage by stage (see [`crate::bench_layer`]).
    Layer,
}

impl Op {
    /// The name on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Scan => "scan",
            Op::Ss2d => "ss2d",
            Op::Layer => "layer",
        }
    }
}

/// A problem size for `--op scan`: batch `B`, channels `D`, length `L`, state `N`, groups `G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    /// Batch.
    pub b: usize,
    /// Channels.
    pub d: usize,
    /// Sequence length.
    pub l: usize,
    /// State size.
    pub n: usize,
    /// B/C groups.
    pub g: usize,
}

/// Shapes run when no `--shape` is given: VMamba stage 1 (56 x 56 = 3136 positions) with the
/// 4 directions stacked as channels, v0 (d_inner 192, N 16) and v2 (d_inner 96, N 1).
pub const DEFAULT_SHAPES: [BenchShape; 2] = [
    BenchShape {
        b: 1,
        d: 768,
        l: 3136,
        n: 16,
        g: 4,
    },
    BenchShape {
        b: 1,
        d: 384,
        l: 3136,
        n: 1,
        g: 4,
    },
];

impl fmt::Display for BenchShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "B={},D={},L={},N={},G={}",
            self.b, self.d, self.l, self.n, self.g
        )
    }
}

impl FromStr for BenchShape {
    type Err = String;

    /// Parses `B=1,D=768,L=3136,N=16,G=4`; `D`, `L` and `N` are required, `B` and `G`
    /// default to 1. Keys are case-insensitive; every value must be a positive integer.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut vals: [Option<usize>; 5] = [None; 5];
        const KEYS: [&str; 5] = ["B", "D", "L", "N", "G"];
        if s.trim().is_empty() {
            return Err("empty shape (expected e.g. B=1,D=768,L=3136,N=16,G=4)".into());
        }
        for part in s.split(',') {
            let part = part.trim();
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("`{part}` is not KEY=VALUE (keys: B, D, L, N, G)"));
            };
            let k = k.trim().to_ascii_uppercase();
            let Some(i) = KEYS.iter().position(|&key| key == k) else {
                return Err(format!("unknown key `{k}` (keys: B, D, L, N, G)"));
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
        let need = |i: usize| vals[i].ok_or_else(|| format!("missing key `{}`", KEYS[i]));
        Ok(BenchShape {
            b: vals[0].unwrap_or(1),
            d: need(1)?,
            l: need(2)?,
            n: need(3)?,
            g: vals[4].unwrap_or(1),
        })
    }
}

impl BenchShape {
    /// The scan shape this bench runs (grouped B/C, channel-first).
    pub fn scan_shape(&self) -> ScanShape {
        ScanShape {
            batch: self.b,
            dim: self.d,
            seqlen: self.l,
            dstate: self.n,
            b: BcLayout::Grouped(self.g),
            c: BcLayout::Grouped(self.g),
            layout: Layout::ChannelFirst,
        }
    }

    /// Everything a bench needs of the shape, before anything is allocated or printed: the core
    /// validation, `B*D*L*N` representable, and the buffers below [`MAX_BENCH_BYTES`].
    pub fn check(&self) -> Result<(), Error> {
        let s = self.scan_shape();
        s.validate().map_err(|source| Error::Core {
            context: format!("shape {self}"),
            source,
        })?;
        if self.elements().is_none() {
            return Err(Error::Usage(format!("shape {self}: B*D*L*N overflows")));
        }
        // u, delta and two outputs (B*D*L each), B and C (B*G*N*L each), in bytes.
        let bytes = (|| {
            let bdl = self.b.checked_mul(self.d)?.checked_mul(self.l)?;
            let bc = s.bc_len(s.b).ok()?;
            bdl.checked_mul(4)?
                .checked_add(bc.checked_mul(2)?)?
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

    /// `B * D * L * N`, `None` on overflow.
    pub fn elements(&self) -> Option<usize> {
        self.b
            .checked_mul(self.d)?
            .checked_mul(self.l)?
            .checked_mul(self.n)
    }
}

/// A bench refuses to report the speed of a result further than this from the reference
/// (`max |got - ref| / max |ref|`; the measured error is about 5e-7).
pub const CHECK_REL: f64 = 1e-5;

/// `max |a - b| / max |b|` (`max |a - b|` when `b` is all zero); NaN when either side holds a
/// NaN, so a NaN output can never pass a check.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let max_ref = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let mut max_diff = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return f64::NAN;
        }
        max_diff = max_diff.max(d);
    }
    if b.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    if max_ref > 0.0 {
        f64::from(max_diff) / f64::from(max_ref)
    } else {
        f64::from(max_diff)
    }
}

/// The generator of the bench inputs: the one of the layer's deterministic weights.
pub use ss2d_std::layer::init::Lcg;

/// `n` draws from `U(lo, hi)`, allocated fallibly (`what` names the buffer in the error).
pub fn fill(rng: &mut Lcg, what: &str, n: usize, lo: f64, hi: f64) -> Result<Vec<f32>, Error> {
    let mut v = zeros(what, n)?;
    for x in &mut v {
        *x = rng.uniform(lo, hi);
    }
    Ok(v)
}

/// The inputs of a scan bench (see the module docs for the distributions).
#[derive(Clone, Debug)]
pub struct ScanInputs {
    /// `u` (B, D, L).
    pub u: Vec<f32>,
    /// `delta` (B, D, L).
    pub delta: Vec<f32>,
    /// `A` (D, N).
    pub a: Vec<f32>,
    /// `B` (B, G, N, L).
    pub b: Vec<f32>,
    /// `C` (B, G, N, L).
    pub c: Vec<f32>,
    /// `D` (D,).
    pub d: Vec<f32>,
    /// `delta_bias` (D,).
    pub bias: Vec<f32>,
}

/// Largest total input + output size a bench accepts (bytes), a guard against typos.
pub const MAX_BENCH_BYTES: usize = 16 << 30;

impl ScanInputs {
    /// Deterministic inputs for `shape` (validated first: no allocation for an invalid shape).
    pub fn generate(shape: &BenchShape, seed: u64) -> Result<ScanInputs, Error> {
        shape.check()?;
        // check() validated these products (and the B/C size) for overflow.
        let bdl = shape.b * shape.d * shape.l;
        let bc = shape.b * shape.g * shape.n * shape.l;
        let mut rng = Lcg::new(seed);
        let u = fill(&mut rng, "`u`", bdl, -1.0, 1.0)?;
        let delta = fill(&mut rng, "`delta`", bdl, -4.0, -2.0)?;
        let b = fill(&mut rng, "`B`", bc, -1.0, 1.0)?;
        let c = fill(&mut rng, "`C`", bc, -1.0, 1.0)?;
        let mut a = zeros("`A`", shape.d * shape.n)?;
        for row in a.chunks_exact_mut(shape.n) {
            for (k, x) in row.iter_mut().enumerate() {
                *x = -((k + 1) as f32);
            }
        }
        let d = vec![1.0f32; shape.d];
        let bias = (0..shape.d)
            .map(|_| {
                // Inverse softplus of dt ~ U(1e-3, 1e-1): dt + ln(-expm1(-dt)).
                let dt = 1e-3 + (1e-1 - 1e-3) * rng.next_f64();
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        Ok(ScanInputs {
            u,
            delta,
            a,
            b,
            c,
            d,
            bias,
        })
    }

    /// The core arguments borrowing these inputs (softplus on).
    pub fn args(&self) -> ScanArgs<'_> {
        ScanArgs {
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

/// Median time of one implementation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median seconds per run.
    pub median_s: f64,
    /// Timed runs.
    pub reps: usize,
    /// `elements / median_s`.
    pub elements_per_s: f64,
}

/// How many runs to time.
#[derive(Clone, Copy, Debug)]
pub struct RepPolicy {
    /// Exact count (`--reps`), else adaptive.
    pub fixed: Option<usize>,
    /// Adaptive: aim for at least this much timed time in total.
    pub target: Duration,
    /// Adaptive: at least this many runs.
    pub min: usize,
    /// Adaptive: at most this many runs.
    pub max: usize,
    /// Run once untimed first.
    pub warmup: bool,
}

/// Times `f` under `policy`; returns the median of the timed runs.
pub fn measure<E>(
    policy: RepPolicy,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<(f64, usize), E> {
    let mut times = Vec::new();
    let first = {
        let t = Instant::now();
        f()?;
        t.elapsed()
    };
    if !policy.warmup {
        times.push(first.as_secs_f64());
    }
    let reps = match policy.fixed {
        Some(k) => k,
        None => {
            let per = first.as_secs_f64().max(1e-9);
            let want = (policy.target.as_secs_f64() / per).ceil();
            // `as` saturates for huge values; clamp keeps it sane.
            (want as usize).clamp(policy.min, policy.max)
        }
    };
    while times.len() < reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((median(&mut times), times.len()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// One bench result.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// The op.
    pub op: Op,
    /// The shape.
    pub shape: BenchShape,
    /// Kernel threads.
    pub threads: usize,
    /// SIMD level compiled in.
    pub isa: &'static str,
    /// `B * D * L * N`.
    pub elements: usize,
    /// The kernel.
    pub kernel: Timing,
    /// The scalar reference (one thread).
    pub reference: Timing,
    /// `max |kernel - ref| / max |ref|`.
    pub max_rel_diff: f64,
    /// The kernel's work in the roofline model ([`crate::roofline::scan_work`]).
    pub limit: Work,
}

fn json_num(x: f64) -> String {
    // serde_json writes the shortest round-trip form, and `null` for non-finite values.
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

impl BenchResult {
    /// `kernel` speed over `reference` speed.
    pub fn speedup(&self) -> f64 {
        self.reference.median_s / self.kernel.median_s
    }

    /// The kernel's time at the model's limit on `peak`.
    pub fn limit_s(&self, peak: &Peak) -> f64 {
        peak.secs(self.limit)
    }

    /// One line of JSON, keys in the documented order (the kernel's `limit_s` and `roofline`
    /// share, and the measured `peak`, last).
    pub fn to_json(&self, peak: &Peak) -> String {
        let s = &self.shape;
        format!(
            "{{\"op\":\"{}\",\"shape\":{{\"B\":{},\"D\":{},\"L\":{},\"N\":{},\"G\":{}}},\
             \"threads\":{},\"isa\":\"{}\",\
             \"kernel\":{{\"median_s\":{},\"elements_per_s\":{},{}}},\
             \"reference\":{{\"median_s\":{},\"elements_per_s\":{}}},\"speedup\":{},{}}}",
            self.op.name(),
            s.b,
            s.d,
            s.l,
            s.n,
            s.g,
            self.threads,
            self.isa,
            json_num(self.kernel.median_s),
            json_num(self.kernel.elements_per_s),
            limit_json(self.limit_s(peak), self.kernel.median_s),
            json_num(self.reference.median_s),
            json_num(self.reference.elements_per_s),
            json_num(self.speedup()),
            peak_json(peak),
        )
    }
}

/// Times the scan kernel and the reference on one shape.
pub fn bench_scan(
    shape: &BenchShape,
    threads: usize,
    reps: Option<usize>,
    reference_reps: Option<usize>,
) -> Result<BenchResult, Error> {
    let inputs = ScanInputs::generate(shape, 0x55D2_2024)?;
    // generate() ran check(): the product is representable.
    let elements = shape.elements().unwrap_or(usize::MAX);
    let s = shape.scan_shape();
    let walk = Walk::forward(shape.l);
    let args = inputs.args();
    let core_err = |source| Error::Core {
        context: format!("shape {shape}"),
        source,
    };
    let mut out_k = zeros("kernel `out`", inputs.u.len())?;
    let mut out_r = zeros("reference `out`", inputs.u.len())?;
    let kernel = Backend::Kernel { threads };
    let (k_med, k_reps) = measure(
        RepPolicy {
            fixed: reps,
            target: Duration::from_secs(1),
            min: 3,
            max: 100_000,
            warmup: true,
        },
        || execute(kernel, &s, &walk, &args, &mut out_k, None),
    )
    .map_err(core_err)?;
    let (r_med, r_reps) = measure(
        RepPolicy {
            fixed: reference_reps.or(reps),
            target: Duration::from_secs(1),
            min: 1,
            max: 1_000,
            // Warmed like the kernel: a cold first run (page faults on `out`, caches) would
            // make the reference look slower and the speedup larger than it is.
            warmup: true,
        },
        || execute(Backend::Reference, &s, &walk, &args, &mut out_r, None),
    )
    .map_err(core_err)?;
    let rel = rel_diff(&out_k, &out_r);
    if rel.is_nan() || rel > CHECK_REL {
        return Err(Error::Check(format!(
            "shape {shape}: kernel and reference disagree: max |kernel - ref| / max |ref| = \
             {rel:e} > {CHECK_REL:e}"
        )));
    }
    let per_s = |t: f64| elements as f64 / t;
    Ok(BenchResult {
        op: Op::Scan,
        shape: *shape,
        threads,
        isa: SimdLevel::current().name(),
        elements,
        kernel: Timing {
            median_s: k_med,
            reps: k_reps,
            elements_per_s: per_s(k_med),
        },
        reference: Timing {
            median_s: r_med,
            reps: r_reps,
            elements_per_s: per_s(r_med),
        },
        max_rel_diff: rel,
        limit: scan_work(
            shape.b * shape.d * shape.l,
            shape.n,
            shape.b * shape.g * shape.n * shape.l,
        ),
    })
}

/// `1.23 G`, `45.6 M`, ... for throughput columns.
pub(crate) fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{v:.3} {unit}")
}

/// `12.3 ms`, `456 us`, `1.23 s`.
pub(crate) fn dur(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} us", s * 1e6)
    }
}

fn table_header(threads: usize, peak: &Peak) -> String {
    format!(
        "ss2d bench --op scan: isa {} ({} lanes), kernel on {threads} thread(s), scalar f32 \
         reference on 1; element = one (b,d,l,n) state update\n{}\n\
         {:<30} {:>10} {:>12} {:>6} {:>14} {:>5} {:>12} {:>5} {:>14} {:>9} {:>10}",
        SimdLevel::current().name(),
        SimdLevel::current().lanes(),
        peak_line(peak),
        "shape",
        "elements",
        "kernel",
        "reps",
        "kernel elem/s",
        "roof",
        "reference",
        "reps",
        "ref elem/s",
        "speedup",
        "max rel"
    )
}

fn table_row(r: &BenchResult, peak: &Peak) -> String {
    format!(
        "{:<30} {:>10} {:>12} {:>6} {:>14} {:>5} {:>12} {:>5} {:>14} {:>8.1}x {:>10.2e}",
        r.shape.to_string(),
        si(r.elements as f64),
        dur(r.kernel.median_s),
        r.kernel.reps,
        si(r.kernel.elements_per_s),
        pct(Peak::share(r.limit_s(peak), r.kernel.median_s)),
        dur(r.reference.median_s),
        r.reference.reps,
        si(r.reference.elements_per_s),
        r.speedup(),
        r.max_rel_diff
    )
}

/// `ss2d bench ...`: runs every shape and prints a table (or JSON lines) to `out`.
pub fn command(a: &crate::cli::BenchArgs, out: &mut dyn Write) -> Result<(), Error> {
    let Some(isa) = a.isa.as_deref() else {
        return command_at_level(a, out);
    };
    let levels: Vec<SimdLevel> = if isa.trim() == "all" {
        SimdLevel::available().collect()
    } else {
        vec![ss2d_std::cpu::level_by_name(isa.trim())
            .map_err(|m| Error::Usage(format!("--isa: {m}")))?]
    };
    let before = SimdLevel::current();
    let mut result = Ok(());
    for level in levels {
        SimdLevel::set_current(Some(level)).map_err(|e| Error::Usage(format!("--isa: {e}")))?;
        result = command_at_level(a, out);
        if result.is_err() {
            break;
        }
    }
    SimdLevel::set_current(Some(before)).map_err(|e| Error::Usage(format!("--isa: {e}")))?;
    result
}

/// `ss2d bench` at the current SIMD level.
fn command_at_level(a: &crate::cli::BenchArgs, out: &mut dyn Write) -> Result<(), Error> {
    if a.op != Op::Ss2d && (a.mode.is_some() || a.layout.is_some()) {
        return Err(Error::Usage(
            "--mode and --layout apply to bench --op ss2d only".into(),
        ));
    }
    if a.reference_reps.is_some() && a.op != Op::Scan {
        return Err(Error::Usage(
            "--reference-reps applies to bench --op scan only".into(),
        ));
    }
    match a.op {
        Op::Scan => {}
        Op::Layer => return crate::bench_layer::command(a, out),
        Op::Ss2d => return crate::bench_ss2d::command(a, out),
    }
    if !a.config.is_empty() || !a.sweep.is_empty() {
        return Err(Error::Usage(
            "--config and --sweep apply to bench --op layer only".into(),
        ));
    }
    let parsed = a
        .shape
        .iter()
        .map(|s| {
            s.parse::<BenchShape>()
                .map_err(|e| Error::Usage(format!("invalid --shape `{s}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let shapes: &[BenchShape] = if a.shape.is_empty() {
        &DEFAULT_SHAPES
    } else {
        &parsed
    };
    // Check every shape before timing (or printing) anything.
    for s in shapes {
        s.check()?;
    }
    let threads = a.threads as usize;
    let reps = a.reps.map(|k| k as usize);
    let reference_reps = a.reference_reps.map(|k| k as usize);
    let peak = measure_peak(threads)?;
    if !a.json {
        writeln!(out, "{}", table_header(threads, &peak)).map_err(Error::Stdout)?;
    }
    for s in shapes {
        let r = bench_scan(s, threads, reps, reference_reps)?;
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
        let s: BenchShape = "B=1,D=768,L=3136,N=16,G=4".parse().unwrap();
        assert_eq!(s, DEFAULT_SHAPES[0]);
        assert_eq!(s.to_string(), "B=1,D=768,L=3136,N=16,G=4");
        let s: BenchShape = "d=8, l=5, n=2".parse().unwrap();
        assert_eq!((s.b, s.d, s.l, s.n, s.g), (1, 8, 5, 2, 1));
        for (bad, what) in [
            ("", "empty"),
            ("B=1,D=8,L=4", "missing key `N`"),
            ("D=8,L=4,N=2,X=3", "unknown key `X`"),
            ("D=8,L=4,N=2,D=3", "twice"),
            ("D=0,L=4,N=2", "at least 1"),
            ("D=99999999999999999999999,L=4,N=2", "too large"),
            ("D=-3,L=4,N=2", "not a positive integer"),
            ("D8,L=4,N=2", "KEY=VALUE"),
        ] {
            let e = bad.parse::<BenchShape>().unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn inputs_are_deterministic_and_in_domain() {
        let s: BenchShape = "B=2,D=8,L=16,N=4,G=2".parse().unwrap();
        let a = ScanInputs::generate(&s, 1).unwrap();
        let b = ScanInputs::generate(&s, 1).unwrap();
        assert_eq!(a.u, b.u);
        assert!(a.u.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(a.delta.iter().all(|x| (-4.0..-2.0).contains(x)));
        assert_eq!(&a.a[..4], &[-1.0, -2.0, -3.0, -4.0]);
        assert_eq!(a.b.len(), 2 * 2 * 4 * 16);
        // softplus(bias) is back in [1e-3, 1e-1].
        for &x in &a.bias {
            let dt = (x as f64).exp().ln_1p();
            assert!((0.99e-3..=1.01e-1).contains(&dt), "{dt}");
        }
    }

    #[test]
    fn oversized_shapes_are_refused() {
        let s: BenchShape = "B=1000000,D=1000000,L=1000000,N=16".parse().unwrap();
        assert!(ScanInputs::generate(&s, 1).is_err());
        let s: BenchShape = "D=6,L=4,N=2,G=4".parse().unwrap();
        let e = ScanInputs::generate(&s, 1).unwrap_err().to_string();
        assert!(e.contains("groups"), "{e}");
    }

    #[test]
    fn median_and_json() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let r = bench_scan(
            &"B=1,D=16,L=64,N=4,G=2".parse().unwrap(),
            2,
            Some(2),
            Some(1),
        )
        .unwrap();
        let peak = Peak::unit();
        let v: serde_json::Value = serde_json::from_str(&r.to_json(&peak)).unwrap();
        assert_eq!(v["shape"]["G"], 2);
        // 16 x 64 positions, N = 4: (19 + 44) x 32 flops per 16 positions, at 1 GFLOP/s.
        let limit = 64.0 * 63.0 * 32.0 / 1e9;
        assert!((v["kernel"]["limit_s"].as_f64().unwrap() - limit).abs() < 1e-12);
        let share = v["kernel"]["roofline"].as_f64().unwrap();
        assert!((share - limit / r.kernel.median_s).abs() < 1e-9 * share);
        assert_eq!(v["peak"]["flops_per_s_per_core"], 1e9);
        assert_eq!(v["threads"], 2);
        assert!(v["speedup"].as_f64().unwrap() > 0.0);
        assert_eq!(r.kernel.reps, 2);
    }
}
