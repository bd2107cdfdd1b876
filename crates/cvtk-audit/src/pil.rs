//! The few Pillow operations the image-quality checks are defined by, to the
//! bit: `convert("L")`, `resize` with its default bicubic filter (8-bit fixed
//! point, horizontal pass then vertical), `filter(FIND_EDGES)`,
//! `histogram()` and `entropy()`. CleanVision computes its statistics with
//! them, so its thresholds mean something only on the same numbers.
//!
//! An 8-bit image here is a [`Planes`]: its bands (channels) side by side,
//! as Pillow stores them (`L`: 1 band, `LA`: 2, `RGB`: 3, `RGBA`: 4).

/// Bits of the fixed-point resampling coefficients (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 22;

/// An 8-bit image, band-interleaved, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Bands per pixel.
    pub bands: usize,
    /// `width * height * bands` bytes.
    pub data: Vec<u8>,
}

impl Planes {
    /// `convert("L")`: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16` for
    /// colour (alpha ignored), the first band of gray with alpha.
    pub fn to_gray(&self) -> Planes {
        let data = match self.bands {
            0 => vec![0; self.width * self.height],
            1 => self.data.clone(),
            2 => self.data.chunks_exact(2).map(|p| p[0]).collect(),
            _ => self
                .data
                .chunks_exact(self.bands)
                .map(|p| {
                    let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000;
                    (l >> 16) as u8
                })
                .collect(),
        };
        Planes { width: self.width, height: self.height, bands: 1, data }
    }

    /// `histogram()`: 256 counts per band, band after band.
    pub fn histogram(&self) -> Vec<u64> {
        let mut h = vec![0u64; 256 * self.bands];
        for pixel in self.data.chunks_exact(self.bands.max(1)) {
            for (b, &v) in pixel.iter().enumerate() {
                h[b * 256 + usize::from(v)] += 1;
            }
        }
        h
    }

    /// `entropy()`: of the histogram of all bands together, in bits.
    pub fn entropy(&self) -> f64 {
        let h = self.histogram();
        let sum = h.iter().sum::<u64>() as f64;
        if sum == 0.0 {
            return 0.0;
        }
        let mut e = 0.0;
        for &count in &h {
            let p = count as f64 / sum;
            if p != 0.0 {
                e += p * p.ln() * std::f64::consts::LOG2_E;
            }
        }
        -e
    }

    /// `resize((width, height))` with Pillow's default filter (bicubic);
    /// with alpha, on premultiplied values, as Pillow does.
    pub fn resize(&self, width: usize, height: usize) -> Planes {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        if [width, height, self.width, self.height, self.bands].contains(&0) {
            // Nothing to sample from, or no room: a blank image of the size.
            return Planes { width, height, bands: self.bands, data: vec![0; width * height * self.bands] };
        }
        let alpha = matches!(self.bands, 2 | 4);
        let mut img = if alpha { self.premultiplied() } else { self.clone() };
        if width != img.width {
            img = img.resample_rows(width);
        }
        if height != img.height {
            img = img.transposed().resample_rows(height).transposed();
        }
        if alpha {
            img.unpremultiply();
        }
        img
    }

