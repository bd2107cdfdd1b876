//! [`ImageLoader`]: the one place where images become network inputs, shared
//! by training, scoring, serving and benchmarks. Decode (with EXIF orientation
//! and a size guard), optionally transform (augmentation), resize, normalise,
//! and batch into [`ImageBatch`]es (`[N, C, H, W]` f32 values), in parallel.
//! An inference engine takes the batch's values as they are (cvtk-model turns
//! them into a libtorch tensor, or hands them to onnxruntime).

use std::path::Path;
use std::sync::Arc;

use fast_image_resize as fr;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::decode::{self, DEFAULT_MAX_PIXELS};
use crate::{ClassificationDataset, Error, Result};

/// How an image is brought to the model's input size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ResizeMode {
    /// Resize to exactly width x height, ignoring the aspect ratio.
    Squash,
    /// Keep the aspect ratio: take the centred region with the target's aspect
    /// ratio and `crop_fraction` of the shorter side, and resize it. With
    /// `crop_fraction` 0.875 this is torchvision's `Resize(256)` +
    /// `CenterCrop(224)`; with 1.0, shorter side to the target and centre crop.
    CenterCrop {
        /// Fraction of the shorter side kept, in (0, 1].
        crop_fraction: f32,
    },
}

/// Per-channel normalisation in pixel units (0..255): `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean (R, G, B), in 0..255 units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B), in 0..255 units.
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet normalisation (mean 0.485, 0.456, 0.406 and std
    /// 0.229, 0.224, 0.225 on 0..1 values).
    pub const IMAGENET: Normalization = Normalization { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
    /// EfficientNet-Lite's input scaling, `(x - 127) / 128`.
    pub const EFFICIENTNET_LITE: Normalization = Normalization { mean: [127.0; 3], std: [128.0; 3] };
    /// Plain 0..1 scaling, `x / 255`.
    pub const UNIT: Normalization = Normalization { mean: [0.0; 3], std: [255.0; 3] };
}

/// Colour channels of the tensors the loader makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// Three channels, R, G, B.
    Rgb,
    /// One channel, luminance as Pillow's `convert("L")` computes it.
    Gray,
}

impl ColorMode {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb => 3,
            ColorMode::Gray => 1,
        }
    }
}

/// What an [`ImageLoader`] produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Output width in pixels. By default, 224.
    pub width: u32,
    /// Output height in pixels. By default, 224.
    pub height: u32,
    /// How to reach that size. By default, [`ResizeMode::Squash`].
    pub resize: ResizeMode,
    /// Normalisation. By default, [`Normalization::IMAGENET`].
    pub normalization: Normalization,
    /// Channels. By default, [`ColorMode::Rgb`].
    pub color: ColorMode,
    /// Largest accepted image in pixels. By default, Pillow's limit.
    pub max_pixels: u64,
    /// Decoding threads; 0 means one per core. By default, 0.
    pub threads: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            width: 224,
            height: 224,
            resize: ResizeMode::Squash,
            normalization: Normalization::IMAGENET,
            color: ColorMode::Rgb,
            max_pixels: DEFAULT_MAX_PIXELS,
            threads: 0,
        }
    }
}

impl LoaderConfig {
    /// A square output of `size` pixels with the other defaults.
    pub fn square(size: u32) -> Self {
        LoaderConfig { width: size, height: size, ..Default::default() }
    }

    /// The part of a `(width, height)` source image that becomes the
    /// model's input, as `(left, top, width, height)` in source pixels: all of
    /// it when squashing, the centred crop otherwise. What a map over the
    /// input covers of the picture ([`ImageLoader::resize`] crops the same).
    pub fn source_box(&self, (sw, sh): (u32, u32)) -> (f64, f64, f64, f64) {
        match self.resize {
            ResizeMode::Squash => (0.0, 0.0, f64::from(sw), f64::from(sh)),
            ResizeMode::CenterCrop { crop_fraction } => {
                // The largest centred box with the target's aspect ratio, scaled.
                let target_ratio = f64::from(self.width) / f64::from(self.height);
                let (mut cw, mut ch) = (f64::from(sw), f64::from(sw) / target_ratio);
                if ch > f64::from(sh) {
                    ch = f64::from(sh);
                    cw = ch * target_ratio;
                }
                let f = f64::from(crop_fraction);
                let (cw, ch) = (cw * f, ch * f);
                ((f64::from(sw) - cw) / 2.0, (f64::from(sh) - ch) / 2.0, cw, ch)
            }
        }
    }

