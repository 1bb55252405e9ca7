//! The executor: how a call runs its work items.
//!
//! Every parallel path of this crate (the selective scan, cross-scan/merge, the fused and
//! unfused SS2D scans, every stage of the layer) and of `ss2d-capi` cuts its work into
//! independent items over disjoint outputs and hands them to a [`Parallelism`]:
//!
//! | variant | where the items run |
//! |---|---|
//! | [`Parallelism::Sequential`] | on the calling thread |
//! | [`Parallelism::Threads`] | on the calling thread and at most `n - 1` threads of the library's pool |
//! | [`Parallelism::Pool`] | on the calling thread and the caller's rayon pool |
//! | [`Parallelism::Host`] | through the caller's [`ParallelFor`] (e.g. a C host's `parallel_for`) |
//!
//! How the work is cut never depends on which threads run it (the cut depends at most on the
//! thread count, and then only in ways that keep every addition in the same order), so
//! results are bitwise identical for every executor and thread count.
//!
//! ## The library pool
//!
//! - **One pool per process.** A call on `n` threads runs on the calling thread and `n - 1`
//!   threads of the pool, so the pool has one thread fewer than the largest
//!   [`Parallelism::Threads`] request so far (no idle pool thread competes with the caller
//!   for a CPU); a larger request replaces it by a larger pool (the old pool's threads exit
//!   as soon as the calls still running on it return). A request for fewer threads runs on
//!   the same pool with that many of its threads. The number of distinct thread counts asked
//!   for does not matter.
//! - **Capped at [`max_threads`]**: the number of CPUs this process may run on
//!   ([`std::thread::available_parallelism`], which honours affinity masks and cgroup quotas;
//!   64 where the platform cannot tell). More threads than that cannot run at once: they
//!   would only add stacks and context switches, never speed. Larger requests are clamped to
//!   it (the result is the same, see above).
//! - **Fork-safe.** The pool remembers the process that built it. After `fork()`, the child
//!   has none of the parent's pool threads (only the forking thread survives a fork), so the
//!   child's first threaded call sees the changed process id, abandons the inherited pool
//!   without touching it (its memory is leaked, once per fork; joining or signalling threads
//!   that do not exist would hang) and builds a new pool: the child's calls run with the
//!   threads they ask for. As for any multithreaded program, this holds when no other thread
//!   is inside an ss2d call at the moment of the fork. A caller's own rayon pool
//!   ([`Parallelism::Pool`]) is the caller's to rebuild after a fork.
//! - If a pool cannot be built (the OS refuses threads), the call runs on the calling thread:
//!   the result is the same.
//! - **Its own threads, not rayon's** (`crate::spin`): after a call a pool thread polls for
//!   the next one for 200 us before it sleeps, and a caller waits only for items in
//!   progress, never for a thread that has not woken yet. A call on a rayon pool from outside
//!   it paid for a wake-up on the way in and on the way out: on the 2-core development VM an
//!   empty two-item call took 83 us after 1 ms idle (4.8-5.2 us back to back; here 14.6 and
//!   0.8-0.9 us, `benches/examples/pool.rs`), and the conv and norm stages of a 14 x 14 layer
//!   ran slower on two threads than on one. One call runs on the pool at a time: a call made
//!   meanwhile (from another thread, or from inside an item) runs on its calling thread, with
//!   the same result.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::pool::Buf;
use crate::spin::SpinPool;

/// A host's parallel loop: the executor of a program that has its own thread pool.
pub trait ParallelFor: Sync {
    /// Calls `item(i)` once for every `i` in `0..n`, from any threads and in any order
    /// (concurrently or not), and returns after all those calls have returned. `n` is never
    /// 0. An implementation that skips an index has that item run afterwards on the calling
    /// thread; one that calls an index twice or out of range has the extra calls ignored: the
    /// result stays complete and correct either way.
    fn parallel_for(&self, n: usize, item: &(dyn Fn(usize) + Sync));

