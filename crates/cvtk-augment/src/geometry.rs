//! Geometric augmenters: flips, crops, padding, affine warps, resizing.

use fast_image_resize as fr;
use image::{Rgb, RgbImage};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::param::{chance, check_p, Param};
use crate::Augmenter;

/// Mirrors left-right with probability `p` (imgaug `Fliplr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fliplr {
    /// Probability of flipping.
    pub p: f32,
}

impl Fliplr {
    /// Flips with probability `p` (0..=1).
    pub fn new(p: f32) -> Result<Self> {
        let a = Fliplr { p };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_p("Fliplr", "p", self.p)
    }
}

impl Augmenter for Fliplr {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        if chance(rng, self.p) {
            flip_rows(image)
        } else {
            image
        }
    }
}

/// Mirrors top-bottom with probability `p` (imgaug `Flipud`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flipud {
    /// Probability of flipping.
    pub p: f32,
}

impl Flipud {
    /// Flips with probability `p` (0..=1).
    pub fn new(p: f32) -> Result<Self> {
        let a = Flipud { p };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_p("Flipud", "p", self.p)
    }
}

impl Augmenter for Flipud {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        if chance(rng, self.p) {
            flip_columns(image)
        } else {
            image
        }
    }
}

/// Mirrors each row in place.
fn flip_rows(mut image: RgbImage) -> RgbImage {
    let w = image.width() as usize;
    if w < 2 {
        return image;
    }
    for row in image.chunks_exact_mut(w * 3) {
        let (left, right) = row.split_at_mut(w / 2 * 3);
        let right = &mut right[(w % 2) * 3..];
        for (a, b) in left.chunks_exact_mut(3).zip(right.chunks_exact_mut(3).rev()) {
            a.swap_with_slice(b);
        }
    }
    image
}

/// Swaps rows top to bottom in place.
fn flip_columns(mut image: RgbImage) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let stride = w * 3;
    let buf: &mut [u8] = &mut image;
    for y in 0..h / 2 {
        let (top, bottom) = buf.split_at_mut((h - 1 - y) * stride);
        top[y * stride..(y + 1) * stride].swap_with_slice(&mut bottom[..stride]);
    }
    image
}

fn default_true() -> bool {
    true
}

/// Per-side amounts: a fraction of the side (`percent`) or pixels (`px`).
fn side_amounts(percent: Option<Param>, px: Option<Param>, w: u32, h: u32, rng: &mut ChaCha8Rng) -> [u32; 4] {
    // top, right, bottom, left, each sampled on its own, as imgaug does.
    let mut out = [0u32; 4];
    for (i, side) in out.iter_mut().enumerate() {
        let extent = if i % 2 == 0 { h } else { w };
        *side = match (percent, px) {
            (Some(p), _) => (p.sample(rng) * extent as f32).round().max(0.0) as u32,
            (None, Some(p)) => p.sample(rng).round().max(0.0) as u32,
            (None, None) => 0,
        };
    }
    out
}

fn check_amounts(augmenter: &'static str, percent: Option<Param>, px: Option<Param>) -> Result<()> {
    match (percent, px) {
        (Some(p), None) => p.check(augmenter, "percent", 0.0, if augmenter == "Crop" { 0.49 } else { 10.0 }),
        (None, Some(p)) => p.check(augmenter, "px", 0.0, 100_000.0),
        (Some(_), Some(_)) => Err(invalid(augmenter, "percent", "give percent or px, not both")),
        (None, None) => Err(invalid(augmenter, "percent", "give percent (a fraction of each side) or px")),
    }
}

/// Crops each side by an amount sampled per side: a fraction of the side
/// (`percent`, 0 to 0.49) or pixels (`px`). With `keep_size` (the default, as
/// in imgaug) the result is resized back to the input size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Fraction of each side to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Param>,
    /// Pixels to remove from each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub px: Option<Param>,
    /// Resize back to the input size. By default, true.
    #[serde(default = "default_true")]
    pub keep_size: bool,
}

impl Crop {
    /// Crops a fraction in `percent` of each side (imgaug `Crop(percent=(lo, hi))`).
    pub fn percent(percent: impl Into<Param>) -> Result<Self> {
        let a = Crop { percent: Some(percent.into()), px: None, keep_size: true };
        a.validate()?;
        Ok(a)
    }

    /// Crops `px` pixels from each side (imgaug `Crop(px=...)`).
    pub fn px(px: impl Into<Param>) -> Result<Self> {
        let a = Crop { percent: None, px: Some(px.into()), keep_size: true };
        a.validate()?;
        Ok(a)
    }

    /// Sets whether the result is resized back to the input size.
    pub fn keep_size(mut self, yes: bool) -> Self {
        self.keep_size = yes;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_amounts("Crop", self.percent, self.px)
    }
}

