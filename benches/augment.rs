//! Augmentation speed: cvtk-augment against albumentations (PyPI 2.0.8, on
//! OpenCV) running the same pipelines on the same photos, in the same run,
//! alternating, at 1 and 2 threads. Decoding is excluded on both sides.
//!
//! `cargo bench --bench augment` (or `make bench`) prints the medians and
//! ratios as a Markdown table. Without `--bench` (as `cargo test` runs it) it
//! does one tiny round, so the benchmark cannot rot.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use cvtk::augment::{Affine, Crop, FillMode, Fliplr, GaussianBlur, Multiply, Pipeline, Sequential};
use rayon::prelude::*;

fn pipeline(name: &str) -> anyhow::Result<Pipeline> {
    let mut steps = vec![Fliplr::new(0.5)?.into(), Crop::percent((0.0, 0.1))?.into()];
    if name == "photo" {
        steps.push(Affine::new().rotate((-15.0, 15.0))?.mode(FillMode::Reflect).into());
        steps.push(Multiply::new((0.8, 1.2))?.into());
        steps.push(GaussianBlur::new((0.1, 1.0))?.into());
    }
    Ok(Pipeline::new(Sequential::new(steps)?)?)
}

/// Images per second of cvtk over `repeats` passes.
fn cvtk_rate(p: &Pipeline, images: &[image::RgbImage], threads: usize, repeats: usize) -> anyhow::Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let jobs: Vec<(usize, u64)> =
        (0..repeats).flat_map(|r| (0..images.len()).map(move |i| (i, (r * 1000 + i) as u64))).collect();
    let start = Instant::now();
    let sizes: Vec<(u32, u32)> =
        pool.install(|| jobs.par_iter().map(|&(i, seed)| p.run(images[i].clone(), seed).dimensions()).collect());
    let secs = start.elapsed().as_secs_f64();
    assert!(sizes.iter().zip(jobs.iter()).all(|(s, (i, _))| *s == images[*i].dimensions()));
    Ok(jobs.len() as f64 / secs)
}

/// Images per second of albumentations over `repeats` passes.
fn python_rate(root: &Path, name: &str, paths: &[PathBuf], threads: usize, repeats: usize) -> anyhow::Result<f64> {
    let mut args: Vec<std::ffi::OsString> = vec![name.into(), threads.to_string().into(), repeats.to_string().into()];
    args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    common::images_per_second(&common::python_peer(root, "augment_albumentations.py", &args, Some(threads))?)
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut paths = common::skimage_photos(&root)?;
    let (rounds, repeats) = if full { (5, 4) } else { (1, 1) };
    if !full {
        paths.truncate(2);
    }
    let images: Vec<image::RgbImage> = paths
        .iter()
        .map(|p| cvtk::dataset::decode::decode_rgb(p, cvtk::dataset::decode::DEFAULT_MAX_PIXELS))
        .collect::<Result<_, _>>()?;
    let megapixels: f64 =
        images.iter().map(|i| f64::from(i.width() * i.height()) / 1e6).sum::<f64>() / images.len() as f64;
    println!(
        "augmentation: {} photos (mean {:.2} MP), {rounds} rounds of {repeats} passes, alternating cvtk and albumentations\n",
        images.len(),
        megapixels
    );
    println!("| pipeline | threads | cvtk images/s | albumentations images/s | cvtk / albumentations |");
    println!("|---|---|---|---|---|");
    for name in ["flip_crop", "photo"] {
        let p = pipeline(name)?;
        for threads in [1, 2] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                ours.push(cvtk_rate(&p, &images, threads, repeats)?);
                theirs.push(python_rate(&root, name, &paths, threads, repeats)?);
            }
            let (a, b) = (common::median(ours), common::median(theirs));
            if !(a > 0.0 && b > 0.0) {
                bail!("a rate was not positive: cvtk {a}, albumentations {b}");
            }
            println!("| {name} | {threads} | {a:.1} | {b:.1} | {:.2}x |", a / b);
        }
    }
    Ok(())
}
