//! Helpers shared by the model crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's venv Python; tests that need it fail loudly without it.
pub fn python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        py.is_file(),
        "{} missing: run `make test-setup` (it installs the test-time Python references)",
        py.display()
    );
    py
}

/// Runs a committed Python reference script from tests/reference with `args`.
pub fn run_reference(script: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(script);
    let out = Command::new(python()).arg(&script).args(args).output().unwrap();
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
}

/// Reads a little-endian f32 file into a tensor of `shape`.
pub fn read_f32(path: &Path, shape: &[i64]) -> tch::Tensor {
    let bytes = std::fs::read(path).unwrap();
    tch::Tensor::from_data_size(&bytes, shape, tch::Kind::Float)
}

/// A dataset of `per_class` 40x40 images per colour class (red, green, blue
/// dominant, with per-image noise and a bright square at a random place).
pub fn colour_dataset(dir: &Path, per_class: usize) -> cvtk_dataset::ClassificationDataset {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (c, name) in ["blue", "green", "red"].iter().enumerate() {
        let channel = 2 - c;
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..per_class {
            let (sx, sy) = (rng.random_range(0..30u32), rng.random_range(0..30u32));
            let img = image::RgbImage::from_fn(40, 40, |x, y| {
                let mut p = [rng.random_range(0..90u8), rng.random_range(0..90u8), rng.random_range(0..90u8)];
                p[channel] = p[channel].saturating_add(120);
                if x >= sx && x < sx + 10 && y >= sy && y < sy + 10 {
                    p = [230, 230, 230];
                }
                image::Rgb(p)
            });
            img.save(dir.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
    cvtk_dataset::ClassificationDataset::create_from_dir("colours", dir).unwrap()
}
