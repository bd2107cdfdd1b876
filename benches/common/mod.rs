//! Shared by the benchmarks: the real photos they run on, and medians.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// scikit-image's bundled RGB test photos (0.1 to 2 MP), from the project's venv.
pub fn skimage_photos(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let lib = root.join(".venv/lib");
    let python_dir = std::fs::read_dir(&lib)
        .with_context(|| format!("{} missing; run `make setup`", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python3")))
        .context("no python3.* in .venv/lib")?;
    let data = python_dir.join("site-packages/skimage/data");
    let names = [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "hubble_deep_field.jpg",
        "ihc.png",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "retina.jpg",
        "rocket.jpg",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| data.join(n)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        bail!("{} missing; `make setup` installs scikit-image into .venv", missing.display());
    }
    Ok(paths)
}

/// The median (upper median for even lengths).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
