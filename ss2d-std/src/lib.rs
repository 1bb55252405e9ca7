//! # ss2d-std
//!
//! Threads (the library's pool, or a caller's rayon pool), VMamba's 2D cross-scan and
//! cross-merge, the fused 4-direction SS2D scan and the SS2D layer, on top of the `no_std`
//! kernels of `ss2d-core`.
//!
//! Cargo feature `layer` (on by default): the SS2D layer ([`layer`], its products on
//! `ss2d_core::gemm`) and the fused SS2D scan ([`fused`], its `x_proj` on the same kernel). With
//! `default-features = false` the crate builds only the scans (the selective scan, cross-scan /
//! cross-merge and the unfused SS2D scan), without the layer and the fused scan.
//!
//! Every entry point takes a [`Parallelism`], the one executor of the crate (and of
//! `ss2d-capi`): on the calling thread, on `n` threads of the library's pool, on a caller's
//! rayon pool, or through a host's [`ParallelFor`] loop. Work is split into independent items
//! over disjoint outputs, so results are bitwise identical for every executor and thread count.
//!
//! ## Threads, fork and the thread cap
//!
//! - The library keeps **one pool per process**, sized for the largest
//!   [`Parallelism::Threads`] request so far (the calling thread is one of a call's threads,
//!   so the pool has one fewer; a larger request replaces it; a smaller one uses that many of
//!   its threads), so the number of threads does not grow with the number of distinct thread
//!   counts asked for.
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
//!
//! ## Threads and memory ordering
//!
//! Nothing in the threaded paths relies on x86's strong (TSO) ordering; they are correct on
//! weakly ordered CPUs (aarch64) because no data is published through a relaxed atomic:
//! - **Work items** write disjoint parts of the output. They are handed out and waited for by
//!   the library pool (a call is published with `SeqCst` stores under a mutex, and the caller
//!   returns only after a `SeqCst` load sees no pool thread inside the call) or by rayon
//!   (latches and job queues with acquire/release operations and mutex/condvar waits), so
//!   every item's writes happen-before the return of the call that spawned them.
//!   `ss2d-core`'s `WorkItems` / `Sink` (disjoint elements behind one pointer) and
//!   `ss2d-capi`'s gather/scatter `Ptr` add no synchronization of their own and need none
//!   beyond that join.
//! - **Shared state** is behind `std` primitives: the library pool behind a `Mutex`,
//!   the C ABI's per-item cells in `Mutex`es; per-thread buffer reuse is
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
//! pool or spawn a thread. Under QEMU user emulation for aarch64, where threads cannot
//! run here, the conformance runner `tests/tests/single_thread.rs` checks them (`.ci/emulated.sh`).
#![deny(missing_docs)]
// Safe code only, except the library pool's hand-off of a borrowed closure to its workers
// (`spin`, which documents the protocol that keeps the borrow alive).
#![deny(unsafe_code)]

pub use ss2d_core as core;

pub mod cross;
#[cfg(feature = "layer")]
pub mod fused;
#[cfg(feature = "layer")]
pub mod layer;
pub mod unfused;

pub mod cpu;
mod exec;
mod pool;
mod scan;
#[allow(unsafe_code)]
mod spin;

pub use cpu::{check_cpu, CpuError};
pub use exec::{library_pool_threads, max_threads, ParallelFor, Parallelism, ScopedThreads};
#[cfg(feature = "layer")]
pub use layer::{
    Backend, DtRank, ForwardType, Grid, LayerError, Ss2d, Ss2dConfig, Ss2dDims, Ss2dWeights,
};
pub use scan::{selective_scan, selective_scan_scratch_len, selective_scan_with_scratch};