    /// How many items the host runs at once (a hint: it picks how finely work is split).
    fn width(&self) -> usize;

    /// Items per [`ParallelFor::parallel_for`] round; 0 (the default) lets the library choose
    /// (one per independent unit of work).
    fn items(&self) -> usize {
        0
    }
}

/// The executor of a call (module docs): on the calling thread, on `n` threads of the
/// library's pool, on a caller's rayon pool, or through a host's [`ParallelFor`].
#[derive(Clone, Copy, Default)]
pub enum Parallelism<'p> {
    /// Everything on the calling thread.
    #[default]
    Sequential,
    /// At most `n` threads: the calling thread and `n - 1` of the library's one pool (0 or 1
    /// = sequential; clamped to [`max_threads`]).
    Threads(usize),
    /// The caller's rayon pool: as many threads as it has, the calling thread one of them
    /// (it works on the call too, and is one of the pool's when called from inside it).
    Pool(&'p rayon::ThreadPool),
    /// The host's parallel loop.
    Host(&'p dyn ParallelFor),
}

impl std::fmt::Debug for Parallelism<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Parallelism::Sequential => write!(f, "Sequential"),
            Parallelism::Threads(n) => write!(f, "Threads({n})"),
            Parallelism::Pool(p) => write!(f, "Pool({} threads)", p.current_num_threads()),
            Parallelism::Host(h) => write!(f, "Host(width {}, items {})", h.width(), h.items()),
        }
    }
}

/// Work items per thread for the pools, so that uneven items balance.
const ITEMS_PER_THREAD: usize = 4;

/// The largest thread count the library pool takes (module docs): the CPUs this process may
/// run on, or 64 where the platform cannot tell. Computed once per process.
pub fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(64, |n| n.get()))
}

/// The library pool and the process that built it.
struct Shared {
    pid: u32,
    /// The largest request it serves: the pool's threads and the caller.
    threads: usize,
    pool: Arc<SpinPool>,
}

static LIBRARY: Mutex<Option<Shared>> = Mutex::new(None);

/// Sets down a pool that is no longer the library's: dropped (its threads exit when the calls
/// running on it return) when this process built it, leaked when it was inherited across a
/// fork (its threads do not exist here; dropping would signal them through state a parent
/// thread may have held locked at the fork).
fn retire(old: Option<Shared>, pid: u32) {
    if let Some(s) = old {
        if s.pid == pid {
            drop(s);
        } else {
            std::mem::forget(s);
        }
    }
}

/// The library pool for calls on up to `n` threads (`2 <= n <= max_threads()`): at least
/// `n - 1` threads beside the caller, built or grown on demand; `None` when the OS refuses
/// the threads.
fn library_pool(n: usize) -> Option<Arc<SpinPool>> {
    let pid = std::process::id();
    {
        let mut g = LIBRARY.lock().unwrap_or_else(PoisonError::into_inner);
        match g.as_ref() {
            Some(s) if s.pid == pid && s.threads >= n => return Some(Arc::clone(&s.pool)),
            Some(s) if s.pid != pid => retire(g.take(), pid),
            _ => {}
        }
    }
    // Built without the lock held: the lock is only ever held for a few loads and stores.
    let pool = SpinPool::new(n - 1)?;
    let mut g = LIBRARY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = g.as_ref() {
        if s.pid == pid && s.threads >= n {
            // Another thread grew the pool meanwhile: use that one, drop ours.
            return Some(Arc::clone(&s.pool));
        }
    }
    let pool = Arc::new(pool);
    let old = g.replace(Shared {
        pid,
        threads: n,
        pool: Arc::clone(&pool),
    });
    drop(g);
    retire(old, pid);
    Some(pool)
}

/// Threads a call on the library pool may use: its threads and the calling thread, the
/// largest [`Parallelism::Threads`] request so far, clamped to [`max_threads`] (0 before the
/// first threaded call, or when the pool was inherited across a fork and not yet rebuilt).
pub fn library_pool_threads() -> usize {
    let g = LIBRARY.lock().unwrap_or_else(PoisonError::into_inner);
    match g.as_ref() {
        Some(s) if s.pid == std::process::id() => s.threads,
        _ => 0,
    }
}

