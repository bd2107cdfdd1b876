//! Data pipeline speed: JPEG files on disk decoded, resized (shorter side to
//! 256, centre crop 224) and normalised into batches of 32, cvtk's
//! `ImageLoader` against torchvision's `ImageFolder` + `DataLoader` (Pillow),
//! with the same number of threads / workers, alternating, in the same run.
//!
//! The inputs: photos of mixed sizes (0.3 to 3 MP) cut and scaled from
//! scikit-image's bundled real photos, JPEG quality 90, written to a temporary
//! ImageFolder. `cargo bench --bench pipeline` (or `make bench`) prints the
//! medians and ratios as a Markdown table; without `--bench` (as `cargo test`
//! runs it) it does one tiny round, so the benchmark cannot rot.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use cvtk::dataset::{ClassificationDataset, ImageLoader, LoaderConfig, Normalization, ResizeMode, ScanOptions};

/// Images per second of cvtk's loader over `passes` passes (after one warm-up).
fn cvtk_rate(ds: &ClassificationDataset, threads: usize, batch: usize, passes: usize) -> anyhow::Result<f64> {
    let loader = ImageLoader::new(LoaderConfig {
        resize: ResizeMode::CenterCrop { crop_fraction: 224.0 / 256.0 },
        normalization: Normalization::IMAGENET,
        threads,
        ..LoaderConfig::square(224)
    })?;
    let run = || -> anyhow::Result<usize> {
        let mut n = 0;
        for b in loader.batches(ds, batch, None, 0) {
            let b = b?;
            // As far as a training step sees it: a libtorch tensor, as torchvision's loader gives.
            let t = cvtk::model::tensor::images_tensor(&b.images)?;
            assert_eq!(t.size()[1..], [3, 224, 224]);
            n += b.ids.len();
        }
        Ok(n)
    };
    run()?;
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..passes {
        n += run()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn torchvision_rate(root: &Path, data: &Path, workers: usize, batch: usize, passes: usize) -> anyhow::Result<f64> {
    let args = [data.to_string_lossy().into_owned(), workers.to_string(), batch.to_string(), passes.to_string()];
    common::images_per_second(&common::python_peer(root, "pipeline_torchvision.py", &args, Some(1))?)
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (n, rounds, passes) = if full { (300, 5, 2) } else { (6, 1, 1) };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("photos");
    let mp = common::write_photos(root, &data, n)?;
    let ds = ClassificationDataset::create_from_dir_with("photos", &data, &ScanOptions::default().verify(false))?;
    let batch = 32;
    println!(
        "data pipeline: {n} JPEGs (mean {mp:.2} MP, 0.3-3 MP), batches of {batch} at 224x224, {rounds} rounds of \
         {passes} passes, alternating cvtk and torchvision\n"
    );
    println!("| threads / workers | cvtk images/s | torchvision images/s | cvtk / torchvision |");
    println!("|---|---|---|---|");
    for threads in [2] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(cvtk_rate(&ds, threads, batch, passes)?);
            theirs.push(torchvision_rate(root, &data, threads, batch, passes)?);
        }
        let (a, b) = (common::median(ours), common::median(theirs));
        if !(a > 0.0 && b > 0.0) {
            bail!("a rate was not positive: cvtk {a}, torchvision {b}");
        }
        println!("| {threads} | {a:.1} | {b:.1} | {:.2}x |", a / b);
    }
    Ok(())
}
