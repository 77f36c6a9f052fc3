//! Test helpers the workspace's crates share (a dev-dependency only, never in a product binary).
//!
//! - [`fuzz_config`]: how many generated cases each property test runs: 10 000 by default, as CI
//!   runs them; `FLOWERCAM_FUZZ_CASES` for more.
//! - [`Damage`]: what can happen to a file's bytes (bytes flipped, a cut), for the readers of
//!   bundles, logs, checkpoints and cache entries.
//! - [`webp`]: WebP files built chunk by chunk, as a hostile one would declare its sizes.

pub mod webp;

use proptest::prelude::*;
use proptest::sample::Index;

pub fn fuzz_config() -> ProptestConfig {
    ProptestConfig::with_cases(std::env::var("FLOWERCAM_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000))
}

/// Up to three bytes changed (xor with a non-zero value) and maybe a cut.
#[derive(Debug, Clone)]
pub struct Damage {
    flips: Vec<(Index, u8)>,
    cut: Option<Index>,
}

pub fn damage() -> impl Strategy<Value = Damage> {
    (proptest::collection::vec((any::<Index>(), 1u8..), 0..4), proptest::option::of(any::<Index>()))
        .prop_map(|(flips, cut)| Damage { flips, cut })
}

impl Damage {
    /// The damaged bytes, and the offset of the first damage (`good.len()` when none).
    pub fn apply(&self, good: &[u8]) -> (Vec<u8>, usize) {
        let mut bytes = good.to_vec();
        let mut first = good.len();
        if bytes.is_empty() {
            return (bytes, first);
        }
        for (at, xor) in &self.flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            first = first.min(i);
        }
        if let Some(cut) = &self.cut {
            let cut = cut.index(good.len());
            bytes.truncate(cut);
            first = first.min(cut);
        }
        (bytes, first)
    }
}