    /// `filter(ImageFilter.FIND_EDGES)` on a 1-band image: `8 c - (the 8
    /// neighbours)`, clamped to 0..255, inside; the border rows and columns
    /// (and an image under 3 pixels either way) copied unchanged.
    pub fn find_edges(&self) -> Planes {
        let (w, h) = (self.width, self.height);
        let mut out = self.data.clone();
        if self.bands != 1 || w < 3 || h < 3 {
            return Planes { data: out, ..self.clone() };
        }
        let px = |x: usize, y: usize| i32::from(self.data[y * w + x]);
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let around: i32 = (y - 1..=y + 1)
                    .flat_map(|yy| (x - 1..=x + 1).map(move |xx| (xx, yy)))
                    .filter(|&(xx, yy)| (xx, yy) != (x, y))
                    .map(|(xx, yy)| px(xx, yy))
                    .sum();
                out[y * w + x] = (8 * px(x, y) - around).clamp(0, 255) as u8;
            }
        }
        Planes { data: out, ..self.clone() }
    }

    fn transposed(&self) -> Planes {
        let (w, h, b) = (self.width, self.height, self.bands);
        let mut data = vec![0u8; self.data.len()];
        for y in 0..h {
            for x in 0..w {
                let (from, to) = ((y * w + x) * b, (x * h + y) * b);
                data[to..to + b].copy_from_slice(&self.data[from..from + b]);
            }
        }
        Planes { width: h, height: w, bands: b, data }
    }

    /// Every row resampled to `width` pixels (Pillow's `ImagingResampleHorizontal_8bpc`).
    fn resample_rows(&self, width: usize) -> Planes {
        let (bounds, coeffs) = bicubic_coefficients(self.width, width);
        let b = self.bands;
        let mut data = Vec::with_capacity(width * self.height * b);
        for row in self.data.chunks_exact(self.width * b) {
            for ((first, count), k) in bounds.iter().zip(&coeffs) {
                for band in 0..b {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for (x, &kx) in k[..*count].iter().enumerate() {
                        ss += i64::from(row[(first + x) * b + band]) * i64::from(kx);
                    }
                    data.push((ss >> PRECISION_BITS).clamp(0, 255) as u8);
                }
            }
        }
        Planes { width, height: self.height, bands: b, data }
    }

    /// Colour bands times alpha / 255, Pillow's rounding (`RGBA` to `RGBa`).
    fn premultiplied(&self) -> Planes {
        let b = self.bands;
        let mut data = self.data.clone();
        for p in data.chunks_exact_mut(b) {
            let a = u32::from(p[b - 1]);
            for c in &mut p[..b - 1] {
                let t = u32::from(*c) * a + 128;
                *c = (((t >> 8) + t) >> 8) as u8;
            }
        }
        Planes { data, ..self.clone() }
    }

    /// The inverse (`RGBa` to `RGBA`): `255 c / a`, clamped, where `a` is neither 0 nor 255.
    fn unpremultiply(&mut self) {
        let b = self.bands;
        for p in self.data.chunks_exact_mut(b) {
            let a = u32::from(p[b - 1]);
            if a != 0 && a != 255 {
                for c in &mut p[..b - 1] {
                    *c = (255 * u32::from(*c) / a).min(255) as u8;
                }
            }
        }
    }
}

/// Pillow's bicubic kernel (`a = -0.5`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the bicubic
/// filter: per output pixel, the first input pixel and the count, and the
/// fixed-point weights.
#[allow(clippy::type_complexity)]
fn bicubic_coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<Vec<i32>>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let inv = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut coeffs = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) truncates toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..count).map(|x| bicubic(((x + xmin) as f64 - center + 0.5) * inv)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|v| *v /= ww);
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        coeffs
            .push(k.iter().map(|&v| if v < 0.0 { (-0.5 + v * one) as i32 } else { (0.5 + v * one) as i32 }).collect());
        bounds.push((xmin, count));
    }
    (bounds, coeffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, data: Vec<u8>) -> Planes {
        Planes { width, height, bands: 1, data }
    }

    #[test]
    fn gray_conversion_and_entropy_as_pillow() {
        let rgb = Planes { width: 2, height: 1, bands: 3, data: vec![255, 0, 0, 10, 200, 30] };
        // Pillow: Image.new("RGB", (1, 1), (255, 0, 0)).convert("L") is 76; (10, 200, 30) is 124.
        assert_eq!(rgb.to_gray().data, vec![76, 124]);
        // Two equally common values: 1 bit; one value: 0 bits.
        assert_eq!(gray(2, 1, vec![0, 255]).entropy(), 1.0);
        assert_eq!(gray(2, 1, vec![7, 7]).entropy(), 0.0);
    }

    #[test]
    fn edges_copy_the_border_and_clamp_inside() {
        let mut data = vec![10u8; 25];
        data[12] = 50; // the centre of a 5x5
        let e = gray(5, 5, data).find_edges();
        assert_eq!(e.data[12], 255); // 8*50 - 8*10 = 320, clamped
        assert_eq!(e.data[7], 0); // next to the peak: 80 - (50 + 7*10) < 0
        assert_eq!(e.data[0], 10); // border copied
        assert_eq!(gray(2, 2, vec![1, 2, 3, 4]).find_edges().data, vec![1, 2, 3, 4]);
        // No pixels, no bands: no panic.
        let empty = Planes { width: 0, height: 0, bands: 0, data: vec![] };
        assert_eq!(empty.resize(4, 2).data.len(), 0);
        assert_eq!(empty.entropy(), 0.0);
        assert_eq!(crate::quality::measure(&gray(0, 3, vec![])).entropy, 0.0);
    }

    #[test]
    fn a_flat_image_resizes_to_the_same_value_and_weights_sum_to_one() {
        let img = gray(100, 37, vec![200; 3700]).resize(64, 23);
        assert_eq!((img.width, img.height), (64, 23));
        assert!(img.data.iter().all(|&v| v == 200));
        for (in_size, out_size) in [(100, 64), (37, 23), (10, 32), (640, 64)] {
            let (_, coeffs) = bicubic_coefficients(in_size, out_size);
            for k in coeffs {
                let sum: i64 = k.iter().map(|&v| i64::from(v)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{sum}");
            }
        }
    }
}
