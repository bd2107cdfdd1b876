//! Why a model predicted what it did: where in an image the evidence for a
//! label was.
//!
//! Every network cvtk has for images bigger than MNIST's (the ResNets,
//! EfficientNet-Lite) ends in global average pooling and a linear head, and
//! the SVM is a linear head on the same pooled features. So a label's score is
//! the mean, over the cells of the last feature map, of the head applied to
//! each cell, plus the label's bias: that grid is the label's **class
//! activation map** (CAM; Zhou et al., "Learning Deep Features for
//! Discriminative Localization", CVPR 2016), exact, and nearly free on either
//! engine ([`Scorer::class_maps`]: libtorch, or the ONNX graph's optional
//! [`crate::onnx::CLASS_MAPS`] output).
//!
//! **Grad-CAM** (Selvaraju et al., ICCV 2017) weighs the same feature map's
//! channels by the mean gradient of the label's score, keeps the positive
//! part, and works for any head: [`Scorer::grad_cam`], on libtorch. For
//! cvtk's linear heads it is the positive part of CAM over the number of
//! cells, as theory says (a test checks it, and one checks it against
//! Captum's `LayerGradCam`).
//!
//! [`explain_files`] explains images on disk, one result per image;
//! [`Heatmap::overlay`] draws a map over the image it explains, and
//! [`Heatmap::png`] the map alone. Every view of a map in cvtk (the command,
//! the evaluation report, the annotation page, the service's `/explain`)
//! draws it with these, so they agree.

use std::path::{Path, PathBuf};

use cvtk_dataset::{ImageBatch, ImageLoader, LoaderConfig};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::scorer::Scorer;
use crate::{Error, Result};

/// How a map is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Class activation map: the head on each cell of the last feature map
    /// (in score units: its mean plus the label's bias is the score).
    #[default]
    Cam,
    /// Grad-CAM on the last feature map: the positive part of the channels
    /// weighted by the mean gradient of the label's score (libtorch only).
    GradCam,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cam" => Ok(Method::Cam),
            "grad-cam" | "gradcam" => Ok(Method::GradCam),
            other => {
                Err(Error::InvalidConfig { field: "method", reason: format!("'{other}' is not one of cam, grad-cam") })
            }
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Cam => "cam",
            Method::GradCam => "grad-cam",
        })
    }
}

/// A grid of values over an image's cells, row by row (`height` rows of
/// `width`): where the evidence for a label was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` values, row by row.
    pub values: Vec<f32>,
}

/// One image's class activation maps, one per label, and its raw scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMaps {
    /// The raw scores (of the scorer's [`Scorer::score_kind`]), one per label.
    pub scores: Vec<f32>,
    /// Rows of each map.
    pub height: usize,
    /// Columns of each map.
    pub width: usize,
    /// `labels * height * width` values: label by label, each row by row.
    pub values: Vec<f32>,
}

impl ClassMaps {
    /// Splits a batch's `[N, labels, h, w]` maps and `[N, labels]` scores
    /// into one value per image.
    pub(crate) fn split(scores: Vec<f32>, maps: Vec<f32>, [n, k, h, w]: [usize; 4]) -> Result<Vec<ClassMaps>> {
        if scores.len() != n * k || maps.len() != n * k * h * w {
            return Err(Error::InvalidInput(format!(
                "class maps of {} values and scores of {} do not fit [{n}, {k}, {h}, {w}]",
                maps.len(),
                scores.len()
            )));
        }
        Ok(scores
            .chunks(k.max(1))
            .zip(maps.chunks((k * h * w).max(1)))
            .map(|(s, m)| ClassMaps { scores: s.to_vec(), height: h, width: w, values: m.to_vec() })
            .collect())
    }

    /// The map of label `label` (its index), None past the last label.
    pub fn map(&self, label: usize) -> Option<Heatmap> {
        let cells = self.height * self.width;
        let values = self.values.get(label * cells..(label + 1) * cells)?.to_vec();
        Some(Heatmap { height: self.height, width: self.width, values })
    }
}

