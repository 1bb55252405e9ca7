//! A micro-benchmark of the machine's FMA throughput at a SIMD level: the denominator of the
//! roofline column of `ss2d bench` (every kernel's share of what the machine can do).

use crate::error::Error;
use crate::level::SimdLevel;

/// Independent accumulator chains: more than latency x issue width of the FMA units of the
/// targeted cores (4 cycles x 2 pipes), few enough to stay in 16 registers with the operands.
pub const CHAINS: usize = 10;

/// Floating-point operations one round of [`fma_chains`] performs at `level`: one FMA (two
/// flops) on every lane of every chain.
pub fn fma_chains_flops(level: SimdLevel) -> usize {
    2 * level.lanes() * CHAINS
}

/// Runs `iters` rounds of independent fused multiply-adds (several accumulator chains, one
/// vector register of the level's lanes each) at `level` and returns a value that depends on
/// all of them (`x` near 1 keeps it finite). Time it and divide `iters *
/// fma_chains_flops(level)` by the time for the level's FMA peak. At the baseline level of
/// x86-64 (SSE2, no FMA) each round is a multiply and an add.
///
/// Fails with [`Error::Unsupported`] when the CPU lacks the level.
pub fn fma_chains(level: SimdLevel, iters: usize, x: f32) -> Result<f32, Error> {
    level.check()?;
    let (sum, lanes) = crate::platform::dispatch!(level, peak::fma_chains(iters, x));
    debug_assert_eq!(lanes, level.lanes());
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_computes_the_same_chains() {
        let mut n = 0;
        for level in SimdLevel::available() {
            // acc_i <- acc_i * 0.5 + 0.5 three times from i: 1 + (i - 1) / 8.
            let got = fma_chains(level, 3, 0.5).unwrap();
            let want: f32 =
                (0..10).map(|i| 1.0 + (i as f32 - 1.0) / 8.0).sum::<f32>() * level.lanes() as f32;
            assert_eq!(got, want, "{level}");
            assert_eq!(fma_chains_flops(level), 20 * level.lanes());
            n += 1;
        }
        assert!(n > 0);
    }
}
