//! The command line (clap derive). See `docs/design.md` section 7 for the contract.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::Op;
use crate::bench_layer::{LayerPreset, Sweep};
use crate::bench_ss2d::BenchLayout;
use crate::cross::parse_scans;

/// `ss2d`: run SS2D operations (VMamba's selective scan) on safetensors files, and bench them.
#[derive(Debug, Parser)]
#[command(name = "ss2d", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Selective scan (mamba's `selective_scan_fn`): reads `u`, `delta`, `A`, `B`, `C` and
    /// optional `D`, `z`, `delta_bias` from IN; writes `out` (and `last_state`) to OUT.
    Scan(ScanArgs),
    /// Time the kernel against the scalar reference on model shapes.
    Bench(BenchArgs),
    /// VMamba's SS2D module forward: reads the module's tensors (VMamba state_dict names) and
    /// `input` from IN; writes `output` to OUT.
    Layer(LayerArgs),
    /// Run a VMamba-T stage-1 SS2D layer on built-in weights: check it against the reference
    /// path and time it.
    Demo(DemoArgs),
    /// VMamba's cross-scan (`cross_scan_fn`): reads `x` from IN; writes `xs` (the four
    /// direction sequences) to OUT.
    CrossScan(crate::cross::CrossArgs),
    /// VMamba's cross-merge (`cross_merge_fn`): reads `ys` from IN; writes `y` (the four
    /// directions mapped back to row-major and summed) to OUT.
    CrossMerge(crate::cross::CrossArgs),
    /// Print the SIMD level the kernels run at (after `SS2D_ISA`), or with `--list` every level
    /// this CPU runs (space-separated, lowest first).
    Isa(IsaArgs),
}

/// Arguments of `ss2d isa`.
#[derive(Debug, Args)]
pub struct IsaArgs {
    /// List every level this CPU runs instead of the one in use.
    #[arg(long)]
    pub list: bool,
}

/// Arguments of `ss2d scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Input safetensors file.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output safetensors file (written atomically; never left partial).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Worker threads for the kernel [default: all available cores]. The result is bitwise
    /// identical for every thread count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    /// Run the scalar reference (the specification in code) instead of the kernel.
    #[arg(long)]
    pub reference: bool,
    /// Apply softplus to `delta + delta_bias` [default: the file's `__metadata__`, else false].
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub delta_softplus: Option<bool>,
    /// Also write `last_state` (B, D, N) [default: the file's `__metadata__`, else false].
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub return_last_state: Option<bool>,
}

/// Arguments of `ss2d bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Operation to time.
    #[arg(long, value_enum, default_value_t = Op::Scan)]
    pub op: Op,
    /// Problem shape; repeat for several. `--op scan`: `B=1,D=768,L=3136,N=16,G=4` (B and G
    /// default to 1) [default: VMamba v0 and v2 stage-1 scans, 4 directions stacked].
    /// `--op ss2d`: `B=1,D=96,H=56,W=56,N=1,R=6` (D = d_inner, R = dt_rank; B defaults to 1)
    /// [default: VMamba-T s1l8 and vanilla v0 stage 1].
    #[arg(long, value_name = "KEY=N,..")]
    pub shape: Vec<String>,
    /// `--op ss2d`: cross-scan mode, cross2d, unidi or bidi (or 0, 1, 2) [default: cross2d].
    #[arg(long, value_name = "cross2d|unidi|bidi", value_parser = parse_scans)]
    pub mode: Option<ss2d_std::cross::ScanMode>,
    /// `--op ss2d`: layout of x and y, cf = (B, D, H, W), cl = (B, H, W, D) [default: cf for
    /// --shape; the default shapes run s1l8 cf and v0 cl].
    #[arg(long, value_enum)]
    pub layout: Option<BenchLayout>,
    /// Kernel threads (the reference always runs on one).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,
    /// Print one JSON object per shape, one per line, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// `--op layer`: configurations to time (repeatable) [default: s1l8, s2l5, vanilla].
    #[arg(long, value_enum, value_name = "NAME")]
    pub config: Vec<LayerPreset>,
    /// `--op layer`: time every combination of these values, e.g. `d_state=1,4,16` (repeatable;
    /// keys: d_model, d_state, ssm_ratio, dt_rank, d_conv, conv_bias, forward_type,
    /// channel_first, batch, h, w).
    #[arg(long, value_name = "KEY=V1,V2,..")]
    pub sweep: Vec<Sweep>,
    /// Timed repetitions of each op [default: adaptive, >= ~1 s per op, at least 3 for the
    /// kernel; fewer for the slow reference].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reps: Option<u32>,
    /// `--op scan`: timed repetitions of the scalar reference [default: `--reps`, else
    /// adaptive]. The reference runs single-threaded and is slow on big shapes; a thread-scaling
    /// run that needs only the kernel's time can give 1 (the kernel is still checked against it).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reference_reps: Option<u32>,
    /// SIMD level(s) to time: `all` (every level this CPU runs, lowest first, one after the
    /// other in one run) or a level name (`x86-64`, `x86-64-v3`, `x86-64-v4`, `neon`)
    /// [default: `SS2D_ISA`, else the best level of the CPU].
    #[arg(long, value_name = "LEVEL|all")]
    pub isa: Option<String>,
}

/// Arguments of `ss2d layer`. Configuration flags win over IN's `__metadata__`, which wins over
/// what the tensors' shapes imply.
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// Input safetensors file: the module's tensors and `input`.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output safetensors file (written atomically; never left partial).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Key prefix of the module's tensors, e.g. `layers.0.blocks.1.op.` in a VSSM checkpoint.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Read `input` from this file instead of IN.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Worker threads [default: all available cores]. The result is bitwise identical for
    /// every thread count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    /// Run the scalar reference path (naive products, conv and norm; scalar selective scan).
    #[arg(long)]
    pub reference: bool,
    /// VMamba `forward_type` (v05_noz, v05, v3, v0, v051d, v052d, v052dc, ...).
    #[arg(long, value_name = "T")]
    pub forward_type: Option<String>,
    /// Layout: (B, C, H, W) when true, (B, H, W, C) when false.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub channel_first: Option<bool>,
    /// Channels of input and output.
    #[arg(long, value_name = "N")]
    pub d_model: Option<usize>,
    /// State size N.
    #[arg(long, value_name = "N")]
    pub d_state: Option<usize>,
    /// d_inner = int(ssm_ratio * d_model).
    #[arg(long, value_name = "R")]
    pub ssm_ratio: Option<f64>,
    /// `auto` (ceil(d_model / 16)) or a positive integer.
    #[arg(long, value_name = "auto|N")]
    pub dt_rank: Option<ss2d_std::DtRank>,
    /// Depthwise conv size (odd; <= 1: no conv).
    #[arg(long, value_name = "K")]
    pub d_conv: Option<usize>,
    /// Conv bias.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub conv_bias: Option<bool>,
}

/// Arguments of `ss2d demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Worker threads [default: all available cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
}