    /// Checks every field; the error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return bad("width/height", format!("{}x{} is not between 1 and 8192 pixels", self.width, self.height));
        }
        if let ResizeMode::CenterCrop { crop_fraction } = self.resize {
            if !(crop_fraction > 0.0 && crop_fraction <= 1.0) {
                return bad("resize.crop_fraction", format!("{crop_fraction} is not in (0, 1]"));
            }
        }
        if self.normalization.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.normalization.mean.iter().any(|m| !m.is_finite())
        {
            return bad("normalization", format!("{:?} has a zero or non-finite value", self.normalization));
        }
        if self.max_pixels == 0 {
            return bad("max_pixels", "must be positive".into());
        }
        Ok(())
    }
}

/// An image-to-image transform applied before resizing (augmentation). The seed
/// is derived from the loader's seed, the epoch and the image id, so results do
/// not depend on thread scheduling.
pub trait ImageTransform: Send + Sync {
    /// Transforms one image.
    fn apply(&self, image: RgbImage, seed: u64) -> RgbImage;
}

/// Normalised images ready for a network: `[N, C, H, W]` f32 values,
/// contiguous in that (NCHW) order.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl ImageBatch {
    /// A batch of `shape` (`[N, C, H, W]`) holding `data`; the lengths must agree.
    pub fn new(data: Vec<f32>, shape: [usize; 4]) -> Result<Self> {
        let want = shape.iter().product::<usize>();
        if data.len() != want {
            return Err(Error::InvalidConfig {
                field: "images",
                reason: format!("{} values cannot be a [N, C, H, W] = {shape:?} batch ({want} values)", data.len()),
            });
        }
        Ok(ImageBatch { data, shape })
    }

    /// `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The values, NCHW.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, NCHW, without copying.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The batches one after the other; their `[C, H, W]` must agree.
    pub fn concat(batches: &[&ImageBatch]) -> Result<ImageBatch> {
        let Some(first) = batches.first() else {
            return Err(Error::InvalidConfig { field: "images", reason: "no batch to concatenate".into() });
        };
        let item = &first.shape[1..];
        if let Some(b) = batches.iter().find(|b| &b.shape[1..] != item) {
            return Err(Error::InvalidConfig {
                field: "images",
                reason: format!("cannot concatenate a {:?} batch with a {:?} one", b.shape, first.shape),
            });
        }
        let n = batches.iter().map(|b| b.shape[0]).sum();
        let mut data = Vec::with_capacity(batches.iter().map(|b| b.data.len()).sum());
        for b in batches {
            data.extend_from_slice(&b.data);
        }
        Ok(ImageBatch { data, shape: [n, first.shape[1], first.shape[2], first.shape[3]] })
    }
}

/// One batch of a dataset: its images, their label indices and their ids.
#[derive(Debug)]
pub struct Batch {
    /// The images.
    pub images: ImageBatch,
    /// Label indices, in batch order.
    pub labels: Vec<usize>,
    /// Image ids, in batch order.
    pub ids: Vec<u64>,
}

/// Decodes, resizes and normalises images into tensors, in parallel.
pub struct ImageLoader {
    config: LoaderConfig,
    pool: rayon::ThreadPool,
    transform: Option<Arc<dyn ImageTransform>>,
}

impl std::fmt::Debug for ImageLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLoader")
            .field("config", &self.config)
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

