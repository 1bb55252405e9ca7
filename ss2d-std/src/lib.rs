//! # ss2d-std
//!
//! Threads (rayon), VMamba's 2D cross-scan and cross-merge, the fused 4-direction SS2D scan and
//! the SS2D layer, on top of the `no_std` kernels of `ss2d-core`.
//!
//! Every entry point takes a [`Parallelism`]: sequential, `n` threads, or a caller's rayon pool.
//! Work is split into independent items over disjoint outputs, so results are bitwise identical
//! for every thread count.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use ss2d_core as core;

pub mod cross;
pub mod fused;
pub mod layer;
pub mod unfused;

pub mod cpu;
mod par;
mod pool;
mod scan;

pub use cpu::{check_cpu, CpuError};
pub use layer::{
    Backend, DtRank, ForwardType, Grid, LayerError, Ss2d, Ss2dConfig, Ss2dDims, Ss2dWeights,
};
pub use par::Parallelism;
pub use scan::selective_scan;
