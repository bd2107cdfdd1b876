//! Linear SVM on features: cvtk's dual coordinate descent against
//! scikit-learn's `LinearSVC` (liblinear), both with C = 1 and balanced class
//! weights, on the same feature matrices (seeded Gaussian classes standing in
//! for 512-dimensional ResNet-18 features), 1k and 10k training rows, alternating,
//! medians of the fit time and the test accuracy of each.
//!
//! `cargo bench --bench svm` (or `make bench`) prints a Markdown table; without
//! `--bench` (as `cargo test` runs it) it does one tiny round.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use cvtk::model::{decision_accuracy, fit_linear_svm, SvmParams};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Overlapping Gaussian classes: (x, y) with `n` rows.
fn draw(rng: &mut ChaCha8Rng, centres: &Array2<f32>, n: usize) -> (Array2<f32>, Vec<usize>) {
    let (k, dim) = centres.dim();
    let normal = rand_distr::StandardNormal;
    let y: Vec<usize> = (0..n).map(|_| rng.random_range(0..k)).collect();
    let x = Array2::from_shape_fn((n, dim), |(i, j)| centres[[y[i], j]] + 1.5 * rng.sample::<f32, _>(normal));
    (x, y)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(std::fs::write(dir.join(name), bytes)?)
}

fn sklearn(root: &Path, dir: &Path, n_train: usize, n_test: usize, dim: usize) -> anyhow::Result<(f64, f64)> {
    let args = [dir.to_string_lossy().into_owned(), n_train.to_string(), n_test.to_string(), dim.to_string()];
    let v = common::python_peer(root, "svm_linearsvc.py", &args, None)?;
    Ok((v["seconds"].as_f64().context("seconds")?, v["accuracy"].as_f64().context("accuracy")?))
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (dim, k, rounds, sizes, n_test) =
        if full { (512, 10, 3, vec![1000, 10000], 2000) } else { (32, 4, 1, vec![200], 200) };
    let tmp = tempfile::tempdir()?;
    println!("linear SVM: {k} classes, {dim} features, {n_test} test rows, {rounds} rounds alternating cvtk and scikit-learn\n");
    println!(
        "| training rows | cvtk fit s | LinearSVC fit s | LinearSVC / cvtk time | cvtk accuracy | LinearSVC accuracy |"
    );
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let centres = Array2::from_shape_fn((k, dim), |_| rng.sample::<f32, _>(rand_distr::StandardNormal) * 0.25);
        let (x_train, y_train) = draw(&mut rng, &centres, n);
        let (x_test, y_test) = draw(&mut rng, &centres, n_test);
        let bytes = |x: &Array2<f32>| x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let labels = |y: &[usize]| y.iter().map(|&v| v as u8).collect::<Vec<u8>>();
        write(tmp.path(), "x_train.bin", &bytes(&x_train))?;
        write(tmp.path(), "x_test.bin", &bytes(&x_test))?;
        write(tmp.path(), "y_train.bin", &labels(&y_train))?;
        write(tmp.path(), "y_test.bin", &labels(&y_test))?;
        let (mut ours, mut theirs, mut our_acc, mut their_acc) = (Vec::new(), Vec::new(), 0.0, 0.0);
        for _ in 0..rounds {
            let t = Instant::now();
            let model = fit_linear_svm(&x_train, &y_train, k, &SvmParams::default().check()?)?;
            ours.push(t.elapsed().as_secs_f64());
            our_acc = decision_accuracy(&model.decision(&x_test), &y_test);
            let (s, a) = sklearn(root, tmp.path(), n, n_test, dim)?;
            theirs.push(s);
            their_acc = a;
        }
        let (a, b) = (common::median(ours), common::median(theirs));
        if !(a > 0.0 && b > 0.0 && our_acc > 1.0 / k as f64) {
            bail!("implausible result: cvtk {a}s at {our_acc}, LinearSVC {b}s");
        }
        println!("| {n} | {a:.3} | {b:.3} | {:.2}x | {:.2}% | {:.2}% |", b / a, 100.0 * our_acc, 100.0 * their_acc);
    }
    Ok(())
}