/// Runs `f(i)` for every `i` in `0..n` on the calling thread and `workers - 1` threads of the
/// library's `pool` (its first ones), as [`Shares`]: the caller is worker 0 and pool thread
/// `t` worker `t + 1`, so passes cut along the same axis give each thread the same part of
/// the data in every pass (see [`on_pool`]).
fn on_spin(pool: &SpinPool, workers: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
    in_parts(n, f, &|n, f| {
        let shares = Shares::new(n, workers);
        pool.run(workers - 1, &|w| shares.run(w, f));
    });
}

/// The items of a call: `f(i)` for each index.
type Items<'a> = dyn Fn(usize) + Sync + 'a;

/// `call(n, f)`, or, where `n` is too large for [`Shares`] (two 32-bit indices packed in one
/// atomic: never seen), `call` on consecutive parts of `0..n`.
fn in_parts(n: usize, f: &Items<'_>, call: &dyn Fn(usize, &Items<'_>)) {
    const PART: usize = u32::MAX as usize;
    if n <= PART {
        return call(n, f);
    }
    for base in (0..n).step_by(PART) {
        call(PART.min(n - base), &|i| f(base + i));
    }
}

/// Runs `f(i)` for every `i` in `0..n` on the calling thread and `workers - 1` threads of
/// `pool` (so no more than `workers` run at once, whatever the pool's size).
///
/// The calling thread works from the start instead of handing the whole call to the pool and
/// sleeping until it returns: a call costs one wake-up fewer on the way in and, when the
/// caller takes the last item, none on the way out, and the caller's first items run on the
/// data it just wrote. The helpers are started as a tree (each started helper starts up to
/// two more before it works), so that no thread pays for waking all the others: the last
/// helper is about `log2(workers)` wake-ups away instead of `workers - 1`.
///
/// Items are handed out as [`Shares`]: worker `w` first runs its own contiguous share of
/// the indices, then takes from the back of the others' shares until none is left. The
/// caller is always worker 0 and a pool thread takes the share of its index in the pool
/// where that one is free, so passes cut along the same axis (positions, say) give each
/// thread the same part of the data in every pass: it reads what it wrote itself, from its
/// own cache, instead of what another core wrote (on the 2-core development VM, reading data
/// another core just wrote doubled the time of the memory-bound passes, measured).
fn on_pool(pool: &rayon::ThreadPool, workers: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
    in_parts(n, f, &|n, f| on_rayon(pool, workers, n, f));
}

/// [`on_pool`] for `n` that fits [`Shares`].
fn on_rayon(pool: &rayon::ThreadPool, workers: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
    let shares = Shares::new(n, workers);
    let claimed: Vec<AtomicBool> = (0..workers).map(|w| AtomicBool::new(w == 0)).collect();
    let helper = || {
        // A helper takes the share of its pool index when free, else any free one, else
        // none (it only takes from the others' shares then).
        let others = workers.saturating_sub(1).max(1);
        let home = rayon::current_thread_index().map_or(1, |i| 1 + i % others);
        let mine = (home..workers)
            .chain(1..home)
            .find(|&w| !claimed[w].swap(true, Ordering::Relaxed));
        shares.run(mine.unwrap_or(0), f);
    };
    pool.in_place_scope(|s| {
        helpers(s, workers - 1, &helper);
        shares.run(0, f);
    });
}

/// Starts `count` helpers running `work` on `s`: two subtrees of about half each, whose root
/// helper starts its own subtrees before it works.
fn helpers<'s>(s: &rayon::Scope<'s>, count: usize, work: &'s (dyn Fn() + Sync)) {
    let half = count / 2;
    for part in [count - half, half] {
        if part > 0 {
            s.spawn(move |s| {
                helpers(s, part - 1, work);
                work();
            });
        }
    }
}

