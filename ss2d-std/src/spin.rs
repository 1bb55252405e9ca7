//! The library's own thread pool ([`crate::Parallelism::Threads`]): workers that wait for the
//! next call by spinning for a short while before they sleep, and a caller that never waits
//! for a worker that has not started.
//!
//! - **Spin, then sleep.** After a call a worker polls for the next one for [`SPIN`] before
//!   it sleeps on a condition variable, so the back-to-back calls of a forward (one per stage)
//!   find the workers awake; a sleeping worker is woken only when a call finds sleepers.
//! - **The caller waits only for items in progress.** The caller publishes the call, runs
//!   its own share and then takes what is left (the `Shares` of `exec`). A worker that wakes
//!   after the last item was taken runs nothing, and the caller does not wait for it: it
//!   waits only while a worker is inside the call (running an item it took).
//! - **One call at a time.** A call made while the pool is busy (another thread's call, or a
//!   call from inside an item) runs on its calling thread: the same result.
//!
//! A panic in an item on a worker is caught there and resumed on the caller once no worker is
//! inside the call.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a worker polls for the next call before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(200);

/// One call: its items (`run(w)`: the loop of worker `w`) and how many workers take part.
#[derive(Clone, Copy)]
struct Job {
    /// `&dyn Fn(worker)` of the caller's frame, its lifetime erased: dereferenced only by a
    /// worker registered in `active` while `open` (the caller's frame is alive then).
    run: *const (dyn Fn(usize) + Sync),
    /// Workers beside the caller that may take part (the pool's first `helpers`).
    helpers: usize,
}

// SAFETY: `Job` is a pointer to a `Sync` closure; it is dereferenced only under the protocol
// of `SpinPool::run` and `worker`, which keeps the closure alive while any thread uses it.
unsafe impl Send for Job {}

struct Shared {
    /// Bumped for every call (and for shutdown): a worker polls it.
    epoch: AtomicU64,
    /// The current call, valid while `open`.
    job: Mutex<Option<Job>>,
    /// True from the publication of a call until the caller has run out of items.
    open: AtomicBool,
    /// Workers inside the current call.
    active: AtomicUsize,
    /// Workers asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    quit: AtomicBool,
    /// The first panic of a worker's item in the current call.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Held by the caller of the current call.
    busy: Mutex<()>,
}

/// A pool of `threads` workers (module docs).
pub(crate) struct SpinPool {
    shared: Arc<Shared>,
    threads: usize,
}

impl SpinPool {
    /// `threads` workers named `ss2d-{i}`; `None` when the OS refuses a thread (those
    /// already started exit).
    pub(crate) fn new(threads: usize) -> Option<SpinPool> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            open: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            quit: AtomicBool::new(false),
            panic: Mutex::new(None),
            busy: Mutex::new(()),
        });
        let pool = SpinPool { shared, threads };
        for i in 0..threads {
            let s = Arc::clone(&pool.shared);
            // Detached: a worker exits when told to quit (`Drop`). On failure `pool` drops
            // here and the workers already started are told to quit.
            std::thread::Builder::new()
                .name(format!("ss2d-{i}"))
                .spawn(move || worker(&s, i))
                .ok()?;
        }
        Some(pool)
    }

    /// Runs `run(w)` for the caller (`w = 0`) and for up to `helpers` workers (`w = 1 +` the
    /// worker's index), returning once the caller's `run(0)` has returned and no worker is
    /// inside the call. `run` must take every item itself when no worker comes (as
    /// `Shares::run` does). On the calling thread alone when the pool is busy.
    pub(crate) fn run(&self, helpers: usize, run: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        let Ok(_busy) = s.busy.try_lock() else {
            return run(0);
        };
        // SAFETY: only the lifetime is erased. A worker dereferences the pointer only while
        // registered in `active` with the call `open`; this frame closes the call and then
        // waits for `active` to reach 0 before it returns, so `run` outlives every use.
        let erased: *const (dyn Fn(usize) + Sync) = unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(run)
        };
        *s.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(Job {
            run: erased,
            helpers: helpers.min(self.threads),
        });
        s.open.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.sleep.lock().unwrap_or_else(PoisonError::into_inner);
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| run(0)));
        // No worker enters from here on (it checks `open` after registering in `active`);
        // wait for those inside.
        s.open.store(false, SeqCst);
        let start = Instant::now();
        while s.active.load(SeqCst) > 0 {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *s.job.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let theirs = s
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

impl Drop for SpinPool {
    /// Tells the workers to exit (they finish a call they are in first) without waiting for
    /// them.
    fn drop(&mut self) {
        let s = &*self.shared;
        s.quit.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        let _g = s.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        s.wake.notify_all();
    }
}

/// Worker `index`'s loop: wait for a new epoch (spin, then sleep), take part in the call if
/// it is open and wants this worker, repeat until told to quit.
fn worker(s: &Shared, index: usize) {
    let mut seen = s.epoch.load(SeqCst);
    loop {
        let start = Instant::now();
        let mut polls = 0u32;
        while s.epoch.load(SeqCst) == seen {
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(64) && start.elapsed() >= SPIN {
                let mut g = s.sleep.lock().unwrap_or_else(PoisonError::into_inner);
                s.sleepers.fetch_add(1, SeqCst);
                while s.epoch.load(SeqCst) == seen {
                    g = s.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
                }
                s.sleepers.fetch_sub(1, SeqCst);
                break;
            }
        }
        seen = s.epoch.load(SeqCst);
        if s.quit.load(SeqCst) {
            return;
        }
        s.active.fetch_add(1, SeqCst);
        if s.open.load(SeqCst) {
            let job = *s.job.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(job) = job.filter(|j| index < j.helpers) {
                // SAFETY: registered in `active` while the call is open, so its caller is
                // still inside `SpinPool::run` (it waits for `active` to reach 0 after
                // closing the call) and the closure is alive.
                let f = unsafe { &*job.run };
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(1 + index))) {
                    let mut first = s.panic.lock().unwrap_or_else(PoisonError::into_inner);
                    first.get_or_insert(p);
                }
            }
        }
        s.active.fetch_sub(1, SeqCst);
    }
}
