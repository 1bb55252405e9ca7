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
//! ## SIMD levels and dispatch
//! Every build carries every level of its architecture and picks one at run time
//! ([`SimdLevel`]): on x86-64 the baseline (SSE2), `x86-64-v3` (AVX2 + FMA) and `x86-64-v4`
//! (AVX-512), on aarch64 NEON, elsewhere portable scalar lanes. A plain `cargo build` is as
//! fast as a `-C target-cpu=native` one (the kernels are the same code, compiled inside
//! `#[target_feature]` functions per level; see `src/platform/mod.rs`), and a build with a
//! level compiled in (`-C target-cpu=x86-64-v4`) uses it without any run-time check.
//!
//! - [`SimdLevel::detect`]: the best level of the CPU (CPUID + XGETBV, cached; the
//!   standard library's detection with the `std` feature), [`SimdLevel::available`],
//!   [`SimdLevel::current`] (what new plans use), [`SimdLevel::set_current`] (pin a level for
//!   the process; `ss2d-std` maps `SS2D_ISA` onto it for the CLI, the C ABI and Python).
//! - [`ScanPlan::with_level`] / [`fused::FusedPlan::with_level`] run one plan at a named level
//!   and fail with [`Error::Unsupported`] when the CPU lacks it.
//! - Scratch sizes are those of the widest level ([`MAX_LANES`]), so one scratch serves all.
//! - The CPU features of each level are one table, [`level::x86::FEATURES`], used by the
//!   kernels' `#[target_feature]` lists (checked by a test), the detection, and the C ABI's and
//!   the CLI's refusal of a build whose compiled floor the CPU lacks.
//!
//! ## Design
//! One SIMD register holds a panel's channels (16 lanes at `x86-64-v4`, 8 otherwise); a *panel* of
//! channels walks its positions in order with its N states in registers. Panels never
//! straddle a B/C group, so B and C are broadcasts. Inputs are packed per chunk of
//! [`scan::CHUNK`] steps into L1-sized panels (transposed for channel-first data), so the same
//! micro-kernel serves both layouts, any [`Walk`] (reversed, 2D directions) and the fused
//! 2D scan of `ss2d-std`. The SS2D layer's projections run on [`gemm`], a register-blocked
//! matrix product on the same lanes (bias and SiLU applied in registers); its depthwise conv on
//! [`conv`] and its out-norm on [`norm`].
//!
//! Lane code must not meet legacy (non-VEX) SSE instructions: after AVX code they cost a state
//! transition each. So the kernels take square roots on lanes (not `libm::sqrtf`, whose
//! `sqrtss` is legacy SSE) and keep closures out of their loops (a closure is compiled
//! without the level's target features).
//!
//! ## Embedded use
//! The crate is `#![no_std]`, never allocates and needs only scalar `f32` on targets without a
//! vector path (Arm Cortex-M: only the portable level is compiled; its 8-lane panels are arrays
//! on the FPU). The repository's `embedded/` firmware (cortex-m-rt, semihosting, inputs read in
//! place from flash, scratch in a `static`) runs 16 selective-scan cases (11 goldens, 5
//! generated on the host) under QEMU in CI (`.ci/embedded.sh`): Cortex-M4F `mps2-an386` and
//! Cortex-M7 `mps2-an500` (`thumbv7em-none-eabihf`), Cortex-M33 `mps2-an505`
//! (`thumbv8m.main-none-eabihf`): all pass, worst 4.9e-7 x max|ref| over the golden cases.
//!
//! - **Feature `compact`** (off by default) is for flash-constrained targets: the kernel keeps
//!   the states in a loop instead of unrolling each block size (16, 8, 4, 3, 2, 1), B/C are
//!   read through one run-time choice, and the 1D driver has one out-of-line copy of each
//!   packing path. Results are bitwise those of the default build at the same level (same
//!   order of operations; tested at every level). On Thumb-2 (fat LTO, opt-level 3) the scan
//!   code (kernel, packing, math, validation) is 28.4 KB with `compact`, for every N, against
//!   380 KB by default (1.30 MB when the kernel had a block for each of the 16 sizes); CI fails
//!   the compact build above 48 KiB. On a Cortex-M4 `compact` costs ~5% at N = 16 and nothing at
//!   N <= 4; on hosts with SIMD lanes use the default build.
//! - **Memory**: no heap; the scratch is [`scratch_len`] floats and depends on `dstate` only
//!   (sized for 16 lanes: 4,336 floats = 17.3 KB at N = 1, 7,216 = 28.9 KB at N = 16).
//! - **Stack** (Cortex-M4, paint-and-check): one [`selective_scan`] call peaks at 2.3 KB
//!   (N = 1) to 3.7 KB (N = 16), 1.4-1.6 KB with `compact`.
//! - **Speed** (QEMU instruction counts, Cortex-M4): ~82 instructions per state update at
//!   N = 16 (86 with `compact`), ~295 per element at N = 1 (279 with `compact`); details in
//!   `embedded/README.md`.
//!
//! ## Memory and threads
//! Nothing allocates: the caller passes a scratch buffer of [`scratch_len`] elements. A scan can
//! be split into `Send` work items ([`ScanPlan::split`]) over disjoint outputs for a host pool.
//!
//! ## Accuracy and determinism
//! Outputs are bitwise identical for any work-item split, thread count and chunking, and across
//! a scan split in two and resumed from the final state. Within one ISA level results are
//! deterministic, and the dispatched code of a level gives bitwise the results of the same
//! level compiled in statically (`.ci/levels.sh` checks it); across levels (FMA or not, the
//! `exp2` range reduction) they differ at rounding level only.
//! The vector `exp`, `softplus` and `silu` ([`math`]) carry documented bounds (relative error
//! <= 4e-7, 1e-6, 1e-6); against mamba's `selective_scan_ref` the kernel stays within
//! 1e-4 x max|ref| (tests in `tests/`).
//!
//! ## Errors and numerics
//!
//! ### Errors
//! Every entry point ([`selective_scan`], [`ScanPlan::new`] / [`run`](ScanPlan::run) /
//! [`split`](ScanPlan::split), [`WorkItem::run`], [`reference::selective_scan`],
//! [`fused::FusedPlan::new`] / [`run`](fused::FusedPlan::run) /
//! [`split`](fused::FusedPlan::split), [`fused::FusedItem::run`]) validates everything before it
//! touches an output and returns an [`Error`]; on error no output element is written (tested by
//! the `api` fuzz target, which paints outputs with a sentinel). [`Error`] is `Copy`,
//! allocation-free, and its `Display` is one line naming the field or tensor and the expected
//! and actual values:
//!
//! | variant | raised when |
//! |---|---|
//! | `Length { tensor, expected, actual }` | a buffer has the wrong number of elements; tensors are checked in signature order (`u`, `delta`, `A`, `B`, `C`, `D`, `z`, `delta_bias`, `initial_state`, `out`, `final_state`; fused: `x`, `proj`, `dt_projs_weight`, `dt_projs_bias`, `A_logs`, `Ds`, `out`) |
//! | `Zero { field }` | a B/C group count is 0 |
//! | `Dstate { dstate }` | `dstate` outside `1..=256` |
//! | `Groups { tensor, dim, groups }` | the groups of `B` or `C` do not divide `dim` |
//! | `Overflow { what }` | a size product overflows `usize`, or a tensor would exceed `isize::MAX` elements |
//! | `Scratch { needed, actual }` | the scratch is shorter than `scratch_len` |
//! | `WalkLength { expected, actual }` | the walk does not visit exactly `seqlen` positions (or overflows: `Overflow`) |
//! | `WalkBounds { seqlen }` | the walk steps outside `0..seqlen` |
//! | `WalkRepeats { seqlen }` | the walk visits a position twice (its steps are not a permutation of `0..seqlen`) |
//! | `Mismatch { what, expected, actual }` | two sizes disagree (e.g. the buffer count of a fused split) |
//! | `WorkItem`, `Value`, `Unsupported` | reserved for hosts (`ss2d-std` uses `Unsupported` for unknown cross-scan modes) |
//!
//! Zero `batch`, `dim` or `seqlen` is a valid empty problem: nothing is written except
//! `final_state`, which receives the initial state (or zeros); a fused plan for an empty
//! problem has no work units and runs with any scratch, however large its grid. A split with `count` outside
//! `1..=units` is clamped, not refused.
//!
//! ### Accuracy per ISA level
//! Measured with `tests/tests/edges.rs::tolerance_per_isa_level_report` (`.ci/levels.sh` prints
//! it at every level; the NEON row is the aarch64 runner `tests/tests/single_thread.rs` under
//! `qemu-aarch64`) as `max|kernel - want| / max|want|`, worst case over the set. The upstream
//! goldens carry float32 error of their own (up to 3.5e-7 x max|ref| for the selective scans
//! and 7.3e-7 for the layers against float64, per their README), so the first and last columns
//! are at the goldens' noise floor:
//!
//! | level (`SS2D_ISA`, one build) | lanes | golden selective scans (vs upstream f32) | 72 random model-domain scans (vs f64 reference) | golden SS2D layers (vs upstream) |
//! |---|---|---|---|---|
//! | `x86-64` (SSE2, no FMA) | 8 (two SSE halves) | 4.9e-7 | 4.2e-7 | 4.7e-7 |
//! | `x86-64-v3` (AVX2 + FMA) | 8 | 5.0e-7 | 4.0e-7 | 5.5e-7 |
//! | `x86-64-v4` (AVX-512) | 16 | 5.0e-7 | 4.0e-7 | 5.5e-7 |
//! | `neon` (aarch64, under QEMU) | 8 | 5.0e-7 | - | 5.5e-7 |
//!
//! At the edges of the domain (next section) the worst against the f64 reference was 8.1e-7
//! (`x86-64`), 4.4e-7 (`v3`) and 5.6e-7 (`v4`) over a sweep of softplus arguments up to 1e4,
//! `A` down to -1e4 and values up to 1e3, and 2.7e-7 at every level for `dt * A` down to -1e8.
//!
//! The contract is 1e-5 x max|ref| at every level (what the tests assert); results differ
//! across levels at rounding level only (never promised bitwise equal), and are bitwise
//! identical within a level for any split or thread count. The `differential` fuzz target checks
//! `|kernel - ref| <= 1e-4 x max|ref| + 1e-6` elementwise against the f64 reference on bounded
//! inputs (domain in its docs).
//!
//! ### Edge values, NaN and infinity
//! - **Finite inputs stay finite** wherever the exact result and its intermediates are
//!   representable: softplus arguments in `[-1e4, 1e4]` (dt up to 1e4, or underflowing to 0),
//!   `dt * A` down to -1e8 (`dA` underflows to exactly 0), `A = 0` (`dA = 1` exactly: a plain
//!   running sum), magnitudes up to ~1e38, subnormal inputs (computed, not flushed: no FTZ/DAZ;
//!   products that underflow give 0 as in f32 arithmetic, within `1e-5 x max|ref| +
//!   f32::MIN_POSITIVE` of the f64 reference). NaN is never invented from such inputs.
//! - **NaN propagates** exactly where the f64 reference's does: a NaN in `u`, `delta`, `z` or
//!   `delta_bias` poisons its channel from that step on (and `final_state`), in `A`, `D` or the
//!   initial state its channel (or state), in varying `B`/`C` every channel of its group from
//!   that step on. It never leaks into other lanes of a SIMD panel; non-NaN outputs are bitwise
//!   those of the clean run.
//! - **Infinity** in any input gives, element by element, the same class (finite, NaN, +inf,
//!   -inf) as the f32 reference: e.g. `delta = +inf` with softplus gives `dt = inf`;
//!   `delta + bias = -inf` gives `dt = 0` (the step is skipped); `A = -inf` forgets the state
//!   (`dA = 0` for `dt > 0`) but `dt = 0` with `A = -inf` is `0 * inf = NaN`, as upstream;
//!   `z = -inf` gives `silu(z) = -inf / inf = NaN`, as torch's `x * sigmoid(x)`. A result beyond
//!   `f32::MAX` overflows to `+-inf` (not NaN) where the reference's does.
//! - In the fused scan `A = -exp(A_logs)` is formed in f32: `A_logs > 88.7` gives `A = -inf`
//!   (then as above).
//! - **Scratch contents never matter**: a scratch prefilled with NaN, infinities, signalling
//!   NaN or random bits, at any alignment, gives bitwise the result of a zeroed one (1D and
//!   fused, every split); split output buffers' prior contents are ignored too.
#![no_std]
#![deny(missing_docs)]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod conv;
pub mod error;
pub mod fused;
pub mod gemm;
pub mod level;
pub mod math;
pub mod norm;
mod pack;
pub mod peak;
mod platform;
pub mod reference;
pub mod scan;
pub mod shape;
pub mod transpose;
pub mod walk;

pub use error::Error;
pub use level::{SimdLevel, MAX_LANES};
pub use scan::{scratch_len, selective_scan, ScanArgs, ScanPlan, WorkItem, WorkItems};
pub use shape::{BcLayout, Layout, ScanShape, ValidShape, MAX_DSTATE};
pub use walk::Walk;
