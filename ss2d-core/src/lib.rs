//! # ss2d-core
//!
//! `no_std`, allocation-free selective scan (Mamba's `selective_scan_fn`, the heart of
//! VMamba's SS2D) on hand-vectorized `f32` lanes.
//!
//! Per batch item `b`, channel `d`, position `l` (in walk order) and state `n`:
//!
//! ```text
//! dt   = softplus(delta[b,d,l] + delta_bias[d])        (softplus and bias optional)
//! h[n] = exp(dt * A[d,n]) * h[n] + dt * u[b,d,l] * B[.., n, l]
//! y    = sum_n C[.., n, l] * h[n] + D[d] * u[b,d,l]
//! out  = y * silu(z[b,d,l])                            (z optional)
//! ```
//!
//! | tensor | shape |
//! |---|---|
//! | `u`, `delta`, `z`, `out` | (B, D, L) channel-first or (B, L, D) channel-last ([`Layout`]) |
//! | `A` | (D, N) |
//! | `B`, `C` | (D, N) constant, or (B, G, N, L) grouped: channel `d` uses group `d / (D/G)` ([`BcLayout`]) |
//! | `D`, `delta_bias` | (D,) |
//! | initial / final state | (B, D, N) |
//!
//! ## Design
//! One SIMD register holds `LANES` channels (16 with AVX-512, 8 otherwise); a *panel* of
//! channels walks its positions in order with its N states in registers. Panels never
//! straddle a B/C group, so B and C are broadcasts. Inputs are packed per chunk of
//! [`scan::CHUNK`] steps into L1-sized panels (transposed for channel-first data), so the same
//! micro-kernel serves both layouts, any [`Walk`] (reversed, 2D directions) and the fused
//! 2D scan of `ss2d-std`.
//!
//! ## Memory and threads
//! Nothing allocates: the caller passes a scratch buffer of [`scratch_len`] elements. A scan can
//! be split into `Send` work items ([`ScanPlan::split`]) over disjoint outputs for a host pool.
//!
//! ## Accuracy and determinism
//! Outputs are bitwise identical for any work-item split, thread count and chunking, and across
//! a scan split in two and resumed from the final state. Within one ISA level results are
//! deterministic; across levels (FMA or not, 8 or 16 lanes) they differ at rounding level only.
//! The vector `exp`, `softplus` and `silu` ([`math`]) carry documented bounds (relative error
//! <= 4e-7, 1e-6, 1e-6); against mamba's `selective_scan_ref` the kernel stays within
//! 1e-4 x max|ref| (tests in `tests/`).
//!
//! ## Errors
//! Every entry point validates first ([`Error`] names the tensor and the expected and actual
//! sizes) and writes nothing on error. Zero `batch`, `dim` or `seqlen` is a valid empty problem:
//! nothing is written except `final_state`, which receives the initial state (or zeros).
//! NaN and infinity in the data propagate (they are never invented from finite inputs in the
//! model domain).
#![no_std]
#![deny(missing_docs)]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod error;
pub mod fused;
mod kernel;
pub mod level;
pub mod math;
mod pack;
pub mod reference;
pub mod scan;
pub mod shape;
mod simd;
pub mod walk;

pub use error::Error;
pub use level::SimdLevel;
pub use scan::{scratch_len, selective_scan, ScanArgs, ScanPlan, WorkItem, WorkItems};
pub use shape::{BcLayout, Layout, ScanShape, ValidShape, MAX_DSTATE};
pub use simd::{LANES, V};
pub use walk::Walk;