/// The indices `0..n` cut into one contiguous share per worker (sizes differing by at most
/// one), each a `(front, back)` pair packed in one atomic: its owner takes from the front,
/// the others from the back once their own share is done. Every index is taken exactly once.
struct Shares {
    shares: Vec<AtomicU64>,
}

impl Shares {
    /// Shares of `0..n` for `workers` workers (`n < 2^32`).
    fn new(n: usize, workers: usize) -> Self {
        let starts = group_starts(n, workers);
        let shares = starts
            .windows(2)
            .map(|w| AtomicU64::new(pack(w[0], w[1])))
            .collect();
        Shares { shares }
    }

    /// Takes one index of share `s` from its front (`front`) or back: `None` when empty.
    fn take(&self, s: usize, front: bool) -> Option<usize> {
        let cell = &self.shares[s];
        let mut v = cell.load(Ordering::Relaxed);
        loop {
            let (f, b) = unpack(v);
            if f >= b {
                return None;
            }
            let (next, got) = if front {
                (pack(f + 1, b), f)
            } else {
                (pack(f, b - 1), b - 1)
            };
            match cell.compare_exchange_weak(v, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(got),
                Err(now) => v = now,
            }
        }
    }

    /// Worker `w`'s loop: its own share front to back, then the others' from their backs.
    fn run(&self, w: usize, f: &(dyn Fn(usize) + Sync)) {
        let k = self.shares.len();
        let w = w % k.max(1);
        while let Some(i) = self.take(w, true) {
            f(i);
        }
        for s in (w + 1..k).chain(0..w) {
            while let Some(i) = self.take(s, false) {
                f(i);
            }
        }
    }
}

fn pack(front: usize, back: usize) -> u64 {
    ((front as u64) << 32) | back as u64
}

fn unpack(v: u64) -> (usize, usize) {
    ((v >> 32) as usize, (v & 0xffff_ffff) as usize)
}

/// A slot of `T` taken at most once.
type Cell<T> = Mutex<Option<T>>;

/// Runs every result of `results` (all of them, in order) and returns the first error.
fn first_error<E>(results: impl Iterator<Item = Result<(), E>>) -> Result<(), E> {
    let mut first = Ok(());
    for r in results {
        if let (Ok(()), Err(e)) = (&first, r) {
            first = Err(e);
        }
    }
    first
}

