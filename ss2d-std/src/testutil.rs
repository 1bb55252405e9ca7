//! Helpers of the unit tests.

/// `n` deterministic values in `[-1, 1)` (a multiplicative hash of the index, `seed` mixed in).
pub(crate) fn fill(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}