/// Why one image got its prediction: the map of one label.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The label the map is of: the predicted one unless another was asked for.
    pub label: String,
    /// Its calibrated probability.
    pub probability: f32,
    /// The predicted label.
    pub predicted: String,
    /// The predicted label's probability.
    pub predicted_probability: f32,
    /// How the map was made.
    pub method: Method,
    /// The map, in the units [`Method`] says.
    pub map: Heatmap,
}

/// The index of label `name` in `scorer`'s labels; an error naming the
/// labels it has otherwise.
pub fn label_index(scorer: &dyn Scorer, name: &str) -> Result<usize> {
    scorer.labels().iter().position(|l| l == name).ok_or_else(|| {
        Error::InvalidInput(format!("the model has no label '{name}' (its labels: {})", scorer.labels().join(", ")))
    })
}

/// Explains each image of a loader's batch: the map of label `target` (an
/// index; None: each image's predicted label), made by `method`.
pub fn explain_batch(
    scorer: &dyn Scorer,
    images: &ImageBatch,
    target: Option<usize>,
    method: Method,
) -> Result<Vec<Explanation>> {
    if let Some(t) = target.filter(|&t| t >= scorer.labels().len()) {
        return Err(Error::InvalidInput(format!("label index {t} is past the model's {}", scorer.labels().len())));
    }
    let (scores, maps): (Vec<Vec<f32>>, Vec<Option<Heatmap>>) = match method {
        Method::Cam => {
            let all = scorer.class_maps(images)?;
            all.into_iter()
                .map(|m| {
                    let best =
                        target.unwrap_or_else(|| cvtk_core::first_max(&scorer.score_kind().probabilities(&m.scores)));
                    (m.scores.clone(), m.map(best))
                })
                .unzip()
        }
        Method::GradCam => {
            let scores = scorer.score_images(images)?;
            let targets: Vec<usize> = scores
                .iter()
                .map(|s| target.unwrap_or_else(|| cvtk_core::first_max(&scorer.score_kind().probabilities(s))))
                .collect();
            let maps = scorer.grad_cam(images, &targets)?;
            (scores, maps.into_iter().map(Some).collect())
        }
    };
    scores
        .into_iter()
        .zip(maps)
        .map(|(raw, map)| {
            let prediction = scorer.prediction(raw);
            let best = cvtk_core::first_max(&prediction.probabilities);
            let t = target.unwrap_or(best);
            let map = map.ok_or_else(|| Error::InvalidInput(format!("no map for label index {t}")))?;
            Ok(Explanation {
                label: scorer.labels().get(t).cloned().unwrap_or_default(),
                probability: prediction.probabilities.get(t).copied().unwrap_or(0.0),
                predicted: prediction.label,
                predicted_probability: prediction.probability,
                method,
                map,
            })
        })
        .collect()
}

/// Images explained at once by [`explain_files`].
const CHUNK: usize = 16;

/// Explains image files, one result per file in order: an image that does
/// not decode is that image's error, and the others are still explained.
/// `label`: the label to map (None: each image's predicted one); a label the
/// model lacks is an error before any image is read.
pub fn explain_files(
    scorer: &dyn Scorer,
    paths: &[PathBuf],
    label: Option<&str>,
    method: Method,
) -> Result<Vec<(PathBuf, Result<Explanation>)>> {
    let target = label.map(|l| label_index(scorer, l)).transpose()?;
    let loader = ImageLoader::new(scorer.loader_config())?;
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(CHUNK) {
        let loaded: Vec<(PathBuf, Result<RgbImage>)> =
            chunk.iter().map(|p| (p.clone(), loader.load_image(p).map_err(Error::from))).collect();
        let good: Vec<RgbImage> = loaded.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
        // A model that cannot explain (no feature map) fails every image
        // alike: each gets the error, as an image that does not decode does.
        let mut explained = match good.is_empty() {
            true => Ok(Vec::new()),
            false => {
                loader.to_batch(&good).map_err(Error::from).and_then(|b| explain_batch(scorer, &b, target, method))
            }
        }
        .map(Vec::into_iter)
        .map_err(|e| e.to_string());
        for (path, image) in loaded {
            let result = image.and_then(|_| match &mut explained {
                Ok(it) => it.next().ok_or_else(|| Error::InvalidInput("no map".into())),
                Err(e) => Err(Error::InvalidInput(e.clone())),
            });
            out.push((path, result));
        }
    }
    Ok(out)
}

