//! Random scales for tests, benchmarks and equivalence checks: every Grad Mult term present.

use crate::config::RepOptVggConfig;
use crate::scales::VggScales;

/// A seeded SplitMix64 generator: the same values on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

impl VggScales {
    /// Scales of every block of `config` drawn from `seed`: `s` and `t` uniform in `conv`, `γ`
    /// uniform in `identity`. With ranges that straddle 0, every term of the Grad Mult (`α²`
    /// everywhere, `+β²` at the centre, `+1` on identity diagonals) and both signs are present.
    pub fn random(
        config: &RepOptVggConfig,
        seed: u64,
        conv: (f32, f32),
        identity: (f32, f32),
    ) -> Self {
        let mut rng = SplitMix64(seed ^ 0xD1B5_4A32_D192_ED03);
        let mut scales = VggScales::constant(config, 1.0);
        for block in &mut scales.blocks {
            let n = block.spec.out_channels;
            let mut draw = |(lo, hi): (f32, f32)| (0..n).map(|_| rng.uniform(lo, hi)).collect();
            block.conv = draw(conv);
            block.conv_1x1 = draw(conv);
            if block.identity.is_some() {
                block.identity = Some(draw(identity));
            }
        }
        scales.source = format!("random scales (seed {seed})");
        scales
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_scales_are_seeded_and_in_range() {
        let config = RepOptVggConfig::preset("tiny").unwrap();
        let a = VggScales::random(&config, 3, (-1.0, 1.0), (0.5, 1.5));
        assert_eq!(a, VggScales::random(&config, 3, (-1.0, 1.0), (0.5, 1.5)));
        assert_ne!(a, VggScales::random(&config, 4, (-1.0, 1.0), (0.5, 1.5)));
        for block in &a.blocks {
            assert!(block.conv.iter().all(|v| (-1.0..1.0).contains(v)));
            if let Some(g) = &block.identity {
                assert!(g.iter().all(|v| (0.5..1.5).contains(v)));
            }
        }
        assert!(a.blocks.iter().any(|b| b.conv.iter().any(|v| *v < 0.0)));
    }
}
