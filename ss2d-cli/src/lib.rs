//! Library side of the `ss2d` command: safetensors I/O ([`io`]), the command-line definition
//! ([`cli`]) and the commands ([`scan`], [`cross`], [`layer`], [`demo`], [`bench`](mod@bench),
//! [`bench_ss2d`], [`bench_layer`]).
//!
//! The binary is a thin shell over [`run`]: it parses the arguments, calls [`run`] and turns an
//! [`Error`] into one `ss2d: error: ...` line on stderr and exit status 1.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_layer;
pub mod bench_ss2d;
pub mod cli;
pub mod cross;
pub mod demo;
pub mod error;
pub mod io;
pub mod isa;
pub mod layer;
pub mod roofline;
pub mod scan;

pub use error::Error;

use std::io::Write;

/// Runs a parsed command line; reports (bench tables, JSON) go to `out`.
pub fn run(cli: cli::Cli, out: &mut dyn Write) -> Result<(), Error> {
    isa::check()?;
    match cli.command {
        cli::Command::Scan(a) => scan::command(&a),
        cli::Command::Bench(a) => bench::command(&a, out),
        cli::Command::Layer(a) => layer::command(&a),
        cli::Command::Demo(a) => demo::command(&a, out),
        cli::Command::CrossScan(a) => cross::command(&a, cross::Direction::Scan),
        cli::Command::CrossMerge(a) => cross::command(&a, cross::Direction::Merge),
        cli::Command::Isa(a) => {
            let line = if a.list {
                ss2d_core::SimdLevel::available()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                ss2d_core::SimdLevel::current().name().to_string()
            };
            writeln!(out, "{line}").map_err(|e| Error::Usage(format!("stdout: {e}")))
        }
    }
}
