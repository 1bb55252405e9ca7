//! `ss2d bench --op layer`: the whole SS2D layer, stage by stage.
//!
//! Default configurations (VMamba-T stage 1: `d_model 96`, batch 1, 56 x 56): `s1l8`
//! (`ssm_ratio 1, d_state 1, v05_noz`, channel-first), `s2l5` (`ssm_ratio 2, d_state 1,
//! v05_noz`, channel-first) and `vanilla` (`v0, ssm_ratio 2, d_state 16`, channel-last), on
//! deterministic VMamba-like weights. Each reports the median wall time of a forward and of
//! each stage (`gemm_in`, `conv`, `scan`, `norm_gate`, `gemm_out`), elements/s (an element is
//! one of the `4 * d_inner * L * d_state` state updates per batch item) and the parameter
//! count. `--sweep key=v1,v2` (repeatable; any configuration key, or `batch`, `h`, `w`) runs
//! the cartesian product of the values over each configuration. Every case is also checked
//! against the scalar reference path (max |fast - ref| <= 1e-5 x max |ref|).

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use ss2d_core::SimdLevel;
use ss2d_std::layer::{
    init, Backend, DtRank, ForwardOptions, Grid, OutNorm, Ss2dConfig, Ss2dDims, StageTimes,
    ZBranch, STAGES,
};
use ss2d_std::Parallelism;

use crate::bench::{dur, si};
use crate::demo::max_diff;
use crate::error::Error;
use crate::roofline::{
    conv_flops, gemm_work, limit_json, measure_peak, norm_gate_flops, pct, peak_json, peak_line,
    ss2d_work, Peak, Work,
};

/// The built-in layer configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayerPreset {
    /// VMamba-T s1l8 stage 1: `ssm_ratio 1, d_state 1, v05_noz`, channel-first.
    S1l8,
    /// VMamba-T s2l5 stage 1: `ssm_ratio 2, d_state 1, v05_noz`, channel-first.
    S2l5,
    /// Vanilla-VMamba-T stage 1: `v0, ssm_ratio 2, d_state 16`, channel-last.
    Vanilla,
}

impl LayerPreset {
    /// All presets, in the default order.
    pub const ALL: [LayerPreset; 3] = [LayerPreset::S1l8, LayerPreset::S2l5, LayerPreset::Vanilla];

    /// The name on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            LayerPreset::S1l8 => "s1l8",
            LayerPreset::S2l5 => "s2l5",
            LayerPreset::Vanilla => "vanilla",
        }
    }

    /// The configuration (`d_model 96`).
    pub fn config(self) -> Ss2dConfig {
        match self {
            LayerPreset::S1l8 => Ss2dConfig::s1l8(96),
            LayerPreset::S2l5 => Ss2dConfig::s2l5(96),
            LayerPreset::Vanilla => Ss2dConfig::vanilla(96),
        }
    }
}

/// The grid every preset runs on: batch 1, 56 x 56 (VMamba stage 1 at 224 x 224).
pub const GRID: Grid = Grid {
    batch: 1,
    h: 56,
    w: 56,
};

/// Keys `--sweep` accepts.
pub const SWEEP_KEYS: [&str; 11] = [
    "d_model",
    "d_state",
    "ssm_ratio",
    "dt_rank",
    "d_conv",
    "conv_bias",
    "forward_type",
    "channel_first",
    "batch",
    "h",
    "w",
];

/// One `--sweep key=v1,v2,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// The key (one of [`SWEEP_KEYS`]).
    pub key: String,
    /// The values, as given.
    pub values: Vec<String>,
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((k, v)) = s.split_once('=') else {
            return Err(format!(
                "`{s}` is not KEY=V1,V2,... (keys: {})",
                SWEEP_KEYS.join(", ")
            ));
        };
        let key = k.trim().to_ascii_lowercase().replace('-', "_");
        if !SWEEP_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown sweep key `{}` (keys: {})",
                k.trim(),
                SWEEP_KEYS.join(", ")
            ));
        }
        let values: Vec<String> = v.split(',').map(|x| x.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("sweep `{s}` has an empty value"));
        }
        Ok(Sweep { key, values })
    }
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.values.join(","))
    }
}

