//! The command line (clap derive). See `docs/design.md` section 7 for the contract.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::{BenchShape, Op};

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
    /// Problem shape, e.g. `B=1,D=768,L=3136,N=16,G=4` (B and G default to 1); repeat for
    /// several. Default: VMamba v0 and v2 stage-1 scans (4 directions stacked).
    #[arg(long, value_name = "B=..,D=..,L=..,N=..,G=..")]
    pub shape: Vec<BenchShape>,
    /// Kernel threads (the reference always runs on one).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,
    /// Print one JSON object per shape, one per line, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions of each op [default: adaptive, >= ~1 s per op, at least 3 for the
    /// kernel; fewer for the slow reference].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reps: Option<u32>,
}