fn take<T>(c: &Cell<T>) -> Option<T> {
    c.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl Parallelism<'_> {
    /// True when the call runs on the calling thread only.
    pub fn is_sequential(&self) -> bool {
        match self {
            Parallelism::Sequential => true,
            Parallelism::Threads(n) => (*n).min(max_threads()) <= 1,
            Parallelism::Pool(_) | Parallelism::Host(_) => false,
        }
    }

    /// Number of threads the call may use (for a host, its width hint).
    pub fn threads(&self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Threads(n) => (*n).clamp(1, max_threads()),
            Parallelism::Pool(p) => p.current_num_threads().max(1),
            Parallelism::Host(h) => h.width().max(1),
        }
    }

    /// How many items to cut `units` independent units of work into: 1 when sequential,
    /// [`ParallelFor::items`] (or every unit) for a host, else a few per thread. At least 1,
    /// at most `units` (when `units > 0`).
    pub fn items_for(&self, units: usize) -> usize {
        let n = match self {
            _ if self.is_sequential() => 1,
            Parallelism::Host(h) if h.items() > 0 => h.items(),
            Parallelism::Host(_) => units,
            _ => self.threads().saturating_mul(ITEMS_PER_THREAD),
        };
        n.clamp(1, units.max(1))
    }

    /// Rows per block where `rows` rows are cut into equal blocks for this executor and the
    /// result does not depend on the cut: `max` on one thread; on several, about `per_thread`
    /// blocks per thread, rounded up to a multiple of `multiple`, within `min..=max` (so the
    /// threads' shares of the blocks differ little, and a small cut still spreads). Used by
    /// the layer's products and the fused scan's projection.
    #[cfg(feature = "layer")]
    pub(crate) fn block_rows(
        &self,
        rows: usize,
        per_thread: usize,
        multiple: usize,
        min: usize,
        max: usize,
    ) -> usize {
        if self.is_sequential() {
            return max;
        }
        rows.div_ceil(per_thread.max(1) * self.threads())
            .next_multiple_of(multiple.max(1))
            .clamp(min, max)
    }

    /// How many items of a call cut into `items` items may run at once: the number of
    /// scratch slots a caller-provided scratch buffer must hold.
    pub fn scratch_slots(&self, items: usize) -> usize {
        match self {
            _ if self.is_sequential() || items <= 1 => 1,
            Parallelism::Host(_) => items,
            _ => self.threads().min(items),
        }
    }

    /// Calls `f(i)` once for every `i` in `0..n` on this executor. Items a host skipped run
    /// afterwards on the calling thread; repeated or out-of-range calls of a host are ignored.
    fn run_indexed(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let seq = || (0..n).for_each(f);
        if n <= 1 || self.is_sequential() {
            return seq();
        }
        match self {
            Parallelism::Sequential => seq(),
            Parallelism::Threads(t) => match library_pool((*t).min(max_threads())) {
                Some(p) => on_spin(&p, self.threads().min(n), n, f),
                None => seq(),
            },
            Parallelism::Pool(p) => on_pool(p, self.threads().min(n), n, f),
            Parallelism::Host(h) => h.parallel_for(n, f),
        }
    }

    /// Runs `f` on every item. The pools' threads take items one at a time as they become
    /// free; a host gets them in [`ParallelFor::items`] contiguous groups when it names a
    /// count. Every item runs exactly once, whatever a host does; the error returned is the
    /// one of the first failing item in order (all items run even when one fails).
    pub fn try_for_each<T, E, F>(&self, items: Vec<T>, f: F) -> Result<(), E>
    where
        T: Send,
        E: Send,
        F: Fn(T) -> Result<(), E> + Sync,
    {
        let n = items.len();
        if n <= 1 || self.is_sequential() {
            return first_error(items.into_iter().map(&f));
        }
        // One item per group, unless a host names a count: then that many contiguous groups.
        let count = match self {
            Parallelism::Host(_) => self.items_for(n),
            _ => n,
        };
        let starts = group_starts(n, count);
        let count = starts.len() - 1;
        let cells: Vec<Cell<T>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
        let err: Mutex<Option<(usize, E)>> = Mutex::new(None);
        let run = |g: usize| {
            let (Some(&a), Some(&b)) = (starts.get(g), starts.get(g + 1)) else {
                return;
            };
            for (i, cell) in cells.iter().enumerate().take(b).skip(a) {
                let Some(t) = take(cell) else {
                    continue;
                };
                if let Err(e) = f(t) {
                    let mut first = err.lock().unwrap_or_else(PoisonError::into_inner);
                    if first.as_ref().is_none_or(|(j, _)| i < *j) {
                        *first = Some((i, e));
                    }
                }
            }
        };
        self.run_indexed(count, &run);
        // Whatever a host skipped runs here.
        (0..count).for_each(run);
        match err.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Parallelism::try_for_each`] for infallible work.
    pub fn for_each<T, F>(&self, items: Vec<T>, f: F)
    where
        T: Send,
        F: Fn(T) + Sync,
    {
        let r: Result<(), std::convert::Infallible> = self.try_for_each(items, |t| {
            f(t);
            Ok(())
        });
        let Ok(()) = r;
    }

    /// `f(index, chunk)` over the `chunk`-element pieces of `data` (the last may be shorter).
    pub fn for_each_chunk<T, F>(&self, data: &mut [T], chunk: usize, f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        let chunk = chunk.max(1);
        if self.is_sequential() || data.len() <= chunk {
            for (i, c) in data.chunks_mut(chunk).enumerate() {
                f(i, c);
            }
            return;
        }
        self.for_each(data.chunks_mut(chunk).enumerate().collect(), |(i, c)| {
            f(i, c)
        });
    }

    /// [`Parallelism::try_for_each`] with a scratch buffer of `per` elements (contents
    /// unspecified) for each item: slots of `arena` when given (it must hold
    /// `scratch_slots(items.len()) * per` elements; items are not grouped then), else buffers
    /// of the per-thread pool.
    pub fn try_for_each_scratch<T, E, F>(
        &self,
        items: Vec<T>,
        per: usize,
        arena: Option<&mut [f32]>,
        f: F,
    ) -> Result<(), E>
    where
        T: Send,
        E: Send,
        F: Fn(T, &mut [f32]) -> Result<(), E> + Sync,
    {
        let Some(arena) = arena else {
            if self.is_sequential() {
                let mut s = Buf::new(per);
                return items.into_iter().try_for_each(|t| f(t, &mut s));
            }
            return self.try_for_each(items, |t| f(t, &mut Buf::new(per)));
        };
        let slots = self.scratch_slots(items.len());
        let free: Vec<&mut [f32]> = if per == 0 {
            (0..slots).map(|_| <&mut [f32]>::default()).collect()
        } else {
            arena.chunks_mut(per).take(slots).collect()
        };
        let free = Mutex::new(free);
        // Every item gets its own slot from the free list for the time it runs; should a
        // caller's pool run more items at once than it has threads, the extra ones use pool
        // buffers instead of waiting.
        self.try_for_each(items, |t| {
            let slot = free.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match slot {
                Some(s) if s.len() == per => {
                    let r = f(t, &mut *s);
                    free.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                    r
                }
                other => {
                    if let Some(s) = other {
                        free.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                    }
                    f(t, &mut Buf::new(per))
                }
            }
        })
    }
}

/// A [`ParallelFor`] that runs each round on `n` fresh scoped threads pulling indices from a
/// shared counter, with `items` items per round (0: the library's choice): a minimal host
/// loop, for tests and as an example of the trait.
#[derive(Clone, Copy, Debug)]
pub struct ScopedThreads {
    /// Threads per round.
    pub threads: usize,
    /// Items per round (0: one per unit of work).
    pub items: usize,
}

impl ParallelFor for ScopedThreads {
    fn parallel_for(&self, n: usize, item: &(dyn Fn(usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.threads.clamp(1, n) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    item(i);
                });
            }
        });
    }

    fn width(&self) -> usize {
        self.threads
    }

    fn items(&self) -> usize {
        self.items
    }
}

/// Where the groups start when `n` items are cut into `count` contiguous groups (in order,
/// sizes differing by at most one): group `g` is `starts[g]..starts[g + 1]`; `count + 1`
/// entries, the last `n`. `count` is clamped to `1..=n` (to 1 when `n` is 0).
fn group_starts(n: usize, count: usize) -> Vec<usize> {
    let count = count.clamp(1, n.max(1));
    (0..=count).map(|g| (g * n).div_ceil(count)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library pool under concurrent callers, calls from inside items and a panicking
    /// item: every item runs exactly once, the panic reaches its caller, and the pool keeps
    /// working afterwards.
    #[test]
    fn library_pool_survives_concurrency_nesting_and_panics() {
        let par = Parallelism::Threads(4);
        let count = |n: usize| {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            par.for_each((0..n).collect(), |i: usize| {
                // A call from inside an item (runs on its thread if the pool is busy).
                par.for_each((0..3).collect(), |_: usize| {});
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1)
        };
        std::thread::scope(|s| {
            let callers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..50).all(|_| count(37))))
                .collect();
            for c in callers {
                assert!(c.join().unwrap());
            }
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            par.for_each((0..64).collect(), |i: usize| {
                if i == 40 {
                    panic!("item 40");
                }
            })
        }));
        assert!(r.is_err());
        assert!(count(100));
    }

    #[test]
    fn groups_keep_order_and_balance() {
        assert_eq!(group_starts(10, 3), vec![0, 4, 7, 10]);
        assert_eq!(group_starts(0, 4), vec![0, 0]);
        assert_eq!(group_starts(2, 9), vec![0, 1, 2]);
        assert_eq!(group_starts(5, 0), vec![0, 5]);
    }

    #[test]
    fn items_and_slots_follow_the_executor() {
        assert_eq!(Parallelism::Sequential.items_for(100), 1);
        assert_eq!(Parallelism::Threads(1).items_for(100), 1);
        let t = Parallelism::Threads(2);
        if max_threads() >= 2 {
            assert_eq!(t.items_for(100), 8);
            assert_eq!(t.items_for(3), 3);
            assert_eq!(t.scratch_slots(8), 2);
        }
        assert_eq!(Parallelism::Threads(usize::MAX).threads(), max_threads());
        assert_eq!(Parallelism::Sequential.scratch_slots(8), 1);
    }

    /// Every index runs exactly once whoever shows up: all workers, some missing (their
    /// shares are taken from the back by the others), or one worker twice.
    #[test]
    fn shares_hand_out_every_index_once() {
        for (n, workers, present) in [
            (1000, 4, vec![0, 1, 2, 3]),
            (1000, 4, vec![0, 2]),
            (7, 16, vec![0, 5, 5, 15]),
            (0, 3, vec![0, 1]),
        ] {
            let shares = Shares::new(n, workers);
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            std::thread::scope(|s| {
                for &w in &present {
                    let (shares, hits) = (&shares, &hits);
                    s.spawn(move || {
                        shares.run(w, &|i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        })
                    });
                }
            });
            let counts: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            assert_eq!(
                counts,
                vec![1; n],
                "{n} items, {workers} workers, {present:?}"
            );
        }
        // Alone, a worker runs its own share first, in order, then the others' from the back.
        let shares = Shares::new(6, 3);
        let order = Mutex::new(Vec::new());
        shares.run(1, &|i| order.lock().unwrap().push(i));
        assert_eq!(order.into_inner().unwrap(), vec![2, 3, 5, 4, 1, 0]);
    }

    /// A host that skips odd items and calls item 0 twice and an index out of range.
    struct Sloppy;
    impl ParallelFor for Sloppy {
        fn parallel_for(&self, n: usize, item: &(dyn Fn(usize) + Sync)) {
            for i in (0..n).step_by(2) {
                item(i);
            }
            item(0);
            item(n);
        }
        fn width(&self) -> usize {
            4
        }
    }

    #[test]
    fn every_item_runs_once_even_with_a_sloppy_host() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let sloppy = Sloppy;
        for par in [
            Parallelism::Sequential,
            Parallelism::Threads(3),
            Parallelism::Pool(&pool),
            Parallelism::Host(&sloppy),
        ] {
            let mut v = vec![0u32; 1000];
            par.for_each_chunk(&mut v, 7, |i, c| {
                c.iter_mut().for_each(|x| *x += i as u32 + 1)
            });
            let want: Vec<u32> = (0..1000).map(|j| j / 7 + 1).collect();
            assert_eq!(v, want, "{par:?}");
            let r = par.try_for_each(
                (0..50).collect(),
                |i: i32| {
                    if i % 10 == 3 {
                        Err(i)
                    } else {
                        Ok(())
                    }
                },
            );
            assert_eq!(r, Err(3), "{par:?}");
            let mut arena = vec![0.0f32; par.scratch_slots(20) * 5];
            let hits = Mutex::new(Vec::new());
            par.try_for_each_scratch::<_, (), _>(
                (0..20).collect(),
                5,
                Some(&mut arena),
                |i: usize, s| {
                    assert_eq!(s.len(), 5);
                    s.fill(i as f32);
                    hits.lock().unwrap().push(i);
                    Ok(())
                },
            )
            .unwrap();
            let mut hits = hits.into_inner().unwrap();
            hits.sort_unstable();
            assert_eq!(hits, (0..20).collect::<Vec<_>>(), "{par:?}");
        }
    }
}
