//! How a call runs: the calling thread, the library's pool, or the host's `parallel_for`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use rayon::prelude::*;
use ss2d_std::Parallelism;

use crate::tensor::{flat, View};
use crate::{panic_message, ss2d_status, Fail, Res};

/// One work item, called by the host's `parallel_for` as `item(item_ctx, i)`.
pub type ss2d_item_fn = Option<unsafe extern "C" fn(item_ctx: *mut c_void, i: usize)>;

/// The host's parallel loop: must call `item(item_ctx, i)` exactly once for every `i` in
/// `0 .. n_items`, from any threads and in any order (concurrently or not), and return only
/// after all those calls have returned. `ctx` is `ss2d_exec.parallel_for_ctx`, passed through.
/// `item` is never NULL, and the library never calls it with `n_items == 0`.
pub type ss2d_parallel_for_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        n_items: usize,
        item: ss2d_item_fn,
        item_ctx: *mut c_void,
    ),
>;

/// How a call runs, and optionally the caller's scratch. A NULL `ss2d_exec*` or an all-zero
/// struct means: on the calling thread, library-allocated scratch.
///
/// - `parallel_for == NULL`, `n_threads <= 1`: on the calling thread.
/// - `parallel_for == NULL`, `n_threads > 1`: on the library's own pool of `n_threads` threads
///   (pools are created on first use per thread count and kept; at most 256 threads).
/// - `parallel_for != NULL`: the work is cut into items that the host's pool runs through
///   `parallel_for` (several rounds per call for the fused scan); `n_threads` is then a hint of
///   the host pool's width (used to pick how finely to split), and `n_items`, when non-zero,
///   the number of items per round (default: as many as there are independent units).
///
/// The result is bitwise identical in all three modes and for any `n_threads` / `n_items`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_exec {
    /// Threads of the library pool (no `parallel_for`), or the host pool's width (hint).
    pub n_threads: usize,
    /// The host's parallel loop, or NULL.
    pub parallel_for: ss2d_parallel_for_fn,
    /// Passed to `parallel_for` as its first argument.
    pub parallel_for_ctx: *mut c_void,
    /// Items per `parallel_for` round; 0 = the library's choice.
    pub n_items: usize,
    /// The caller's scratch (`float`s), or NULL for library-allocated scratch. Size it with the
    /// call's `*_scratch_size` query made with the same `ss2d_exec` values. It must not
    /// overlap any tensor of the call; its contents on entry and exit are unspecified.
    pub scratch: *mut f32,
    /// Elements in `scratch`.
    pub scratch_len: usize,
}

/// Threads the library pool may have (the `ss2d-std` pool cache's bound).
const MAX_POOL: usize = 256;

/// Items per thread for the library pool, so uneven items balance.
const ITEMS_PER_THREAD: usize = 4;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    Seq,
    Threads(usize),
    Host {
        pf: unsafe extern "C" fn(*mut c_void, usize, ss2d_item_fn, *mut c_void),
        ctx: *mut c_void,
        hint: usize,
        n_items: usize,
    },
}

/// A validated `ss2d_exec`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exec {
    pub(crate) mode: Mode,
    /// The caller's scratch.
    pub(crate) scratch: Option<View>,
}

/// Reads an optional `ss2d_exec`.
///
/// # Safety
/// `p` is NULL or points to a valid `ss2d_exec`.
pub(crate) unsafe fn read_exec(p: *const ss2d_exec) -> Res<Exec> {
    // SAFETY: NULL checked by `as_ref`; valid otherwise by the caller's contract.
    let Some(e) = (unsafe { p.as_ref() }) else {
        return Ok(Exec {
            mode: Mode::Seq,
            scratch: None,
        });
    };
    let mode = match e.parallel_for {
        Some(pf) => Mode::Host {
            pf,
            ctx: e.parallel_for_ctx,
            hint: e.n_threads.max(1),
            n_items: e.n_items,
        },
        None if e.n_threads > 1 => Mode::Threads(e.n_threads),
        None => Mode::Seq,
    };
    let scratch = if e.scratch.is_null() {
        None
    } else {
        Some(flat("scratch", e.scratch, e.scratch_len)?)
    };
    Ok(Exec { mode, scratch })
}

/// Scratch for a call: the caller's or the library's.
pub(crate) enum Scratch<'a> {
    Caller(&'a mut [f32]),
    Own(Vec<f32>),
}

