//! How much parallelism a call may use.

use std::sync::OnceLock;

/// How a call runs: on the calling thread, on `n` threads, or in a caller's rayon pool.
#[derive(Clone, Copy, Debug, Default)]
pub enum Parallelism<'p> {
    /// Everything on the calling thread.
    #[default]
    Sequential,
    /// `n` threads (0 or 1 = sequential). Pools are built once per thread count and reused.
    Threads(usize),
    /// The caller's rayon pool.
    Pool(&'p rayon::ThreadPool),
}

const MAX_CACHED: usize = 256;

fn pool(n: usize) -> Option<&'static rayon::ThreadPool> {
    static POOLS: OnceLock<Vec<OnceLock<Option<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| (0..=MAX_CACHED).map(|_| OnceLock::new()).collect());
    pools
        .get(n.min(MAX_CACHED))?
        .get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n.min(MAX_CACHED))
                .thread_name(|i| format!("ss2d-{i}"))
                .build()
                .ok()
        })
        .as_ref()
}

impl Parallelism<'_> {
    /// True when the call runs on the calling thread only.
    pub fn is_sequential(&self) -> bool {
        matches!(self, Parallelism::Sequential | Parallelism::Threads(0 | 1))
    }

    /// Number of threads the call may use.
    pub fn threads(&self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Threads(n) => (*n).max(1),
            Parallelism::Pool(p) => p.current_num_threads().max(1),
        }
    }

    /// Runs `f` inside the pool this parallelism names (directly when sequential). If a thread
    /// pool cannot be created, `f` runs on the calling thread: the result is the same.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Parallelism::Sequential | Parallelism::Threads(0 | 1) => f(),
            Parallelism::Threads(n) => match pool(*n) {
                Some(p) => p.install(f),
                None => f(),
            },
            Parallelism::Pool(p) => p.install(f),
        }
    }
}
