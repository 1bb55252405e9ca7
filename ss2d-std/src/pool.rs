//! Per-thread reuse of large temporary buffers (the layer's forward, the fused scan): a fresh allocation of a few MB is an
//! `mmap` whose first touch page-faults every 4 KiB, which costs as much as a product at the
//! stage-1 sizes (measured). Buffers come back with stale contents; every user overwrites all
//! of them.
use std::cell::RefCell;

use wide::f32x16;

/// Buffers kept per thread. The calling thread of a threaded call runs items too (see
/// `exec`), so its pool sees the items' small scratch buffers beside the layer's large
/// stage buffers: room for both.
const KEEP: usize = 12;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32x16>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `f32` that starts on a 64-byte boundary (a vector of 16-lane blocks viewed as
/// floats): every full vector the kernels load or store at a multiple of 16 elements is then
/// one cache line. A plain `Vec<f32>` of this size comes from `mmap` 16 bytes past a page
/// boundary, so that every 64-byte access straddles two lines (the channel-last conv measured
/// 10-15% slower on such buffers).
#[derive(Default)]
pub(crate) struct Aligned {
    blocks: Vec<f32x16>,
    len: usize,
}

impl Aligned {
    /// Makes the buffer exactly `len` long, keeping the elements it keeps (new ones are 0).
    pub(crate) fn fit(&mut self, len: usize) {
        let kept = self.len.min(len);
        self.blocks.resize(len.div_ceil(16), f32x16::ZERO);
        self.len = len;
        self[kept..].fill(0.0);
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.blocks)[..self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.blocks)[..self.len]
    }
}

/// A buffer of `len` elements (contents unspecified), 64-byte aligned.
pub(crate) fn take(len: usize) -> Aligned {
    let found = POOL
        .try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let fits = p
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity().saturating_mul(16) >= len)
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
    let blocks = found.unwrap_or_default();
    let len_was = blocks.len().saturating_mul(16);
    let mut v = Aligned {
        blocks,
        len: len_was,
    };
    v.fit(len);
    v
}

/// Returns a buffer for reuse by later forwards on this thread; dropped when the pool is full.
/// (Replacing the pool's smallest buffer instead measured 1.4x slower for the unfused scan
/// composition, whose many large temporaries then kept displacing each other.)
pub(crate) fn give(v: Aligned) {
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < KEEP {
                p.push(v.blocks);
            }
        }
    });
}

/// A buffer from [`take`] that goes back to this thread's pool when dropped (contents
/// unspecified: users overwrite what they read).
pub(crate) struct Buf(Aligned);

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
            // Buffers made outside the pool.
            let fresh = |len: usize| Aligned {
                blocks: vec![f32x16::ZERO; len.div_ceil(16)],
                len,
            };
            let big = fresh(1000);
            let at = big.as_ptr();
            give(big);
            for _ in 1..KEEP {
                give(fresh(4));
            }
            assert_eq!(POOL.with(|p| p.borrow().len()), KEEP);
            // Full: another buffer is dropped, the kept ones stay.
            give(fresh(5000));
            assert_eq!(POOL.with(|p| p.borrow().len()), KEEP);
            assert!(POOL.with(|p| p.borrow().iter().all(|b| b.capacity() * 16 <= 1008)));
            // The best fit comes back: the large buffer for a large request, not a small one
            // grown.
            let back = take(900);
            assert_eq!(back.as_ptr(), at);
            assert_eq!(back.len(), 900);
            assert_eq!(back.as_ptr() as usize % 64, 0, "64-byte aligned");
        })
        .join()
        .unwrap();
    }
}