/// Mixes a seed, an epoch and an image id into one per-image seed (SplitMix64).
pub fn mix_seed(seed: u64, epoch: u64, id: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ImageLoader {
    /// A loader for `config` (validated).
    pub fn new(config: LoaderConfig) -> Result<Self> {
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("cvtk-loader-{i}"))
            .build()
            .map_err(|e| Error::InvalidConfig { field: "threads", reason: e.to_string() })?;
        Ok(ImageLoader { config, pool, transform: None })
    }

    /// Adds a transform applied to each image before resizing, when a seed is
    /// given (training); scoring passes none.
    pub fn with_transform(mut self, transform: Arc<dyn ImageTransform>) -> Self {
        self.transform = Some(transform);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Resizes an RGB image to the configured size and mode.
    pub fn resize(&self, src: &RgbImage) -> Result<RgbImage> {
        let (w, h) = (self.config.width, self.config.height);
        let (sw, sh) = src.dimensions();
        let crop = match self.config.resize {
            ResizeMode::Squash => None,
            ResizeMode::CenterCrop { .. } => Some(self.config.source_box((sw, sh))),
        };
        if crop.is_none() && (sw, sh) == (w, h) {
            return Ok(src.clone());
        }
        let mut dst = RgbImage::new(w, h);
        let mut options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
        if let Some((l, t, cw, ch)) = crop {
            options = options.crop(l, t, cw, ch);
        }
        fr::Resizer::new()
            .resize(src, &mut dst, &options)
            .map_err(|e| Error::Decode { path: "<in memory>".into(), reason: format!("resize failed: {e}") })?;
        Ok(dst)
    }

    fn prepare(&self, img: RgbImage, seed: Option<u64>) -> Result<RgbImage> {
        let img = match (&self.transform, seed) {
            (Some(t), Some(s)) => t.apply(img, s),
            _ => img,
        };
        self.resize(&img)
    }

    /// Decodes one file and resizes it (no transform).
    pub fn load_image(&self, path: &Path) -> Result<RgbImage> {
        self.prepare(decode::decode_rgb(path, self.config.max_pixels)?, None)
    }

    /// Decodes encoded image bytes (`name` appears in errors) and resizes them.
    pub fn load_image_bytes(&self, bytes: &[u8], name: &str) -> Result<RgbImage> {
        self.prepare(decode::decode_rgb_bytes(bytes, Path::new(name), self.config.max_pixels)?, None)
    }

    /// Writes one image's normalised values into `out` (C*H*W floats, CHW order).
    fn normalise_into(&self, img: &RgbImage, out: &mut [f32]) {
        let n = &self.config.normalization;
        let plane = (self.config.width * self.config.height) as usize;
        match self.config.color {
            ColorMode::Rgb => {
                let (r, rest) = out.split_at_mut(plane);
                let (g, b) = rest.split_at_mut(plane);
                for (i, px) in img.pixels().enumerate() {
                    r[i] = (f32::from(px[0]) - n.mean[0]) / n.std[0];
                    g[i] = (f32::from(px[1]) - n.mean[1]) / n.std[1];
                    b[i] = (f32::from(px[2]) - n.mean[2]) / n.std[2];
                }
            }
            ColorMode::Gray => {
                for (i, px) in img.pixels().enumerate() {
                    // Pillow's ITU-R 601-2 luma transform, rounded as Pillow does.
                    let l =
                        (u32::from(px[0]) * 19595 + u32::from(px[1]) * 38470 + u32::from(px[2]) * 7471 + 0x8000) >> 16;
                    out[i] = (l as f32 - n.mean[0]) / n.std[0];
                }
            }
        }
    }

    /// Normalises already-resized images into one batch.
    pub fn to_batch(&self, images: &[RgbImage]) -> Result<ImageBatch> {
        let (w, h) = (self.config.width, self.config.height);
        if let Some(bad) = images.iter().find(|i| i.dimensions() != (w, h)) {
            let (bw, bh) = bad.dimensions();
            return Err(Error::InvalidConfig {
                field: "images",
                reason: format!("an image is {bw}x{bh}, expected {w}x{h}; resize it first"),
            });
        }
        let c = self.config.color.channels();
        let per = c * (w * h) as usize;
        let mut data = vec![0f32; per * images.len()];
        self.pool.install(|| {
            data.par_chunks_mut(per).zip(images.par_iter()).for_each(|(out, img)| self.normalise_into(img, out));
        });
        ImageBatch::new(data, [images.len(), c, h as usize, w as usize])
    }

    /// Loads files into one batch. The first file that fails gives an error
    /// naming it.
    pub fn load_batch<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<ImageBatch> {
        let images =
            self.pool.install(|| paths.par_iter().map(|p| self.load_image(p.as_ref())).collect::<Result<Vec<_>>>())?;
        self.to_batch(&images)
    }

    /// Batches over `dataset`'s images. With `shuffle = Some(seed)` the order is
    /// shuffled per epoch and the transform (if any) is applied with per-image
    /// seeds; with `None`, dataset order and no transform (scoring).
    pub fn batches<'a>(
        &'a self,
        dataset: &'a ClassificationDataset,
        batch_size: usize,
        shuffle: Option<u64>,
        epoch: u64,
    ) -> Batches<'a> {
        let mut order: Vec<usize> = (0..dataset.len()).collect();
        if let Some(seed) = shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(seed, epoch, u64::MAX)));
        }
        Batches { loader: self, dataset, order, batch_size: batch_size.max(1), next: 0, seed: shuffle, epoch }
    }
}

/// Iterator of [`Batch`]es; see [`ImageLoader::batches`].
pub struct Batches<'a> {
    loader: &'a ImageLoader,
    dataset: &'a ClassificationDataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    seed: Option<u64>,
    epoch: u64,
}

impl Batches<'_> {
    /// Number of batches in all.
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let idx = &self.order[self.next..end];
        self.next = end;
        let images = self.dataset.images();
        let (loader, seed, epoch) = (self.loader, self.seed, self.epoch);
        let result = loader.pool.install(|| {
            idx.par_iter()
                .map(|&i| {
                    let info = &images[i];
                    let img = decode::decode_rgb(&info.path, loader.config.max_pixels)?;
                    loader.prepare(img, seed.map(|s| mix_seed(s, epoch, info.id)))
                })
                .collect::<Result<Vec<_>>>()
        });
        Some(result.and_then(|imgs| {
            Ok(Batch {
                images: loader.to_batch(&imgs)?,
                labels: idx.iter().map(|&i| images[i].label()).collect(),
                ids: idx.iter().map(|&i| images[i].id).collect(),
            })
        }))
    }
}
