//! Augmenters that combine others: `Sequential`, `SomeOf`, `OneOf`, `Sometimes`.

use image::RgbImage;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::param::{chance, check_p, int_between};
use crate::{Augmenter, Spec};

fn run_all(children: &[Spec], order: &[usize], mut image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    for &i in order {
        if let Some(c) = children.get(i) {
            image = c.augment(image, rng);
        }
    }
    image
}

fn validate_children(children: &[Spec]) -> Result<()> {
    children.iter().try_for_each(Spec::validate)
}

/// Applies its children in order, or in a random order per image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequential {
    /// The augmenters.
    pub children: Vec<Spec>,
    /// Shuffle the order per image. By default, false.
    #[serde(default)]
    pub random_order: bool,
}

impl Sequential {
    /// Applies `children` in order (imgaug `Sequential([...])`).
    pub fn new(children: Vec<Spec>) -> Result<Self> {
        let a = Sequential { children, random_order: false };
        a.validate()?;
        Ok(a)
    }

    /// Shuffles the order per image.
    pub fn random_order(mut self, yes: bool) -> Self {
        self.random_order = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_children(&self.children)
    }
}

impl Augmenter for Sequential {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let mut order: Vec<usize> = (0..self.children.len()).collect();
        if self.random_order {
            order.shuffle(rng);
        }
        run_all(&self.children, &order, image, rng)
    }
}

/// Applies between `n.0` and `n.1` of its children, chosen per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SomeOf {
    /// How many children, (fewest, most).
    pub n: (usize, usize),
    /// The augmenters.
    pub children: Vec<Spec>,
    /// Apply the chosen ones in random order; otherwise in list order. By default, false.
    #[serde(default)]
    pub random_order: bool,
}

impl SomeOf {
    /// Applies between `lo` and `hi` of `children` per image.
    pub fn new(n: (usize, usize), children: Vec<Spec>) -> Result<Self> {
        let a = SomeOf { n, children, random_order: false };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let (lo, hi) = self.n;
        if lo > hi {
            return Err(invalid("SomeOf", "n", format!("({lo}, {hi}) has lo > hi")));
        }
        if hi > self.children.len() {
            return Err(invalid("SomeOf", "n", format!("at most {hi} of {} children", self.children.len())));
        }
        validate_children(&self.children)
    }
}

impl Augmenter for SomeOf {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let k = int_between(rng, self.n.0, self.n.1);
        let mut chosen: Vec<usize> = (0..self.children.len()).collect();
        chosen.shuffle(rng);
        chosen.truncate(k);
        if !self.random_order {
            chosen.sort_unstable();
        }
        run_all(&self.children, &chosen, image, rng)
    }
}

/// Applies exactly one of its children, chosen per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneOf {
    /// The augmenters.
    pub children: Vec<Spec>,
}

impl OneOf {
    /// Applies one of `children` (at least one) per image.
    pub fn new(children: Vec<Spec>) -> Result<Self> {
        let a = OneOf { children };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.children.is_empty() {
            return Err(invalid("OneOf", "children", "needs at least one augmenter"));
        }
        validate_children(&self.children)
    }
}

impl Augmenter for OneOf {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let i = int_between(rng, 0, self.children.len().saturating_sub(1));
        run_all(&self.children, &[i], image, rng)
    }
}

/// With probability `p` applies `then`, otherwise `otherwise` (imgaug
/// `Sometimes(p, then_list, else_list)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sometimes {
    /// Probability of `then`.
    pub p: f32,
    /// Applied with probability `p`.
    pub then: Vec<Spec>,
    /// Applied otherwise. By default, nothing.
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<Spec>,
}

impl Sometimes {
    /// Applies `then` with probability `p`.
    pub fn new(p: f32, then: Vec<Spec>) -> Result<Self> {
        let a = Sometimes { p, then, otherwise: Vec::new() };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_p("Sometimes", "p", self.p)?;
        validate_children(&self.then)?;
        validate_children(&self.otherwise)
    }
}

impl Augmenter for Sometimes {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let list = if chance(rng, self.p) { &self.then } else { &self.otherwise };
        let order: Vec<usize> = (0..list.len()).collect();
        run_all(list, &order, image, rng)
    }
}