impl Heatmap {
    /// The largest value and its cell `(row, column)`, the first of equals.
    pub fn argmax(&self) -> (f32, usize, usize) {
        let i = cvtk_core::first_max(&self.values);
        (self.values.get(i).copied().unwrap_or(0.0), i / self.width.max(1), i % self.width.max(1))
    }

    /// What is drawn: the positive part of the map over its largest value,
    /// in 0..=1 (all zero when nothing is positive: no evidence for the label
    /// anywhere). Grad-CAM's map and CAM's give the same picture.
    pub fn shown(&self) -> Vec<f32> {
        let max = self.values.iter().copied().fold(0f32, f32::max);
        self.values.iter().map(|&v| if max > 0.0 && v > 0.0 { (v / max).min(1.0) } else { 0.0 }).collect()
    }

    /// The shown value at a point `(u, v)` of the map in cells (cell centres
    /// at `i + 0.5`), bilinear between cell centres, clamped at the edges.
    fn sample(shown: &[f32], (h, w): (usize, usize), u: f64, v: f64) -> f32 {
        let cx = (u - 0.5).clamp(0.0, (w - 1) as f64);
        let cy = (v - 0.5).clamp(0.0, (h - 1) as f64);
        let (x0, y0) = (cx.floor() as usize, cy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = ((cx - x0 as f64) as f32, (cy - y0 as f64) as f32);
        let at = |x: usize, y: usize| shown.get(y * w + x).copied().unwrap_or(0.0);
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// The map over `image` (the picture as the user has it): the map covers
    /// the part of the image the model saw (`loader`'s crop, or all of it),
    /// in the turbo colour scale, nearly clear where there is no evidence and
    /// more opaque where it is stronger;
    /// outside that part the image is dimmed. A colour scale (strongest at the
    /// top) is added on the right.
    pub fn overlay(&self, image: &RgbImage, loader: &LoaderConfig) -> RgbImage {
        let (iw, ih) = image.dimensions();
        let (left, top, cw, ch) = loader.source_box((iw, ih));
        let shown = self.shown();
        let bar = (iw / 24).clamp(6, 24);
        let gap = (bar / 2).max(2);
        let mut out = RgbImage::from_pixel(iw + gap + bar, ih, image::Rgb([255, 255, 255]));
        let dims = (self.height.max(1), self.width.max(1));
        for (x, y, px) in image.enumerate_pixels() {
            let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let inside = fx >= left && fx <= left + cw && fy >= top && fy <= top + ch;
            let p = match inside && !shown.is_empty() {
                true => {
                    let t =
                        Self::sample(&shown, dims, (fx - left) / cw * dims.1 as f64, (fy - top) / ch * dims.0 as f64);
                    blend(px.0, colour(t), 0.15 + 0.55 * t)
                }
                false => blend(px.0, [0, 0, 0], 0.5),
            };
            out.put_pixel(x, y, image::Rgb(p));
        }
        for y in 0..ih {
            let c = colour(1.0 - (f64::from(y) + 0.5) as f32 / ih as f32);
            for x in iw + gap..iw + gap + bar {
                out.put_pixel(x, y, image::Rgb(c));
            }
        }
        out
    }

    /// The map alone, `side` pixels on its longer side, in the turbo colour
    /// scale, as PNG bytes.
    pub fn png(&self, side: u32) -> Result<Vec<u8>> {
        let (h, w) = (self.height.max(1), self.width.max(1));
        let scale = f64::from(side.max(1)) / h.max(w) as f64;
        let (pw, ph) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
        let shown = self.shown();
        let img = RgbImage::from_fn(pw, ph, |x, y| {
            let u = (f64::from(x) + 0.5) / f64::from(pw) * w as f64;
            let v = (f64::from(y) + 0.5) / f64::from(ph) * h as f64;
            image::Rgb(colour(if shown.is_empty() { 0.0 } else { Self::sample(&shown, (h, w), u, v) }))
        });
        encode_png(&img)
    }
}

/// For each of `paths`, a JPEG thumbnail (fitting in `side` pixels) of the
/// image with the class activation map of its predicted label over it, as
/// [`Heatmap::overlay`] draws it: the previews of the evaluation report.
/// None for an image that cannot be read; an error when the scorer has no
/// maps at all.
pub fn overlay_thumbnails(scorer: &dyn Scorer, paths: &[PathBuf], side: u32) -> Result<Vec<Option<Vec<u8>>>> {
    let loader = scorer.loader_config();
    let explained = explain_files(scorer, paths, None, Method::Cam)?;
    // One failure shared by every image (no feature map) is the scorer's.
    if let Some((_, Err(e))) = explained.first().filter(|_| explained.iter().all(|(_, r)| r.is_err())) {
        return Err(Error::InvalidInput(e.to_string()));
    }
    Ok(explained
        .into_iter()
        .map(|(path, e)| {
            let e = e.ok()?;
            let picture = cvtk_dataset::decode::decode_rgb(&path, loader.max_pixels).ok()?;
            let small = cvtk_dataset::decode::fit_in(&picture, side);
            cvtk_dataset::decode::encode_jpeg(&e.map.overlay(&small, &loader), 82)
        })
        .collect())
}

/// The turbo colour of `t` in 0..=1.
fn colour(t: f32) -> [u8; 3] {
    let c = colorous::TURBO.eval_continuous(f64::from(t.clamp(0.0, 1.0)));
    [c.r, c.g, c.b]
}

fn blend(a: [u8; 3], b: [u8; 3], alpha: f32) -> [u8; 3] {
    let mix = |x: u8, y: u8| (f32::from(x) * (1.0 - alpha) + f32::from(y) * alpha).round().clamp(0.0, 255.0) as u8;
    [mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])]
}