impl Augmenter for Crop {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let (w, h) = image.dimensions();
        let [t, r, b, l] = side_amounts(self.percent, self.px, w, h, rng);
        // Never crop to nothing: keep at least one pixel each way.
        let l = l.min(w.saturating_sub(1));
        let r = r.min(w.saturating_sub(1 + l));
        let t = t.min(h.saturating_sub(1));
        let b = b.min(h.saturating_sub(1 + t));
        let (cw, ch) = (w - l - r, h - t - b);
        if (cw, ch) == (w, h) {
            return image;
        }
        if self.keep_size {
            // Crop and resize back in one pass of the SIMD resizer.
            resize_region(&image, (l, t, cw, ch), w, h)
        } else {
            image::imageops::crop_imm(&image, l, t, cw, ch).to_image()
        }
    }
}

/// How pixels outside the image are filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillMode {
    /// A constant colour (`cval`). The default.
    #[default]
    Constant,
    /// The nearest edge pixel.
    Edge,
    /// Mirrored at the edge.
    Reflect,
}

/// Pads each side by an amount sampled per side, filled by `mode`. With
/// `keep_size` (the default) the result is resized back to the input size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad {
    /// Fraction of each side to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Param>,
    /// Pixels to add to each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub px: Option<Param>,
    /// How new pixels are filled. By default, constant.
    #[serde(default)]
    pub mode: FillMode,
    /// The constant fill value. By default, 0 (black).
    #[serde(default)]
    pub cval: u8,
    /// Resize back to the input size. By default, true.
    #[serde(default = "default_true")]
    pub keep_size: bool,
}

impl Pad {
    /// Pads a fraction in `percent` of each side.
    pub fn percent(percent: impl Into<Param>) -> Result<Self> {
        let a = Pad { percent: Some(percent.into()), px: None, mode: FillMode::Constant, cval: 0, keep_size: true };
        a.validate()?;
        Ok(a)
    }

    /// Pads `px` pixels on each side.
    pub fn px(px: impl Into<Param>) -> Result<Self> {
        let a = Pad { percent: None, px: Some(px.into()), mode: FillMode::Constant, cval: 0, keep_size: true };
        a.validate()?;
        Ok(a)
    }

    /// Sets whether the result is resized back to the input size.
    pub fn keep_size(mut self, yes: bool) -> Self {
        self.keep_size = yes;
        self
    }

    /// Sets the fill mode.
    pub fn mode(mut self, mode: FillMode) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_amounts("Pad", self.percent, self.px)
    }
}

impl Augmenter for Pad {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let (w, h) = image.dimensions();
        let [t, r, b, l] = side_amounts(self.percent, self.px, w, h, rng);
        let (nw, nh) = (w + l + r, h + t + b);
        let fill = Rgb([self.cval; 3]);
        let padded = RgbImage::from_fn(nw, nh, |x, y| {
            sample_nearest(&image, x as i64 - i64::from(l), y as i64 - i64::from(t), self.mode, fill)
        });
        if self.keep_size {
            resize(&padded, w, h)
        } else {
            padded
        }
    }
}

/// Maps a coordinate outside `0..n` back inside by `mode` (None: use the fill).
fn wrap(i: i64, n: i64, mode: FillMode) -> Option<i64> {
    if (0..n).contains(&i) {
        return Some(i);
    }
    match mode {
        FillMode::Constant => None,
        FillMode::Edge => Some(i.clamp(0, n - 1)),
        FillMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let period = 2 * n;
            let m = i.rem_euclid(period);
            Some(if m < n { m } else { period - 1 - m })
        }
    }
}

fn sample_nearest(img: &RgbImage, x: i64, y: i64, mode: FillMode, fill: Rgb<u8>) -> Rgb<u8> {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    match (wrap(x, w, mode), wrap(y, h, mode)) {
        (Some(x), Some(y)) => *img.get_pixel(x as u32, y as u32),
        _ => fill,
    }
}

/// Scales, translates, rotates and shears around the image centre (imgaug
/// `Affine`). Angles in degrees, positive rotation clockwise on screen;
/// `translate_percent` is a fraction of the width (x) and height (y), each
/// sampled on its own. Output keeps the input size; uncovered pixels are
/// filled by `mode`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affine {
    /// Zoom factor (1 = unchanged). By default, 1.
    #[serde(default = "one")]
    pub scale: Param,
    /// Shift as a fraction of the size. By default, 0.
    #[serde(default = "zero")]
    pub translate_percent: Param,
    /// Rotation in degrees. By default, 0.
    #[serde(default = "zero")]
    pub rotate: Param,
    /// Shear in degrees (along x). By default, 0.
    #[serde(default = "zero")]
    pub shear: Param,
    /// How uncovered pixels are filled. By default, constant.
    #[serde(default)]
    pub mode: FillMode,
    /// The constant fill value. By default, 0.
    #[serde(default)]
    pub cval: u8,
}

