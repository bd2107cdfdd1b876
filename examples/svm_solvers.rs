//! How the two SVM solvers scale with the number of images: linfa-svm's SMO
//! (dense n-by-n kernel matrix) against dual coordinate descent (linear in n),
//! on synthetic 1280-dimensional features (EfficientNet-Lite0's size), 10
//! classes, one-vs-rest, class_weight balanced, C = 1.
//!
//! ```sh
//! cargo run --release --example svm_solvers -- --sizes 250,500,1000,2000,4000
//! ```
//! prints one Markdown row per size: fit seconds and training accuracy of each
//! solver; linfa is skipped once one fit takes longer than --linfa-limit seconds.

use std::time::Instant;

use clap::Parser;
use cvtk::model::{decision_accuracy, fit_linear_svm, SvmParams, SvmSolver};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

/// Time both SVM solvers on growing feature matrices.
#[derive(Parser)]
struct Args {
    /// Image counts to try.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    sizes: Vec<usize>,
    /// Feature size.
    #[arg(long, default_value_t = 1280)]
    dim: usize,
    /// Stop running linfa after a fit slower than this (seconds).
    #[arg(long, default_value_t = 120.0)]
    linfa_limit: f64,
}

fn features(n: usize, d: usize, k: usize) -> (Array2<f32>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let centres: Vec<Vec<f32>> = (0..k).map(|_| (0..d).map(|_| rng.random_range(0.0..1.0)).collect()).collect();
    let mut x = Array2::zeros((n, d));
    let y: Vec<usize> = (0..n).map(|i| i % k).collect();
    for (i, &c) in y.iter().enumerate() {
        for j in 0..d {
            // Non-negative, like pooled ReLU6 features; classes overlap.
            x[[i, j]] = (centres[c][j] + rng.random_range(-1.5f32..1.5)).max(0.0);
        }
    }
    (x, y)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "| images | dual CD fit (s) | dual CD train acc | linfa fit (s) | linfa train acc |\n|---|---|---|---|---|"
    );
    let mut linfa_on = true;
    for &n in &args.sizes {
        let (x, y) = features(n, args.dim, 10);
        let mut row = format!("| {n} |");
        for solver in [SvmSolver::DualCd, SvmSolver::Linfa] {
            if solver == SvmSolver::Linfa && !linfa_on {
                row.push_str(" skipped | |");
                continue;
            }
            let start = Instant::now();
            let model = fit_linear_svm(&x, &y, 10, &SvmParams { solver, ..Default::default() }.check()?)?;
            let secs = start.elapsed().as_secs_f64();
            let acc = decision_accuracy(&model.decision(&x), &y);
            row.push_str(&format!(" {secs:.2} | {:.1}% |", 100.0 * acc));
            if solver == SvmSolver::Linfa && secs > args.linfa_limit {
                linfa_on = false;
            }
        }
        println!("{row}");
    }
    Ok(())
}
