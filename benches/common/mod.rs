//! Shared by the benchmarks: the real photos they run on (and JPEGs of mixed
//! sizes cut from them), and medians.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// scikit-image's bundled RGB test photos (0.1 to 2 MP), from the project's venv.
pub fn skimage_photos(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let lib = root.join(".venv/lib");
    let python_dir = std::fs::read_dir(&lib)
        .with_context(|| format!("{} missing; run `make test-setup`", lib.display()))?
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
        bail!("{} missing; `make test-setup` installs scikit-image into .venv", missing.display());
    }
    Ok(paths)
}

/// Runs the Python peer `benches/python/SCRIPT` from the project's venv with
/// `args` (and `OMP_NUM_THREADS` when given); returns the JSON of the last line
/// it printed (null when it printed nothing). An error carries its stderr.
pub fn python_peer<S: AsRef<OsStr>>(
    root: &Path,
    script: &str,
    args: &[S],
    omp_threads: Option<usize>,
) -> anyhow::Result<serde_json::Value> {
    let python = root.join(".venv/bin/python");
    let mut cmd = Command::new(&python);
    cmd.arg(root.join("benches/python").join(script)).args(args);
    if let Some(n) = omp_threads {
        cmd.env("OMP_NUM_THREADS", n.to_string());
    }
    let out = cmd.output().with_context(|| format!("cannot run {}; run `make test-setup`", python.display()))?;
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().last() {
        // A step that only writes files (inference_peers.py prepare) prints nothing.
        None => Ok(serde_json::Value::Null),
        Some(last) => serde_json::from_str(last).with_context(|| format!("{script} printed {last:?}, not JSON")),
    }
}

/// `images / seconds` of a peer's JSON answer.
pub fn images_per_second(v: &serde_json::Value) -> anyhow::Result<f64> {
    Ok(v["images"].as_f64().context("images")? / v["seconds"].as_f64().context("seconds")?)
}

/// The median (upper median for even lengths).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes `n` JPEGs of 0.3 to 3 MP (log-uniform), cut from the photos at random,
/// into `out/<photo group>/`. Returns the mean megapixels.
pub fn write_photos(root: &Path, out: &Path, n: usize) -> anyhow::Result<f64> {
    write_photos_between(root, out, n, 0.3, 3.0)
}

/// [`write_photos`] with sizes from `min_mp` to `max_mp` megapixels.
pub fn write_photos_between(root: &Path, out: &Path, n: usize, min_mp: f64, max_mp: f64) -> anyhow::Result<f64> {
    let sources: Vec<image::RgbImage> = skimage_photos(root)?
        .iter()
        .map(|p| cvtk::dataset::decode::decode_rgb(p, cvtk::dataset::decode::DEFAULT_MAX_PIXELS))
        .collect::<Result<_, _>>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut total_mp = 0.0;
    for i in 0..n {
        let src = &sources[i % sources.len()];
        // A random crop of 60-100% of each side, scaled to the drawn size.
        let (sw, sh) = src.dimensions();
        let cw = (f64::from(sw) * rng.random_range(0.6..=1.0)) as u32;
        let ch = (f64::from(sh) * rng.random_range(0.6..=1.0)) as u32;
        let (x, y) = (rng.random_range(0..=sw - cw), rng.random_range(0..=sh - ch));
        let mp = (min_mp.ln() + rng.random::<f64>() * (max_mp.ln() - min_mp.ln())).exp();
        let scale = (mp * 1e6 / f64::from(cw * ch)).sqrt();
        let (w, h) = (((f64::from(cw) * scale) as u32).max(1), ((f64::from(ch) * scale) as u32).max(1));
        let crop = image::imageops::crop_imm(src, x, y, cw, ch).to_image();
        let img = image::imageops::resize(&crop, w, h, image::imageops::FilterType::Triangle);
        total_mp += f64::from(w * h) / 1e6;
        let dir = out.join(format!("group{}", i % 3));
        std::fs::create_dir_all(&dir)?;
        let file = std::fs::File::create(dir.join(format!("photo_{i:04}.jpg")))?;
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90).encode_image(&img)?;
    }
    Ok(total_mp / n as f64)
}
