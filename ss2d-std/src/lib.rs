//! # ss2d-std
//!
//! Threads (rayon), VMamba's 2D cross-scan and cross-merge, the fused 4-direction SS2D scan and
//! the SS2D layer, on top of the `no_std` kernels of `ss2d-core`.
//!
//! Cargo feature `layer` (on by default): the SS2D layer ([`layer`]) and the fused SS2D scan
//! ([`fused`]), the two users of the GEMM (`ss2d-gemm`). With `default-features = false` the
//! crate builds only the scans (the selective scan, cross-scan / cross-merge and the unfused
//! SS2D scan) and pulls in no GEMM code.
//!
//! Every entry point takes a [`Parallelism`]: sequential, `n` threads, or a caller's rayon pool.
//! Work is split into independent items over disjoint outputs, so results are bitwise identical
//! for every thread count.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use ss2d_core as core;

pub mod cross;
#[cfg(feature = "layer")]
pub mod fused;
#[cfg(feature = "layer")]
pub mod layer;
pub mod unfused;

mod cpu;
mod par;
#[cfg(feature = "layer")]
mod pool;
mod scan;

pub use cpu::{check_cpu, CpuError};
#[cfg(feature = "layer")]
pub use layer::{
    Backend, DtRank, ForwardType, Grid, LayerError, Ss2d, Ss2dConfig, Ss2dDims, Ss2dWeights,
};
pub use par::Parallelism;
pub use scan::selective_scan;
