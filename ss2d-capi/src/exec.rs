//! How a call runs: the calling thread, the library's pool, or the host's `parallel_for`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use std::sync::atomic::{AtomicU32, Ordering};

use ss2d_std::{ParallelFor, Parallelism};

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
/// - `parallel_for == NULL`, `n_threads > 1`: on `n_threads` threads of the library's pool.
///   The process has at most one such pool, with as many threads as the largest request so
///   far (never more), capped at the number of CPUs the process may run on (larger requests
///   are clamped: more threads cannot run at once). After `fork()` the child's first threaded
///   call builds a fresh pool (the parent's pool threads do not exist in the child), so calls
///   in a forked child complete with the threads they ask for.
/// - `parallel_for != NULL`: the work is cut into items that the host's pool runs through
///   `parallel_for` (several rounds per call); `n_threads` is then a hint of the host pool's
///   width (used to pick how finely to split), and `n_items`, when non-zero, the number of
///   items per round (default: as many as there are independent units). `parallel_for` is
///   called from the thread that made the ss2d call.
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

/// The host's loop as an executor of `ss2d-std`, recording the first broken contract.
struct HostLoop {
    pf: unsafe extern "C" fn(*mut c_void, usize, ss2d_item_fn, *mut c_void),
    ctx: *mut c_void,
    width: usize,
    n_items: usize,
    fail: Mutex<Option<Fail>>,
}

// SAFETY: `ctx` is never dereferenced by the library, only passed back to the host's
// `parallel_for`, which is called from the thread that made the ss2d call; the rest is plain
// data and a mutex.
unsafe impl Sync for HostLoop {}

impl HostLoop {
    fn fail(&self, e: Fail) {
        let mut slot = self.fail.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

impl ParallelFor for HostLoop {
    fn parallel_for(&self, n: usize, item: &(dyn Fn(usize) + Sync)) {
        let job = HostJob {
            item,
            calls: (0..n).map(|_| AtomicU32::new(0)).collect(),
            host: self,
        };
        let item_ctx = &job as *const HostJob<'_> as *mut c_void;
        // SAFETY: `pf` is the host's function with the documented contract: it calls
        // `trampoline(item_ctx, i)` for i in 0..n and returns after all calls returned, so
        // `job` (on this stack frame) outlives every use of `item_ctx`.
        unsafe { (self.pf)(self.ctx, n, Some(trampoline), item_ctx) };
        if let Some(i) = job
            .calls
            .iter()
            .position(|c| c.load(Ordering::Acquire) == 0)
        {
            // `ss2d-std` runs the skipped items itself; the broken contract is still reported.
            self.fail(Fail::new(
                ss2d_status::SS2D_CALLBACK,
                format!("parallel_for returned without running item {i} of {n}"),
            ));
        }
    }

    fn width(&self) -> usize {
        self.width
    }

    fn items(&self) -> usize {
        self.n_items
    }
}

/// One `parallel_for` round.
struct HostJob<'a> {
    item: &'a (dyn Fn(usize) + Sync),
    calls: Vec<AtomicU32>,
    host: &'a HostLoop,
}

/// The `ss2d_item_fn` handed to the host: runs item `i` of the `HostJob` at `item_ctx`.
/// Never unwinds (panics are caught and recorded).
unsafe extern "C" fn trampoline(item_ctx: *mut c_void, i: usize) {
    if item_ctx.is_null() {
        return;
    }
    // SAFETY: `item_ctx` is the `HostJob` that `HostLoop::parallel_for` passed to
    // `parallel_for`; by the host's contract it is only called while that `parallel_for`
    // runs, while the job is alive. The job is `Sync` (atomics and `Sync` references).
    let job = unsafe { &*(item_ctx as *const HostJob<'_>) };
    let n = job.calls.len();
    let Some(c) = job.calls.get(i) else {
        job.host.fail(Fail::new(
            ss2d_status::SS2D_CALLBACK,
            format!("parallel_for called item {i}, but there are only {n} items"),
        ));
        return;
    };
    if c.fetch_add(1, Ordering::AcqRel) > 0 {
        job.host.fail(Fail::new(
            ss2d_status::SS2D_CALLBACK,
            format!("parallel_for called item {i} more than once"),
        ));
        return;
    }
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| (job.item)(i))) {
        let msg = format!(
            "internal error (panic in work item {i}): {}",
            panic_message(p.as_ref())
        );
        // Recording cannot panic except on a poisoned lock, which `fail` recovers from.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            job.host.fail(Fail::new(ss2d_status::SS2D_INTERNAL, msg))
        }));
    }
}

/// A validated `ss2d_exec`.
pub(crate) struct Exec {
    n_threads: usize,
    host: Option<HostLoop>,
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
        return Ok(Exec::sequential());
    };
    let host = e.parallel_for.map(|pf| HostLoop {
        pf,
        ctx: e.parallel_for_ctx,
        width: e.n_threads.max(1),
        n_items: e.n_items,
        fail: Mutex::new(None),
    });
    let scratch = if e.scratch.is_null() {
        None
    } else {
        Some(flat("scratch", e.scratch, e.scratch_len)?)
    };
    Ok(Exec {
        n_threads: e.n_threads,
        host,
        scratch,
    })
}

impl Exec {
    /// On the calling thread, library scratch.
    pub(crate) fn sequential() -> Exec {
        Exec {
            n_threads: 0,
            host: None,
            scratch: None,
        }
    }

    /// The executor of `ss2d-std` this exec names.
    pub(crate) fn par(&self) -> Parallelism<'_> {
        match &self.host {
            Some(h) => Parallelism::Host(h),
            None if self.n_threads > 1 => Parallelism::Threads(self.n_threads),
            None => Parallelism::Sequential,
        }
    }

    /// `r`, unless the host broke its contract (or an item panicked on a host thread)
    /// meanwhile: that failure comes first.
    pub(crate) fn outcome<T, E: Into<Fail>>(&self, r: Result<T, E>) -> Res<T> {
        let broken = self
            .host
            .as_ref()
            .and_then(|h| h.fail.lock().unwrap_or_else(|e| e.into_inner()).take());
        match broken {
            Some(f) => Err(f),
            None => r.map_err(Into::into),
        }
    }

    /// The caller's scratch, or `None` for library scratch.
    ///
    /// # Safety
    /// The caller's scratch, when given, is writable for `scratch_len` elements and not
    /// accessed by anyone else during the call, and it was checked not to overlap any tensor.
    pub(crate) unsafe fn scratch<'a>(&self) -> Option<&'a mut [f32]> {
        // SAFETY: the caller's contract (above); the view was validated (aligned, non-NULL
        // when non-empty, in the address space).
        self.scratch.as_ref().map(|v| unsafe { v.as_mut_slice() })
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