/// Sets `key` to `value` on a configuration and grid.
pub fn apply(
    config: &mut Ss2dConfig,
    grid: &mut Grid,
    key: &str,
    value: &str,
) -> Result<(), String> {
    fn num<T: FromStr>(key: &str, v: &str, what: &str) -> Result<T, String> {
        v.parse().map_err(|_| format!("{key}={v}: expected {what}"))
    }
    fn flag(key: &str, v: &str) -> Result<bool, String> {
        match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{key}={v}: expected true or false")),
        }
    }
    let int = "a non-negative integer";
    match key {
        "d_model" => config.d_model = num(key, value, int)?,
        "d_state" => config.d_state = num(key, value, int)?,
        "ssm_ratio" => config.ssm_ratio = num(key, value, "a number")?,
        "dt_rank" => {
            config.dt_rank = value
                .parse::<DtRank>()
                .map_err(|e| format!("{key}={value}: {e}"))?
        }
        "d_conv" => config.d_conv = num(key, value, int)?,
        "conv_bias" => config.conv_bias = flag(key, value)?,
        "forward_type" => config.forward_type = value.to_string(),
        "channel_first" => config.channel_first = flag(key, value)?,
        "batch" => grid.batch = num(key, value, int)?,
        "h" => grid.h = num(key, value, int)?,
        "w" => grid.w = num(key, value, int)?,
        _ => return Err(format!("unknown sweep key `{key}`")),
    }
    Ok(())
}

/// One configuration to time.
#[derive(Clone, Debug)]
pub struct LayerCase {
    /// The preset it starts from.
    pub preset: LayerPreset,
    /// Swept `(key, value)` pairs applied to it, in `--sweep` order.
    pub params: Vec<(String, String)>,
    /// The configuration.
    pub config: Ss2dConfig,
    /// The grid.
    pub grid: Grid,
}

