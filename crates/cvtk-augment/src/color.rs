//! Colour augmenters: brightness, offset, contrast, blur, noise, grayscale.
//! Each keeps the image's size and clamps values to 0..=255.

use image::RgbImage;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::param::Param;
use crate::Augmenter;

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Applies `f(value, channel)` to every subpixel, through a lookup table per channel.
fn map(mut image: RgbImage, f: impl Fn(f32, usize) -> f32) -> RgbImage {
    let mut lut = [[0u8; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, out) in table.iter_mut().enumerate() {
            *out = clamp_u8(f(v as f32, c));
        }
    }
    for px in image.chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = lut[c][usize::from(px[c])];
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
        gaussian_blur(&image, sigma)
    }
}

/// Separable Gaussian blur (radius 3 sigma, edges clamped) in fixed point.
fn gaussian_blur(image: &RgbImage, sigma: f32) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let radius = (3.0 * sigma).ceil().max(1.0) as usize;
    let raw: Vec<f32> =
        (0..=2 * radius).map(|i| (-((i as f32 - radius as f32).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = raw.iter().sum();
    // Weights in 1/65536ths, the centre adjusted so they sum to exactly 65536
    // (so a shift replaces the division, and flat areas stay flat).
    let mut kernel: Vec<u32> = raw.iter().map(|k| (k / sum * 65536.0).round() as u32).collect();
    let others: u32 = kernel.iter().enumerate().filter(|(i, _)| *i != radius).map(|(_, k)| k).sum();
    kernel[radius] = 65536 - others;
    let src: &[u8] = image;
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    // Horizontal pass into u8 (rounded), over a row padded with its edge
    // pixels so the inner loop needs no bounds logic; then vertical.
    let mut tmp = vec![0u8; w * h * 3];
    let mut padded = vec![0u8; (w + 2 * radius) * 3];
    let mut acc = vec![0u32; w * 3];
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        for (i, px) in padded.chunks_exact_mut(3).enumerate() {
            let sx = clamp(i as isize - radius as isize, w) * 3;
            px.copy_from_slice(&row[sx..sx + 3]);
        }
        acc.iter_mut().for_each(|a| *a = 0);
        for (j, k) in kernel.iter().enumerate() {
            for (a, v) in acc.iter_mut().zip(&padded[j * 3..j * 3 + w * 3]) {
                *a += u32::from(*v) * k;
            }
        }
        for (o, a) in tmp[y * w * 3..(y + 1) * w * 3].iter_mut().zip(&acc) {
            *o = ((a + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    let mut out = RgbImage::new(w as u32, h as u32);
    let dst: &mut [u8] = &mut out;
    let stride = w * 3;
    for y in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        for (j, k) in kernel.iter().enumerate() {
            let sy = clamp(y as isize + j as isize - radius as isize, h);
            let row = &tmp[sy * stride..(sy + 1) * stride];
            for (a, v) in acc.iter_mut().zip(row) {
                *a += u32::from(*v) * k;
            }
        }
        for (d, a) in dst[y * stride..(y + 1) * stride].iter_mut().zip(&acc) {
            *d = ((a + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    out
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