/// PNG bytes of an RGB image.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::InvalidInput(format!("cannot encode a PNG: {e}")))?;
    Ok(bytes.into_inner())
}

/// The overlay PNG of `explanation` over the image file `image` as it is on
/// disk (what `cvtk explain` writes and the annotation page shows).
pub fn overlay_png(explanation: &Explanation, image: &Path, loader: &LoaderConfig) -> Result<Vec<u8>> {
    let picture = cvtk_dataset::decode::decode_rgb(image, loader.max_pixels)?;
    encode_png(&explanation.map.overlay(&picture, loader))
}

/// Names for the files of each image's explanation, one per path and all
/// different: the file's stem, or where two images share one (`a/0.png`,
/// `b/0.png`), its folder's name and stem (`a_0`), numbered if still equal.
pub fn output_stems(paths: &[PathBuf]) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let name = |p: &Path, with_parent: bool| {
        let stem = p.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        match (with_parent, p.parent().and_then(Path::file_name)) {
            (true, Some(parent)) => format!("{}_{stem}", parent.to_string_lossy()),
            _ => stem,
        }
    };
    let counts = |names: &[String]| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for n in names {
            *c.entry(n.clone()).or_default() += 1;
        }
        c
    };
    let plain: Vec<String> = paths.iter().map(|p| name(p, false)).collect();
    let plain_counts = counts(&plain);
    let named: Vec<String> = paths.iter().zip(&plain).map(|(p, n)| name(p, plain_counts[n] > 1)).collect();
    let named_counts = counts(&named);
    // Names still shared get a number; a number that another image's name
    // already is (`a_x-1`) is skipped.
    let mut used: HashSet<String> = named.iter().filter(|n| named_counts[*n] == 1).cloned().collect();
    let mut next: HashMap<String, usize> = HashMap::new();
    named
        .iter()
        .map(|n| {
            if named_counts[n] == 1 {
                return n.clone();
            }
            let k = next.entry(n.clone()).or_insert(0);
            loop {
                *k += 1;
                let candidate = format!("{n}-{k}");
                if used.insert(candidate.clone()) {
                    return candidate;
                }
            }
        })
        .collect()
}

