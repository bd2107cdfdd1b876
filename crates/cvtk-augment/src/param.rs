//! [`Param`]: a constant, or a range sampled uniformly per image, as imgaug's
//! `(lo, hi)` tuples are.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// A number that is either fixed or drawn uniformly from `[lo, hi]` per image.
/// In JSON and TOML: `0.5` or `[0.0, 0.1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// Always this value.
    Const(f32),
    /// Uniform in `[lo, hi]`.
    Range(f32, f32),
}

impl From<f32> for Param {
    fn from(v: f32) -> Self {
        Param::Const(v)
    }
}

impl From<(f32, f32)> for Param {
    fn from((lo, hi): (f32, f32)) -> Self {
        Param::Range(lo, hi)
    }
}

impl Param {
    /// One value for one image.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> f32 {
        match *self {
            Param::Const(v) => v,
            Param::Range(lo, hi) if lo < hi => rng.random_range(lo..=hi),
            Param::Range(lo, _) => lo,
        }
    }

    /// Smallest and largest value it can take.
    pub fn bounds(&self) -> (f32, f32) {
        match *self {
            Param::Const(v) => (v, v),
            Param::Range(lo, hi) => (lo, hi),
        }
    }

    /// Checks that the values are finite, `lo <= hi`, and within `[min, max]`.
    pub(crate) fn check(&self, augmenter: &'static str, field: &'static str, min: f32, max: f32) -> Result<()> {
        let (lo, hi) = self.bounds();
        if !(lo.is_finite() && hi.is_finite()) {
            return Err(invalid(augmenter, field, format!("{lo}..{hi} is not finite")));
        }
        if lo > hi {
            return Err(invalid(augmenter, field, format!("range ({lo}, {hi}) has lo > hi; write it as ({hi}, {lo})")));
        }
        if lo < min || hi > max {
            return Err(invalid(augmenter, field, format!("({lo}, {hi}) is outside the allowed {min}..={max}")));
        }
        Ok(())
    }
}

/// Checks a probability.
pub(crate) fn check_p(augmenter: &'static str, field: &'static str, p: f32) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(augmenter, field, format!("{p} is not a probability; use a value in 0..=1")))
    }
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    p >= 1.0 || (p > 0.0 && rng.random::<f32>() < p)
}

/// A uniform integer in `lo..=hi`.
pub(crate) fn int_between(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    if lo >= hi {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}
