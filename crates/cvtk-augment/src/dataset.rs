//! [`augment_dataset`]: the original's `augment_dataset`, writing augmented
//! copies of every image and returning a dataset of originals plus copies.

use std::path::{Path, PathBuf};

use cvtk_core::StorageContext;
use cvtk_dataset::{ClassificationDataset, ImageInfo, Split};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::Pipeline;

/// Writes, for every training image of `dataset` (every image, when it has
/// no split) and every pipeline, one augmented copy as PNG under
/// `<outputs>/augmented/<dataset name>/<label>/`, and returns a dataset
/// holding the originals and the copies (41 images and one pipeline give
/// 82), labels kept. With a split, the copies join the training part and
/// the test part stays as it was, originals only: augmenting test images
/// would score the model on altered copies of what it is tested on. `seed`
/// makes the copies reproducible.
pub fn augment_dataset(
    dataset: &ClassificationDataset,
    pipelines: &[Pipeline],
    storage: &StorageContext,
    seed: u64,
) -> Result<ClassificationDataset> {
    let out = storage.outputs().join("augmented").join(sanitize(dataset.name()));
    augment_dataset_into(dataset, pipelines, &out, seed)
}

/// Like [`augment_dataset`], writing into `out` instead.
pub fn augment_dataset_into(
    dataset: &ClassificationDataset,
    pipelines: &[Pipeline],
    out: &Path,
    seed: u64,
) -> Result<ClassificationDataset> {
    let labels = dataset.labels().to_vec();
    let names = dataset.label_names();
    for name in &names {
        let dir = out.join(sanitize(name));
        std::fs::create_dir_all(&dir).map_err(|source| Error::io("cannot create", dir, source))?;
    }
    let next_id = dataset.images().iter().chain(dataset.excluded()).map(|i| i.id).max().map_or(0, |m| m + 1);
    // With a split, the training images only.
    let train: Option<std::collections::HashSet<u64>> = dataset.split_info().map(|s| s.train.iter().copied().collect());
    let sources: Vec<&ImageInfo> =
        dataset.images().iter().filter(|img| train.as_ref().is_none_or(|t| t.contains(&img.id))).collect();
    let jobs: Vec<(usize, &ImageInfo)> =
        (0..pipelines.len()).flat_map(|k| sources.iter().map(move |img| (k, *img))).collect();
    let bar = cvtk_core::progress::Progress::start(jobs.len() as u64, "augmenting");
    let copies: Vec<ImageInfo> = jobs
        .par_iter()
        .enumerate()
        .map(|(n, (k, img))| {
            let source = cvtk_dataset::decode::decode_rgb(&img.path, cvtk_dataset::decode::DEFAULT_MAX_PIXELS)?;
            let augmented = pipelines[*k].run(source, cvtk_dataset::mix_seed(seed, *k as u64, img.id));
            let stem =
                img.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| img.id.to_string());
            let label = names.get(img.label()).map(|s| sanitize(s)).unwrap_or_default();
            let path: PathBuf = out.join(label).join(format!("{stem}_{}_aug{k}.png", img.id));
            let mut bytes = std::io::Cursor::new(Vec::new());
            augmented
                .write_to(&mut bytes, image::ImageFormat::Png)
                .map_err(|e| Error::Image { path: path.clone(), reason: e.to_string() })?;
            cvtk_core::write_atomic(&path, bytes.get_ref())?;
            bar.inc(1);
            Ok(ImageInfo {
                id: next_id + n as u64,
                name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                path,
                labels: img.labels.clone(),
            })
        })
        .collect::<Result<_>>()?;
    bar.finish();
    let source_ids: Vec<u64> = jobs.iter().map(|(_, img)| img.id).collect();
    let mut images = dataset.images().to_vec();
    images.extend(copies.iter().cloned());
    let mut result = ClassificationDataset::from_parts(format!("{}-augmented", dataset.name()), labels, images)?;
    if let Some(split) = dataset.split_info() {
        // Excluded images stay out of the result, and out of its split.
        let kept: std::collections::HashSet<u64> = dataset.images().iter().map(|i| i.id).collect();
        let mut train: Vec<u64> = split.train.iter().copied().filter(|id| kept.contains(id)).collect();
        let test: Vec<u64> = split.test.iter().copied().filter(|id| kept.contains(id)).collect();
        train.extend(copies.iter().zip(&source_ids).map(|(copy, _)| copy.id));
        result.set_split(Split { train, test, ..split.clone() })?;
    }
    Ok(result)
}

/// Keeps the augmented copies that a person excluded in `earlier` (the
/// manifest an earlier run wrote into `out`, edited in `cvtk annotate`)
/// excluded in `augmented`, this run's dataset for `out`. Only exclusions of
/// copies are carried over: the originals' labels and exclusions come from
/// the input manifest, which may have been fixed since, and a copy takes its
/// original's label. Returns `(copies kept excluded, copies whose label in
/// earlier differs from the one they have now)`, the latter for a note.
pub fn keep_excluded_copies(
    augmented: &mut ClassificationDataset,
    earlier: &ClassificationDataset,
    out: &Path,
) -> Result<(usize, usize)> {
    let names = earlier.label_names();
    let now = augmented.label_names();
    let (mut excluded, mut relabelled) = (0, 0);
    for (id, img, was_excluded) in augmented.same_images_in(earlier) {
        // The copies are this run's images under `out` (as it was given).
        let Some(copy) = augmented.any_image(id).filter(|i| i.path.starts_with(out)) else { continue };
        if now.get(copy.label()) != names.get(img.label()) {
            relabelled += 1;
        }
        if was_excluded && augmented.is_excluded(id) == Some(false) {
            augmented.set_excluded(id, true)?;
            excluded += 1;
        }
    }
    Ok((excluded, relabelled))
}

/// A file-name-safe version of a label or dataset name.
fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}