/// Writes an explanation of `image` into `dir`: `STEM.explain.png` (the
/// overlay on the image as it is on disk) and `STEM.explain.json` (the
/// explanation with its map's numbers). Returns the two paths.
pub fn write_explanation(
    explanation: &Explanation,
    image: &Path,
    loader: &LoaderConfig,
    dir: &Path,
    stem: &str,
) -> Result<(PathBuf, PathBuf)> {
    let png = dir.join(format!("{stem}.explain.png"));
    let json = dir.join(format!("{stem}.explain.json"));
    cvtk_core::write_atomic(&png, &overlay_png(explanation, image, loader)?)?;
    let record = serde_json::json!({
        "image": image,
        "label": explanation.label,
        "probability": explanation.probability,
        "predicted": explanation.predicted,
        "predicted_probability": explanation.predicted_probability,
        "method": explanation.method,
        "map": explanation.map,
    });
    let text = serde_json::to_vec_pretty(&record).map_err(|e| Error::InvalidInput(e.to_string()))?;
    cvtk_core::write_atomic(&json, &text)?;
    Ok((png, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_map_is_the_positive_part_over_its_maximum() {
        let m = Heatmap { height: 1, width: 3, values: vec![-2.0, 1.0, 4.0] };
        assert_eq!(m.shown(), vec![0.0, 0.25, 1.0]);
        assert_eq!(m.argmax(), (4.0, 0, 2));
        let none = Heatmap { height: 1, width: 2, values: vec![-1.0, -3.0] };
        assert_eq!(none.shown(), vec![0.0, 0.0]);
    }

    #[test]
    fn the_overlay_is_hottest_over_the_hot_cell_and_has_a_scale() {
        let m = Heatmap { height: 2, width: 2, values: vec![0.0, 0.0, 0.0, 1.0] };
        let img = RgbImage::from_pixel(40, 40, image::Rgb([128, 128, 128]));
        let loader = LoaderConfig::square(8);
        let out = m.overlay(&img, &loader);
        assert!(out.width() > 40, "a colour scale beside the image");
        // Turbo's hot end is red; where there is no evidence the image shows through.
        let hot = out.get_pixel(35, 35).0;
        let cold = out.get_pixel(4, 4).0;
        assert!(hot[0] > hot[2] + 60, "{hot:?}");
        assert!(cold.iter().all(|&c| c.abs_diff(128) < 30), "{cold:?}");
        let png = m.png(64).unwrap();
        let back = image::load_from_memory(&png).unwrap();
        assert_eq!((back.width(), back.height()), (64, 64));
    }

    #[test]
    fn output_names_differ_where_stems_collide() {
        let paths: Vec<PathBuf> = ["a/0.png", "b/0.png", "b/1.png", "c/a/0.png", "x/a/0.jpg"].map(PathBuf::from).into();
        assert_eq!(output_stems(&paths), ["a_0-1", "b_0", "1", "a_0-2", "a_0-3"].map(String::from));
        assert_eq!(output_stems(&[PathBuf::from("p.png")]), ["p"]);
        // A numbered name that is already another image's is skipped.
        let tricky: Vec<PathBuf> = ["p/a/x.png", "q/a/x.png", "a_x-1.png"].map(PathBuf::from).into();
        assert_eq!(output_stems(&tricky), ["a_x-2", "a_x-3", "a_x-1"].map(String::from));
    }

    #[test]
    fn methods_parse_and_print_alike() {
        for m in [Method::Cam, Method::GradCam] {
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
        }
        assert!("lime".parse::<Method>().unwrap_err().to_string().contains("cam, grad-cam"));
    }
}
