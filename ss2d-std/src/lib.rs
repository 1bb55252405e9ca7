//! # ss2d-std
//!
//! Threads (rayon), VMamba's 2D cross-scan and cross-merge, the fused 4-direction SS2D scan and
//! the SS2D layer, on top of the `no_std` kernels of `ss2d-core`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use ss2d_core as core;
