//! Colour augmenters: brightness, offset, contrast, blur, noise, grayscale.
//! Each keeps the image's size and clamps values to 0..=255.

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::param::Param;
use crate::Augmenter;

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Applies `f(value, channel)` to every subpixel.
fn map(mut image: RgbImage, f: impl Fn(f32, usize) -> f32) -> RgbImage {
    for px in image.pixels_mut() {
        for c in 0..3 {
            px[c] = clamp_u8(f(f32::from(px[c]), c));
        }
    }
    image
}

/// One value per channel (or the same for all three).
fn per_channel(p: &Param, per_channel: bool, rng: &mut ChaCha8Rng) -> [f32; 3] {
    if per_channel {
        [p.sample(rng), p.sample(rng), p.sample(rng)]
    } else {
        [p.sample(rng); 3]
    }
}

/// Multiplies pixel values (brightness; imgaug `Multiply`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiply {
    /// The factor (0..=10).
    pub mul: Param,
    /// Sample a factor per channel. By default, false.
    #[serde(default)]
    pub per_channel: bool,
}

impl Multiply {
    /// Multiplies by `mul` (0..=10).
    pub fn new(mul: impl Into<Param>) -> Result<Self> {
        let a = Multiply { mul: mul.into(), per_channel: false };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.mul.check("Multiply", "mul", 0.0, 10.0)
    }
}

impl Augmenter for Multiply {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let m = per_channel(&self.mul, self.per_channel, rng);
        if m == [1.0; 3] {
            return image;
        }
        map(image, |v, c| v * m[c])
    }
}

/// Adds a value to pixel values (imgaug `Add`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Add {
    /// The value (-255..=255).
    pub value: Param,
    /// Sample a value per channel. By default, false.
    #[serde(default)]
    pub per_channel: bool,
}

impl Add {
    /// Adds `value` (-255..=255).
    pub fn new(value: impl Into<Param>) -> Result<Self> {
        let a = Add { value: value.into(), per_channel: false };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.value.check("Add", "value", -255.0, 255.0)
    }
}

impl Augmenter for Add {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let a = per_channel(&self.value, self.per_channel, rng);
        if a == [0.0; 3] {
            return image;
        }
        map(image, |v, c| v + a[c])
    }
}

/// Scales the distance of each value from mid-gray 128 (imgaug `LinearContrast`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearContrast {
    /// The factor (0..=10; 1 = unchanged).
    pub alpha: Param,
}

impl LinearContrast {
    /// Contrast factor `alpha` (0..=10).
    pub fn new(alpha: impl Into<Param>) -> Result<Self> {
        let a = LinearContrast { alpha: alpha.into() };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.alpha.check("LinearContrast", "alpha", 0.0, 10.0)
    }
}

impl Augmenter for LinearContrast {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let a = self.alpha.sample(rng);
        if a == 1.0 {
            return image;
        }
        map(image, |v, _| 128.0 + a * (v - 128.0))
    }
}

/// Gaussian blur with standard deviation `sigma` in pixels (imgaug `GaussianBlur`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianBlur {
    /// Standard deviation (0..=50; 0 = unchanged).
    pub sigma: Param,
}

impl GaussianBlur {
    /// Blurs with `sigma` (0..=50).
    pub fn new(sigma: impl Into<Param>) -> Result<Self> {
        let a = GaussianBlur { sigma: sigma.into() };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.sigma.check("GaussianBlur", "sigma", 0.0, 50.0)
    }
}

impl Augmenter for GaussianBlur {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let sigma = self.sigma.sample(rng);
        // Below this, a 3-tap kernel changes nothing after rounding (imgaug's cut-off too).
        if sigma < 0.05 {
            return image;
        }
        image::imageops::blur(&image, sigma)
    }
}

/// Adds Gaussian noise of standard deviation `scale` (in 0..255 units;
/// imgaug `AdditiveGaussianNoise`), independently per pixel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditiveGaussianNoise {
    /// Standard deviation (0..=255).
    pub scale: Param,
    /// Independent noise per channel; otherwise one value per pixel. By default, false.
    #[serde(default)]
    pub per_channel: bool,
}

impl AdditiveGaussianNoise {
    /// Noise of standard deviation `scale` (0..=255).
    pub fn new(scale: impl Into<Param>) -> Result<Self> {
        let a = AdditiveGaussianNoise { scale: scale.into(), per_channel: false };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.scale.check("AdditiveGaussianNoise", "scale", 0.0, 255.0)
    }
}

impl Augmenter for AdditiveGaussianNoise {
    fn augment(&self, mut image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let s = self.scale.sample(rng);
        let Ok(normal) = Normal::new(0.0f32, s) else { return image };
        if s == 0.0 {
            return image;
        }
        for px in image.pixels_mut() {
            let shared = normal.sample(rng);
            for c in 0..3 {
                let n = if self.per_channel { normal.sample(rng) } else { shared };
                px[c] = clamp_u8(f32::from(px[c]) + n);
            }
        }
        image
    }
}

/// Blends towards the grayscale image by `alpha` (imgaug `Grayscale`; 1 = fully gray).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grayscale {
    /// Blend factor (0..=1).
    pub alpha: Param,
}

impl Grayscale {
    /// Blends towards gray by `alpha` (0..=1).
    pub fn new(alpha: impl Into<Param>) -> Result<Self> {
        let a = Grayscale { alpha: alpha.into() };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.alpha.check("Grayscale", "alpha", 0.0, 1.0)
    }
}

impl Augmenter for Grayscale {
    fn augment(&self, mut image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let a = self.alpha.sample(rng);
        if a == 0.0 {
            return image;
        }
        for px in image.pixels_mut() {
            let l = 0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2]);
            for c in 0..3 {
                px[c] = clamp_u8(f32::from(px[c]) * (1.0 - a) + l * a);
            }
        }
        image
    }
}

/// A uniform integer in `lo..=hi`.
pub(crate) fn int_between(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    if lo >= hi {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}
