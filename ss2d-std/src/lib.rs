//! # ss2d-std
//!
//! Threads (rayon), VMamba's 2D cross-scan and cross-merge, the fused 4-direction SS2D scan and
//! the SS2D layer, on top of the `no_std` kernels of `ss2d-core`.
//!
//! Every entry point takes a [`Parallelism`]: sequential, `n` threads, or a caller's rayon pool.
//! Work is split into independent items over disjoint outputs, so results are bitwise identical
//! for every thread count.
//!
//! ## Threads and memory ordering
//!
//! Nothing in the threaded paths relies on x86's strong (TSO) ordering; they are correct on
//! weakly ordered CPUs (aarch64) because no data is published through a hand-written atomic:
//! - **Work items** write disjoint parts of the output. They are handed out and waited for by
//!   rayon (`install`, parallel iterators, `join`), whose latches and job queues use
//!   acquire/release (or `SeqCst`) operations and mutex/condvar waits, so every item's writes
//!   happen-before the return of the call that spawned them. `ss2d-core`'s `WorkItems` /
//!   `Sink` (disjoint elements behind one pointer) and `ss2d-capi`'s gather/scatter `Ptr` add
//!   no synchronization of their own and need none beyond that join.
//! - **Shared state** is behind `std` primitives: the per-thread-count pools in `OnceLock`s,
//!   the C ABI's per-slot scratch and per-item cells in `Mutex`es; per-thread buffer reuse is
//!   `thread_local!` (never shared).
//! - **`Relaxed` atomics** appear only where ordering cannot matter: `fetch_add` counters that
//!   make temporary file names unique (`ss2d-cli`), and the work counters of the test hosts,
//!   whose items are joined (thread join / scope end) before their results are read. An atomic
//!   read-modify-write is unique under any ordering; nothing else is read through them.
//! - **A host's `parallel_for`** (C ABI) must return only after every item call returned *and*
//!   with their writes visible to the caller: a thread join, a barrier, or a mutex/condvar wait
//!   gives that; a spin on a `relaxed` flag does not on aarch64. The C and Python examples join.
//!
//! The single-threaded paths ([`Parallelism::Sequential`], `Threads(0 | 1)`) never touch a
//! rayon pool or spawn a thread. Under QEMU user emulation for aarch64, where threads cannot
//! run here, the conformance runner `tests/tests/single_thread.rs` checks them (`.ci/emulated.sh`).
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