impl Scratch<'_> {
    pub(crate) fn slice(&mut self) -> &mut [f32] {
        match self {
            Scratch::Caller(s) => s,
            Scratch::Own(v) => v,
        }
    }
}

impl Exec {
    /// On the calling thread, library scratch.
    pub(crate) fn sequential() -> Exec {
        Exec {
            mode: Mode::Seq,
            scratch: None,
        }
    }

    /// How many threads may run at once (the split heuristics' input).
    pub(crate) fn width(&self) -> usize {
        match self.mode {
            Mode::Seq => 1,
            Mode::Threads(n) => n.min(MAX_POOL),
            Mode::Host { hint, .. } => hint,
        }
    }

    pub(crate) fn is_seq(&self) -> bool {
        matches!(self.mode, Mode::Seq)
    }

    /// Work items to create for `units` independent units (at least 1, at most `units`).
    pub(crate) fn items_for(&self, units: usize) -> usize {
        let n = match self.mode {
            Mode::Seq => 1,
            Mode::Threads(n) => n.min(MAX_POOL).saturating_mul(ITEMS_PER_THREAD),
            Mode::Host { n_items: 0, .. } => units,
            Mode::Host { n_items, .. } => n_items,
        };
        n.clamp(1, units.max(1))
    }

    /// Scratch slots (one per concurrently running item) for `items` items.
    pub(crate) fn slots(&self, items: usize) -> usize {
        match self.mode {
            Mode::Seq => 1,
            Mode::Threads(n) => n.min(MAX_POOL),
            Mode::Host { .. } => items.max(1),
        }
    }

    /// The scratch of `need` elements: the caller's (checked) or a new buffer.
    ///
    /// # Safety
    /// The caller's scratch, when given, is writable for `scratch_len` elements and not
    /// accessed by anyone else during the call, and it was checked not to overlap any tensor.
    pub(crate) unsafe fn scratch<'a>(&self, need: usize) -> Res<Scratch<'a>> {
        match &self.scratch {
            None => Ok(Scratch::Own(vec![0.0f32; need])),
            Some(v) if v.numel < need => Err(Fail::new(
                ss2d_status::SS2D_SCRATCH_TOO_SMALL,
                format!(
                    "scratch has {} elements, this call needs {need} (see the *_scratch_size \
                     query)",
                    v.numel
                ),
            )),
            Some(v) => {
                // SAFETY: the caller's contract (above); `v` was validated (aligned, non-NULL
                // when non-empty, in the address space).
                let s = unsafe { v.as_mut_slice() };
                Ok(Scratch::Caller(&mut s[..need]))
            }
        }
    }