fn one() -> Param {
    Param::Const(1.0)
}

fn zero() -> Param {
    Param::Const(0.0)
}

impl Default for Affine {
    fn default() -> Self {
        Affine {
            scale: one(),
            translate_percent: zero(),
            rotate: zero(),
            shear: zero(),
            mode: FillMode::Constant,
            cval: 0,
        }
    }
}

impl Affine {
    /// An identity transform to adjust with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the zoom factor (0.01..=100).
    pub fn scale(mut self, p: impl Into<Param>) -> Result<Self> {
        self.scale = p.into();
        self.validate().map(|()| self)
    }

    /// Sets the shift, a fraction of the size (-1..=1).
    pub fn translate_percent(mut self, p: impl Into<Param>) -> Result<Self> {
        self.translate_percent = p.into();
        self.validate().map(|()| self)
    }

    /// Sets the rotation in degrees (-360..=360).
    pub fn rotate(mut self, p: impl Into<Param>) -> Result<Self> {
        self.rotate = p.into();
        self.validate().map(|()| self)
    }

    /// Sets the shear in degrees (-89..=89).
    pub fn shear(mut self, p: impl Into<Param>) -> Result<Self> {
        self.shear = p.into();
        self.validate().map(|()| self)
    }

    /// Sets the fill mode.
    pub fn mode(mut self, mode: FillMode) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.scale.check("Affine", "scale", 0.01, 100.0)?;
        self.translate_percent.check("Affine", "translate_percent", -1.0, 1.0)?;
        self.rotate.check("Affine", "rotate", -360.0, 360.0)?;
        self.shear.check("Affine", "shear", -89.0, 89.0)
    }
}

impl Augmenter for Affine {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let s = f64::from(self.scale.sample(rng));
        let tx = f64::from(self.translate_percent.sample(rng)) * f64::from(image.width());
        let ty = f64::from(self.translate_percent.sample(rng)) * f64::from(image.height());
        let r = f64::from(self.rotate.sample(rng)).to_radians();
        let sh = f64::from(self.shear.sample(rng)).to_radians();
        if s == 1.0 && tx == 0.0 && ty == 0.0 && r == 0.0 && sh == 0.0 {
            return image;
        }
        // Forward map around the centre c: p' = R * Sh * S * (p - c) + c + t.
        let (sin, cos) = r.sin_cos();
        let k = sh.tan();
        // R * Sh * S, with Sh = [[1, k], [0, 1]].
        let a = [[cos * s, (cos * k - sin) * s], [sin * s, (sin * k + cos) * s]];
        warp(&image, a, (tx, ty), self.mode, Rgb([self.cval; 3]))
    }
}

/// Applies the forward linear map `a` (around the centre) plus translation `t`
/// by inverse mapping with bilinear interpolation.
fn warp(image: &RgbImage, a: [[f64; 2]; 2], t: (f64, f64), mode: FillMode, fill: Rgb<u8>) -> RgbImage {
    let (w, h) = image.dimensions();
    let (cx, cy) = ((f64::from(w) - 1.0) / 2.0, (f64::from(h) - 1.0) / 2.0);
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let inv = [[a[1][1] / det, -a[0][1] / det], [-a[1][0] / det, a[0][0] / det]];
    // Source positions in 16.16 fixed point: exact for quarter turns (whose
    // matrix entries round to 0 and +-1) and cheap per pixel.
    let fixed = |v: f64| (v * 65536.0).round() as i64;
    let (step_x, step_y) = (fixed(inv[0][0]), fixed(inv[1][0]));
    let (max_x, max_y) = ((i64::from(w) - 1) << 16, (i64::from(h) - 1) << 16);
    let src: &[u8] = image;
    let stride = w as usize * 3;
    let mut out = RgbImage::new(w, h);
    for (y, row) in out.chunks_exact_mut(stride).enumerate() {
        let dy = y as f64 - cy - t.1;
        let dx0 = -cx - t.0;
        let mut sx = fixed(inv[0][0] * dx0 + inv[0][1] * dy + cx);
        let mut sy = fixed(inv[1][0] * dx0 + inv[1][1] * dy + cy);
        for px in row.chunks_exact_mut(3) {
            if sx >= 0 && sy >= 0 && sx < max_x && sy < max_y {
                // Inside: all four neighbours exist; 8-bit weights.
                let (x0, y0) = ((sx >> 16) as usize, (sy >> 16) as usize);
                let (fx, fy) = (((sx >> 8) & 255) as u32, ((sy >> 8) & 255) as u32);
                let i = y0 * stride + x0 * 3;
                let (a, b) = (&src[i..i + 6], &src[i + stride..i + stride + 6]);
                for k in 0..3 {
                    let top = u32::from(a[k]) * (256 - fx) + u32::from(a[k + 3]) * fx;
                    let bottom = u32::from(b[k]) * (256 - fx) + u32::from(b[k + 3]) * fx;
                    px[k] = ((top * (256 - fy) + bottom * fy + (1 << 15)) >> 16) as u8;
                }
            } else {
                let (x, y) = (sx as f64 / 65536.0, sy as f64 / 65536.0);
                px.copy_from_slice(&bilinear(image, x, y, mode, fill).0);
            }
            sx += step_x;
            sy += step_y;
        }
    }
    out
}