impl LayerCase {
    /// `s1l8` or `s1l8 d_state=4 dt_rank=auto`.
    pub fn label(&self) -> String {
        let mut s = self.preset.name().to_string();
        for (k, v) in &self.params {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

/// Largest input or output of a bench case (elements), a guard against typos.
const MAX_ELEMENTS: usize = 1 << 30;

/// Every case: each preset times the cartesian product of the sweeps, each validated (so an
/// invalid value fails before anything is timed).
pub fn cases(presets: &[LayerPreset], sweeps: &[Sweep]) -> Result<Vec<LayerCase>, Error> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for s in sweeps {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                s.values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((s.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for &preset in presets {
        for params in &combos {
            let mut config = preset.config();
            let mut grid = GRID;
            for (k, v) in params {
                apply(&mut config, &mut grid, k, v).map_err(Error::Usage)?;
            }
            let case = LayerCase {
                preset,
                params: params.clone(),
                config,
                grid,
            };
            let dims = case
                .config
                .resolve()
                .map_err(|e| Error::Usage(format!("bench case `{}`: {e}", case.label())))?;
            let too_big = || Error::Usage(format!("bench case `{}` is too large", case.label()));
            let io = grid.elements(dims.d_model).map_err(|_| too_big())?;
            let inner = grid.elements(2 * dims.d_inner).map_err(|_| too_big())?;
            if io.max(inner) > MAX_ELEMENTS {
                return Err(too_big());
            }
            out.push(case);
        }
    }
    Ok(out)
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct LayerBenchResult {
    /// The case.
    pub case: LayerCase,
    /// Threads.
    pub threads: usize,
    /// SIMD level compiled in.
    pub isa: &'static str,
    /// Median seconds per forward.
    pub total_s: f64,
    /// Median seconds of each stage ([`STAGES`] order).
    pub stages_s: [f64; 5],
    /// Timed forwards.
    pub reps: usize,
    /// `4 * d_inner * L * d_state * batch`.
    pub elements: usize,
    /// Parameters of the layer.
    pub param_count: usize,
    /// `max |fast - ref| / max |ref|` against the scalar reference path.
    pub max_rel_diff: f64,
    /// Each stage's work in the roofline model ([`stage_work`]).
    pub stage_work: [Work; 5],
}

/// The work of each stage ([`STAGES`] order) in the roofline model ([`crate::roofline`]):
/// `in_proj` and `out_proj` GEMMs over the `B*H*W` positions, the depthwise conv (input read,
/// output written), the fused scan with its projections, the norm and gate (`y`, `z` when
/// gated, and the output).
pub fn stage_work(dims: &Ss2dDims, grid: Grid) -> [Work; 5] {
    let p = grid.batch * grid.h * grid.w;
    let f = &dims.forward;
    let pc = p * dims.d_inner;
    let gated = f.z != ZBranch::None;
    [
        gemm_work(p, dims.d_model, dims.d_proj()),
        if dims.with_conv() {
            Work::new(conv_flops(dims.d_conv, p, dims.d_inner), 2 * pc)
        } else {
            Work::default()
        },
        ss2d_work(p, dims.d_inner, dims.d_state, dims.dt_rank),
        Work::new(
            norm_gate_flops(
                p * dims.d_inner,
                f.out_norm == OutNorm::LayerNorm,
                f.out_gelu,
                match f.z {
                    ZBranch::None => None,
                    ZBranch::Silu => Some(true),
                    ZBranch::Identity => Some(false),
                },
            ),
            (2 + usize::from(gated)) * pc,
        ),
        gemm_work(p, dims.d_inner, dims.d_model),
    ]
}

fn json_num(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl LayerBenchResult {
    /// Elements per second.
    pub fn elements_per_s(&self) -> f64 {
        self.elements as f64 / self.total_s
    }

    /// The whole forward's time at the model's limit on `peak`: the sum of the stages' (they
    /// run one after the other).
    pub fn limit_s(&self, peak: &Peak) -> f64 {
        self.stage_work.iter().map(|&w| peak.secs(w)).sum()
    }

    /// One line of JSON: `op`, `config`, `threads`, `isa`, `total`, `stages` (each with its
    /// `limit_s` and `roofline` share, as `total`), then `params` (the swept values), `grid`,
    /// `elements`, `param_count`, `reps`, `max_rel_diff`, `peak`.
    pub fn to_json(&self, peak: &Peak) -> String {
        let stages: Vec<String> = STAGES
            .iter()
            .zip(self.stages_s)
            .zip(self.stage_work)
            .map(|((n, s), f)| {
                format!(
                    "\"{n}\":{{\"median_s\":{},{}}}",
                    json_num(s),
                    limit_json(peak.secs(f), s)
                )
            })
            .collect();
        let params: Vec<String> = self
            .case
            .params
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        let g = self.case.grid;
        format!(
            "{{\"op\":\"layer\",\"config\":{},\"threads\":{},\"isa\":\"{}\",\
             \"total\":{{\"median_s\":{},\"elements_per_s\":{},{}}},\"stages\":{{{}}},\
             \"params\":{{{}}},\"forward_type\":{},\"grid\":{{\"batch\":{},\"h\":{},\"w\":{}}},\
             \"elements\":{},\"param_count\":{},\"reps\":{},\"max_rel_diff\":{},{}}}",
            json_str(self.case.preset.name()),
            self.threads,
            self.isa,
            json_num(self.total_s),
            json_num(self.elements_per_s()),
            limit_json(self.limit_s(peak), self.total_s),
            stages.join(","),
            params.join(","),
            json_str(&self.case.config.forward_type),
            g.batch,
            g.h,
            g.w,
            self.elements,
            self.param_count,
            self.reps,
            json_num(self.max_rel_diff),
            peak_json(peak),
        )
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

fn layer_err(case: &LayerCase, e: ss2d_std::LayerError) -> Error {
    Error::Usage(format!("bench case `{}`: {e}", case.label()))
}

/// Times one case (`reps` forwards, else adaptive: ~1 s, 3 to 1000 runs, after a warm-up).
pub fn bench_case(
    case: &LayerCase,
    threads: usize,
    reps: Option<usize>,
) -> Result<LayerBenchResult, Error> {
    let layer = init::vmamba_like(&case.config, 0x55D2_2024).map_err(|e| layer_err(case, e))?;
    let dims = layer.dims().clone();
    let n: usize = dims.io_shape(case.grid).iter().product();
    let x = init::input(n, 0x55D2_2025);
    let mut y = vec![0.0f32; n];
    let run = |y: &mut [f32], backend: Backend, times: Option<&mut StageTimes>| {
        layer
            .forward_with(
                &x,
                case.grid,
                y,
                ForwardOptions {
                    backend,
                    par: Parallelism::Threads(threads),
                    times,
                    debug: None,
                },
            )
            .map_err(|e| layer_err(case, e))
    };
    let t0 = Instant::now();
    run(&mut y, Backend::Fast, None)?;
    let first = t0.elapsed().as_secs_f64().max(1e-9);
    let reps = reps.unwrap_or_else(|| ((1.0 / first).ceil() as usize).clamp(3, 1000));
    let mut totals = Vec::with_capacity(reps);
    let mut stages: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); STAGES.len()];
    for _ in 0..reps {
        let mut st = StageTimes::default();
        let t0 = Instant::now();
        run(&mut y, Backend::Fast, Some(&mut st))?;
        totals.push(t0.elapsed().as_secs_f64());
        for (v, d) in stages.iter_mut().zip(st.as_array()) {
            v.push(Duration::as_secs_f64(&d));
        }
    }
    let mut reference = vec![0.0f32; n];
    run(&mut reference, Backend::Reference, None)?;
    let (diff, scale) = max_diff(&y, &reference);
    let rel = f64::from(if scale > 0.0 { diff / scale } else { diff });
    if rel.is_nan() || rel > crate::bench::CHECK_REL {
        return Err(Error::Check(format!(
            "bench case `{}`: fast and reference paths disagree: max |fast - ref| = {diff:e}, \
             max |ref| = {scale:e}",
            case.label()
        )));
    }
    let l = case.grid.h * case.grid.w;
    let mut stages_s = [0.0; 5];
    for (s, v) in stages_s.iter_mut().zip(stages.iter_mut()) {
        *s = median(v);
    }
    Ok(LayerBenchResult {
        case: case.clone(),
        threads,
        isa: SimdLevel::current().name(),
        total_s: median(&mut totals),
        stages_s,
        reps,
        elements: 4 * dims.d_inner * l * dims.d_state * case.grid.batch,
        param_count: layer.param_count(),
        max_rel_diff: rel,
        stage_work: stage_work(&dims, case.grid),
    })
}

fn table_header(threads: usize, label_width: usize, peak: &Peak) -> String {
    let mut s = format!(
        "ss2d bench --op layer: isa {} ({} lanes), {threads} thread(s), d_model 96, batch 1, \
         56x56 unless swept; element = one of 4 x d_inner x L x d_state state updates; each \
         time is followed by its roofline share\n{}\n",
        SimdLevel::current().name(),
        SimdLevel::current().lanes(),
        peak_line(peak),
    );
    s.push_str(&format!(
        "{:<label_width$} {:>16} {:>5} {:>12} {:>9}",
        "config", "forward", "reps", "elem/s", "params"
    ));
    for n in STAGES {
        s.push_str(&format!(" {n:>15}"));
    }
    s.push_str(&format!(" {:>9}", "max rel"));
    s
}

fn table_row(r: &LayerBenchResult, label_width: usize, peak: &Peak) -> String {
    let cell = |t: f64, limit: f64| format!("{} {:>4}", dur(t), pct(Peak::share(limit, t)));
    let mut s = format!(
        "{:<label_width$} {:>16} {:>5} {:>12} {:>9}",
        r.case.label(),
        cell(r.total_s, r.limit_s(peak)),
        r.reps,
        si(r.elements_per_s()),
        r.param_count
    );
    for (t, f) in r.stages_s.iter().zip(r.stage_work) {
        s.push_str(&format!(" {:>15}", cell(*t, peak.secs(f))));
    }
    s.push_str(&format!(" {:>9.2e}", r.max_rel_diff));
    s
}

/// `ss2d bench --op layer ...`.
pub fn command(a: &crate::cli::BenchArgs, out: &mut dyn Write) -> Result<(), Error> {
    if !a.shape.is_empty() {
        return Err(Error::Usage(
            "bench --op layer takes --config and --sweep, not --shape".into(),
        ));
    }
    let presets: Vec<LayerPreset> = if a.config.is_empty() {
        LayerPreset::ALL.to_vec()
    } else {
        a.config.clone()
    };
    let cases = cases(&presets, &a.sweep)?;
    let threads = a.threads as usize;
    let reps = a.reps.map(|k| k as usize);
    let label_width = cases
        .iter()
        .map(|c| c.label().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let peak = measure_peak(threads)?;
    if !a.json {
        writeln!(out, "{}", table_header(threads, label_width, &peak)).map_err(Error::Stdout)?;
    }
    for c in &cases {
        let r = bench_case(c, threads, reps)?;
        let line = if a.json {
            r.to_json(&peak)
        } else {
            table_row(&r, label_width, &peak)
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
    fn sweeps_parse_and_multiply() {
        let s: Sweep = "d_state=1,4,16".parse().unwrap();
        assert_eq!(s.values, ["1", "4", "16"]);
        assert!("x=1"
            .parse::<Sweep>()
            .unwrap_err()
            .contains("unknown sweep key"));
        assert!("d_state".parse::<Sweep>().is_err());
        assert!("d_state=1,,2".parse::<Sweep>().is_err());
        let sweeps = vec![
            "d_state=1,4,16".parse().unwrap(),
            "dt-rank=auto,2,12".parse().unwrap(),
        ];
        let c = cases(&[LayerPreset::S1l8], &sweeps).unwrap();
        assert_eq!(c.len(), 9);
        assert_eq!(c[4].label(), "s1l8 d_state=4 dt_rank=2");
        assert_eq!(c[4].config.d_state, 4);
        assert_eq!(c[4].config.dt_rank, DtRank::Fixed(2));
        let e = cases(&[LayerPreset::S1l8], &["d_conv=2".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("d_conv"), "{e}");
        let e = cases(&[LayerPreset::S1l8], &["h=100000000".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn json_has_the_documented_keys() {
        let case = cases(
            &[LayerPreset::S2l5],
            &["h=9".parse().unwrap(), "w=7".parse().unwrap()],
        )
        .unwrap()
        .remove(0);
        let r = bench_case(&case, 2, Some(2)).unwrap();
        let peak = Peak::unit();
        let v: serde_json::Value = serde_json::from_str(&r.to_json(&peak)).unwrap();
        assert_eq!(v["op"], "layer");
        // s2l5: d_inner 192, no z, a 3 x 3 conv; 9 x 7 = 63 positions.
        let gemm_in = 2.0 * 63.0 * 96.0 * 192.0 / 1e9;
        assert!((v["stages"]["gemm_in"]["limit_s"].as_f64().unwrap() - gemm_in).abs() < 1e-12);
        let conv = 2.0 * 9.0 * 63.0 * 192.0 / 1e9;
        assert!((v["stages"]["conv"]["limit_s"].as_f64().unwrap() - conv).abs() < 1e-12);
        let total: f64 = STAGES
            .iter()
            .map(|s| v["stages"][s]["limit_s"].as_f64().unwrap())
            .sum();
        assert!((v["total"]["limit_s"].as_f64().unwrap() - total).abs() < 1e-12);
        assert!(v["total"]["roofline"].as_f64().unwrap() > 0.0);
        assert_eq!(v["config"], "s2l5");
        assert_eq!(v["threads"], 2);
        assert!(v["total"]["median_s"].as_f64().unwrap() > 0.0);
        for s in STAGES {
            assert!(v["stages"][s]["median_s"].as_f64().unwrap() >= 0.0, "{s}");
        }
        assert_eq!(v["params"]["h"], "9");
        assert_eq!(v["elements"], 4 * 192 * 63);
    }
}
