//! # ss2d-std
//!
//! Threads (rayon), VMamba's 2D cross-scan and cross-merge, the fused 4-direction SS2D scan and
//! the SS2D layer, on top of the `no_std` kernels of `ss2d-core`.
//!
//! Every entry point takes a [`Parallelism`], the one executor of the crate (and of
//! `ss2d-capi`): on the calling thread, on `n` threads of the library's pool, on a caller's
//! rayon pool, or through a host's [`ParallelFor`] loop. Work is split into independent items
//! over disjoint outputs, so results are bitwise identical for every executor and thread count.
//!
//! ## Threads, fork and the thread cap
//!
//! - The library keeps **one pool per process**, as large as the largest
//!   [`Parallelism::Threads`] request so far (a larger request replaces it; a smaller one uses
//!   that many of its threads), so the number of threads does not grow with the number of
//!   distinct thread counts asked for.
//! - Requests are **capped at [`max_threads`]**, the CPUs this process may run on
//!   ([`std::thread::available_parallelism`]: affinity masks and cgroup quotas count; 64 where
//!   the platform cannot tell): more threads could not run at once, and the results do not
//!   depend on the count. [`library_pool_threads`] reports the pool's size.
//! - **Fork-safe**: the pool records the process id that built it. In a child made by `fork()`
//!   (which has none of the parent's pool threads) the first threaded call sees a different
//!   id, abandons the inherited pool without touching it and builds a new one, so the child's
//!   calls complete with the threads they ask for instead of waiting forever for threads that
//!   do not exist. This holds when no other thread is inside an ss2d call at the moment of the
//!   fork. A caller's own rayon pool ([`Parallelism::Pool`]) is the caller's to rebuild.
//!
//! Calls that take scratch from the caller ([`selective_scan_with_scratch`],
//! [`fused::ss2d_scan_with_scratch`]) size it with a query for the same executor; the others
//! take their temporaries from a small per-thread buffer pool.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use ss2d_core as core;

pub mod cross;
pub mod fused;
pub mod layer;
pub mod unfused;

mod cpu;
mod exec;
mod pool;
mod scan;

pub use cpu::{check_cpu, CpuError};
pub use exec::{library_pool_threads, max_threads, ParallelFor, Parallelism, ScopedThreads};
pub use layer::{
    Backend, DtRank, ForwardType, Grid, LayerError, Ss2d, Ss2dConfig, Ss2dDims, Ss2dWeights,
};
pub use scan::{selective_scan, selective_scan_scratch_len, selective_scan_with_scratch};
