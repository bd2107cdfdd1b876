//! Training speed: one epoch of fine-tuning ResNet-18 (every layer, a new
//! 3-label head) on JPEG photos, end to end with loading, cvtk's
//! `TransferModel::train` against a plain PyTorch + torchvision loop
//! (`DataLoader` with Pillow, SGD with momentum), same weights file, same
//! images, batch size, input size and learning rate, 2 threads and 2 loader
//! workers each, alternating.
//!
//! `cargo bench --bench training` (or `make bench`) prints a Markdown table;
//! without `--bench` (as `cargo test` runs it) it trains on a few small images,
//! so the benchmark cannot rot.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context};
use cvtk::dataset::{ClassificationDataset, ScanOptions};
use cvtk::model::{Architecture, BaseModel, Device, TrainConfig, TransferModel};

const THREADS: usize = 2;
const LR: f64 = 0.001;

fn cvtk_rate(ds: &ClassificationDataset, weights: &Path, batch: usize, size: u32) -> anyhow::Result<(f64, f64)> {
    let base = BaseModel::new(Architecture::Resnet18, Some(weights.to_path_buf()));
    let start = Instant::now();
    let mut model = TransferModel::new_seeded(ds.label_names(), &base, Some(size), Device::Cpu, 0)?;
    let cfg = TrainConfig {
        lr_per_mb: vec![LR].into(),
        mb_size: batch,
        loader_threads: THREADS,
        recalibrate_batch_norm: false,
        ..TrainConfig::default()
    };
    let history = model.train(ds, &cfg, None)?;
    let loss = history.last().map(|h| h.loss).context("no epoch")?;
    Ok((ds.len() as f64 / start.elapsed().as_secs_f64(), loss))
}

fn torch_rate(root: &Path, data: &Path, weights: &Path, batch: usize, size: u32) -> anyhow::Result<(f64, f64)> {
    let args = [
        data.to_string_lossy().into_owned(),
        weights.to_string_lossy().into_owned(),
        THREADS.to_string(),
        THREADS.to_string(),
        batch.to_string(),
        size.to_string(),
        LR.to_string(),
    ];
    let v = common::python_peer(root, "training_torchvision.py", &args, Some(THREADS))?;
    Ok((common::images_per_second(&v)?, v["loss"].as_f64().context("loss")?))
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    tch::set_num_threads(THREADS as i32);
    let (n, rounds, size, batch) = if full { (240, 3, 224, 16) } else { (6, 1, 64, 3) };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("photos");
    let mp = common::write_photos(root, &data, n)?;
    let ds = ClassificationDataset::create_from_dir_with("photos", &data, &ScanOptions::default().verify(false))?;
    // The same starting weights for both: torchvision's ResNet-18 layout, random.
    let weights = tmp.path().join("resnet18.pth");
    let py = root.join(".venv/bin/python");
    let status = Command::new(&py)
        .args([
            "-c",
            "import sys, torch, torchvision; torch.manual_seed(0); \
             torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])",
        ])
        .arg(&weights)
        .status()
        .with_context(|| format!("cannot run {}; run `make test-setup`", py.display()))?;
    ensure!(status.success(), "writing the starting weights failed");
    println!(
        "training: ResNet-18, one epoch of {n} JPEGs (mean {mp:.2} MP) at {size}x{size}, batch {batch}, \
         {THREADS} threads and {THREADS} loader workers, {rounds} rounds alternating; images/s including loading\n"
    );
    println!("| model | cvtk images/s | PyTorch images/s | cvtk / PyTorch | cvtk epoch loss | PyTorch epoch loss |");
    println!("|---|---|---|---|---|---|");
    let (mut ours, mut theirs, mut our_loss, mut their_loss) = (Vec::new(), Vec::new(), 0.0, 0.0);
    for _ in 0..rounds {
        let (r, l) = cvtk_rate(&ds, &weights, batch, size)?;
        ours.push(r);
        our_loss = l;
        let (r, l) = torch_rate(root, &data, &weights, batch, size)?;
        theirs.push(r);
        their_loss = l;
    }
    let (a, b) = (common::median(ours), common::median(theirs));
    ensure!(a > 0.0 && b > 0.0 && our_loss.is_finite(), "implausible: cvtk {a} ({our_loss}), PyTorch {b}");
    println!("| resnet18 | {a:.2} | {b:.2} | {:.2}x | {our_loss:.3} | {their_loss:.3} |", a / b);
    Ok(())
}