    /// The rayon parallelism of the library pool modes.
    pub(crate) fn par(&self) -> Parallelism<'static> {
        match self.mode {
            Mode::Threads(n) => Parallelism::Threads(n.min(MAX_POOL)),
            _ => Parallelism::Sequential,
        }
    }

    /// Runs every item once with a scratch slot of `per` elements from `scratch` (which holds
    /// at least `slots(items.len()) * per`), in this exec's mode.
    pub(crate) fn run_items<T: Send>(
        &self,
        items: Vec<T>,
        scratch: &mut [f32],
        per: usize,
        f: &(dyn Fn(T, &mut [f32]) -> Res<()> + Sync),
    ) -> Res<()> {
        let n = items.len();
        if n == 0 {
            return Ok(());
        }
        let slots = self.slots(n);
        let need = slots
            .checked_mul(per)
            .ok_or_else(|| Fail::new(ss2d_status::SS2D_INTERNAL, "scratch size overflow"))?;
        if scratch.len() < need {
            return Err(Fail::new(
                ss2d_status::SS2D_INTERNAL,
                format!("internal scratch sizing: {} < {need}", scratch.len()),
            ));
        }
        let mut parts: Vec<&mut [f32]> = if per == 0 {
            (0..slots).map(|_| <&mut [f32]>::default()).collect()
        } else {
            scratch[..need].chunks_mut(per).collect()
        };
        match self.mode {
            Mode::Seq => {
                let s = &mut parts[0];
                for it in items {
                    f(it, s)?;
                }
                Ok(())
            }
            Mode::Threads(_) => {
                let cells: Vec<Mutex<&mut [f32]>> = parts.into_iter().map(Mutex::new).collect();
                self.par().install(|| {
                    items.into_par_iter().try_for_each(|it| {
                        // Each pool worker owns the slot of its index; the lock is uncontended
                        // (it only serializes if the pool is not the one we asked for).
                        let i = rayon::current_thread_index().unwrap_or(0) % cells.len();
                        let mut s = cells[i].lock().unwrap_or_else(|e| e.into_inner());
                        f(it, &mut s)
                    })
                })
            }
            Mode::Host { pf, ctx, .. } => {
                let job = HostJob {
                    cells: items
                        .into_iter()
                        .zip(parts)
                        .map(|(it, s)| Mutex::new(Some((it, s))))
                        .collect(),
                    f,
                    err: Mutex::new(None),
                };
                let item_ctx = &job as *const HostJob<'_, T> as *mut c_void;
                // SAFETY: `pf` is the host's function with the documented contract: it calls
                // `trampoline::<T>(item_ctx, i)` for i in 0..n and returns after all calls
                // returned, so `job` (on this stack frame) outlives every use of `item_ctx`.
                unsafe { pf(ctx, n, Some(trampoline::<T>), item_ctx) };
                if let Some(e) = job.err.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    return Err(e);
                }
                for (i, c) in job.cells.iter().enumerate() {
                    if c.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        return Err(Fail::new(
                            ss2d_status::SS2D_CALLBACK,
                            format!(
                                "parallel_for returned without running item {i} of {n}; the \
                                 outputs are incomplete"
                            ),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl View {
    /// The view's memory as one mutable slice (flat views only).
    ///
    /// # Safety
    /// A flat (1-D, stride 1) validated view over memory writable and exclusive for `'a`.
    pub(crate) unsafe fn as_mut_slice<'a>(&self) -> &'a mut [f32] {
        if self.numel == 0 {
            return &mut [];
        }
        // SAFETY: the caller's contract; non-NULL and aligned by validation.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.numel) }
    }
}

/// An item not yet run, with its scratch slot.
type Cell<'a, T> = Mutex<Option<(T, &'a mut [f32])>>;

/// The state shared by the host's calls of one `parallel_for` round.
struct HostJob<'a, T> {
    cells: Vec<Cell<'a, T>>,
    f: &'a (dyn Fn(T, &mut [f32]) -> Res<()> + Sync),
    err: Mutex<Option<Fail>>,
}

impl<T> HostJob<'_, T> {
    fn run(&self, i: usize) -> Res<()> {
        let n = self.cells.len();
        let cell = self.cells.get(i).ok_or_else(|| {
            Fail::new(
                ss2d_status::SS2D_CALLBACK,
                format!("parallel_for called item {i}, but there are only {n} items"),
            )
        })?;
        let taken = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (it, s) = taken.ok_or_else(|| {
            Fail::new(
                ss2d_status::SS2D_CALLBACK,
                format!("parallel_for called item {i} more than once"),
            )
        })?;
        (self.f)(it, s)
    }

    fn fail(&self, e: Fail) {
        let mut slot = self.err.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

/// The `ss2d_item_fn` handed to the host: runs item `i` of the `HostJob<T>` at `item_ctx`.
/// Never unwinds (panics are caught and recorded).
unsafe extern "C" fn trampoline<T: Send>(item_ctx: *mut c_void, i: usize) {
    if item_ctx.is_null() {
        return;
    }
    // SAFETY: `item_ctx` is the `HostJob<T>` that `run_items` passed to `parallel_for` along
    // with this very instantiation; by the host's contract it is only called while that
    // `parallel_for` runs, while the job is alive. The job is `Sync` (mutex-guarded cells).
    let job = unsafe { &*(item_ctx as *const HostJob<'_, T>) };
    let r = catch_unwind(AssertUnwindSafe(|| job.run(i))).unwrap_or_else(|p| {
        Err(Fail::new(
            ss2d_status::SS2D_INTERNAL,
            format!(
                "internal error (panic in work item {i}): {}",
                panic_message(p.as_ref())
            ),
        ))
    });
    if let Err(e) = r {
        // Recording cannot panic except on a poisoned lock, which `fail` recovers from.
        let _ = catch_unwind(AssertUnwindSafe(|| job.fail(e)));
    }
}