fn bilinear(img: &RgbImage, x: f64, y: f64, mode: FillMode, fill: Rgb<u8>) -> Rgb<u8> {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    if fx == 0.0 && fy == 0.0 {
        return sample_nearest(img, x0, y0, mode, fill);
    }
    let p = |dx: i64, dy: i64| sample_nearest(img, x0 + dx, y0 + dy, mode, fill);
    let (p00, p10, p01, p11) = (p(0, 0), p(1, 0), p(0, 1), p(1, 1));
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = f64::from(p00[c]) * (1.0 - fx) + f64::from(p10[c]) * fx;
        let bottom = f64::from(p01[c]) * (1.0 - fx) + f64::from(p11[c]) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

/// Rotates by `degrees` around the centre (imgaug `Rotate`, an `Affine`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Rotation in degrees, positive clockwise on screen.
    pub degrees: Param,
    /// How uncovered pixels are filled. By default, constant.
    #[serde(default)]
    pub mode: FillMode,
    /// The constant fill value. By default, 0.
    #[serde(default)]
    pub cval: u8,
}

impl Rotate {
    /// Rotates by `degrees` (-360..=360).
    pub fn new(degrees: impl Into<Param>) -> Result<Self> {
        let a = Rotate { degrees: degrees.into(), mode: FillMode::Constant, cval: 0 };
        a.validate()?;
        Ok(a)
    }

    fn affine(&self) -> Affine {
        Affine { rotate: self.degrees, mode: self.mode, cval: self.cval, ..Affine::default() }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.affine().validate().map_err(|_| invalid("Rotate", "degrees", "use degrees in -360..=360"))
    }
}

impl Augmenter for Rotate {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        self.affine().augment(image, rng)
    }
}

/// Resizes to a fixed size, or by a factor sampled per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Target (width, height).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<(u32, u32)>,
    /// Factor on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Param>,
}

impl Resize {
    /// Resizes to `width` x `height`.
    pub fn to(width: u32, height: u32) -> Result<Self> {
        let a = Resize { size: Some((width, height)), scale: None };
        a.validate()?;
        Ok(a)
    }

    /// Resizes by a factor (0.01..=10) sampled per image.
    pub fn by(scale: impl Into<Param>) -> Result<Self> {
        let a = Resize { size: None, scale: Some(scale.into()) };
        a.validate()?;
        Ok(a)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match (self.size, self.scale) {
            (Some((w, h)), None) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => Ok(()),
            (Some((w, h)), None) => Err(invalid("Resize", "size", format!("{w}x{h}: sides must be in 1..=16384"))),
            (None, Some(s)) => s.check("Resize", "scale", 0.01, 10.0),
            _ => Err(invalid("Resize", "size", "give size (width, height) or scale, not both or neither")),
        }
    }
}

impl Augmenter for Resize {
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let (w, h) = match (self.size, self.scale) {
            (Some(size), _) => size,
            (None, Some(s)) => {
                let f = s.sample(rng);
                (
                    (image.width() as f32 * f).round().max(1.0) as u32,
                    (image.height() as f32 * f).round().max(1.0) as u32,
                )
            }
            (None, None) => return image,
        };
        resize(&image, w, h)
    }
}

/// Bilinear resize with fast_image_resize (SIMD).
pub(crate) fn resize(image: &RgbImage, w: u32, h: u32) -> RgbImage {
    if image.dimensions() == (w, h) {
        return image.clone();
    }
    resize_region(image, (0, 0, image.width(), image.height()), w, h)
}

/// Resizes the region (left, top, width, height) of `image` to `w` x `h`.
fn resize_region(image: &RgbImage, (l, t, cw, ch): (u32, u32, u32, u32), w: u32, h: u32) -> RgbImage {
    let mut dst = RgbImage::new(w, h);
    let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear)).crop(
        f64::from(l),
        f64::from(t),
        f64::from(cw),
        f64::from(ch),
    );
    match fr::Resizer::new().resize(image, &mut dst, &options) {
        Ok(()) => dst,
        // Only fails on unsupported pixel layouts, which RgbImage is not.
        Err(_) => {
            let region = image::imageops::crop_imm(image, l, t, cw, ch).to_image();
            image::imageops::resize(&region, w, h, image::imageops::FilterType::Triangle)
        }
    }
}
