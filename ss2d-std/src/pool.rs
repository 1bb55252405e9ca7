//! Per-thread reuse of large temporary buffers (the layer's forward, the fused scan): a fresh allocation of a few MB is an
//! `mmap` whose first touch page-faults every 4 KiB, which costs as much as a product at the
//! stage-1 sizes (measured). Buffers come back with stale contents; every user overwrites all
//! of them.
use std::cell::RefCell;

/// Buffers kept per thread. The calling thread of a threaded call runs items too (see
/// `exec`), so its pool sees the items' small scratch buffers beside the layer's large
/// stage buffers: room for both.
const KEEP: usize = 12;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` elements (contents unspecified).
pub(crate) fn take(len: usize) -> Vec<f32> {
    let found = POOL
        .try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let fits = p
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            let i = fits.or_else(|| {
                p.iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.capacity())
                    .map(|(i, _)| i)
            })?;
            Some(p.swap_remove(i))
        })
        .ok()
        .flatten();
    let mut v = found.unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// Returns a buffer for reuse by later forwards on this thread; dropped when the pool is full.
/// (Replacing the pool's smallest buffer instead measured 1.4x slower for the unfused scan
/// composition, whose many large temporaries then kept displacing each other.)
pub(crate) fn give(v: Vec<f32>) {
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < KEEP {
                p.push(v);
            }
        }
    });
}

/// A buffer from [`take`] that goes back to this thread's pool when dropped (contents
/// unspecified: users overwrite what they read).
pub(crate) struct Buf(Vec<f32>);

impl Buf {
    /// A buffer of `len` elements.
    pub(crate) fn new(len: usize) -> Self {
        Buf(take(len))
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_keeps_its_buffers_and_take_fits_best() {
        // A fresh thread: its own, empty pool.
        std::thread::spawn(|| {
            let big = vec![0.0f32; 1000];
            let at = big.as_ptr();
            give(big);
            for _ in 1..KEEP {
                give(vec![0.0; 4]);
            }
            assert_eq!(POOL.with(|p| p.borrow().len()), KEEP);
            // Full: another buffer is dropped, the kept ones stay.
            give(vec![0.0; 5000]);
            assert_eq!(POOL.with(|p| p.borrow().len()), KEEP);
            assert!(POOL.with(|p| p.borrow().iter().all(|b| b.capacity() <= 1000)));
            // The best fit comes back: the large buffer for a large request, not a small one
            // grown.
            let back = take(900);
            assert_eq!(back.as_ptr(), at);
            assert_eq!(back.len(), 900);
        })
        .join()
        .unwrap();
    }
}
