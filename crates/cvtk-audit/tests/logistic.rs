//! Cross-check against scikit-learn: on the same rows, cvtk's logistic
//! regression (what the audit cross-fits) predicts the probabilities of
//! scikit-learn's `LogisticRegression` with the same `C`, run to
//! convergence. Reference: tests/reference/sklearn_logistic.py.

use cvtk_audit::logistic::fit;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

use crate::python::reference;

/// `n` rows in `dim` dimensions around one centre per label, overlapping
/// (so the optimum is finite), on features of mixed scale.
fn case(seed: u64, n: usize, dim: usize, classes: usize) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..classes).map(|_| (0..dim).map(|_| normal.sample(&mut rng)).collect()).collect();
    let y: Vec<usize> = (0..n).map(|_| rng.random_range(0..classes)).collect();
    let x = Array2::from_shape_fn((n, dim), |(i, j)| (1 + j % 3) as f32 * (centres[y[i]][j] + normal.sample(&mut rng)));
    (x, y)
}

#[test]
fn the_same_probabilities_as_scikit_learn() {
    let cases = [
        ("300 rows, 3 labels, C = 1", case(1, 300, 12, 3), 1.0),
        ("500 rows, 6 labels, C = 0.1", case(2, 500, 40, 6), 0.1),
        ("200 rows, 2 labels, C = 4", case(3, 200, 5, 2), 4.0),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|(_, (x, y), c)| json!({ "x": x.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(), "y": y, "c": c }))
        .collect();
    let theirs = reference("sklearn_logistic.py", &Value::from(input));
    let theirs = theirs.as_array().unwrap();
    for ((name, (x, y), c), theirs) in cases.iter().zip(theirs) {
        let classes = y.iter().max().unwrap() + 1;
        let model = fit(x.view(), y, classes, *c, 1000, 1e-6).unwrap();
        // Converged further than the audit does (its tolerance is scikit-learn's
        // default, 1e-4), or as far as f32 logits go.
        assert!(model.iterations < 1000, "{name}: not converged after {} iterations", model.iterations);
        let logits = model.logits(x.view());
        let mut worst = 0f64;
        for (i, (row, theirs)) in logits.outer_iter().zip(theirs["probabilities"].as_array().unwrap()).enumerate() {
            let top = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = row.iter().map(|&v| f64::from(v - top).exp()).sum();
            for (k, (&v, t)) in row.iter().zip(theirs.as_array().unwrap()).enumerate() {
                let p = f64::from(v - top).exp() / sum;
                let diff = (p - t.as_f64().unwrap()).abs();
                worst = worst.max(diff);
                assert!(diff < 1e-4, "{name}: row {i}, label {k}: {p} vs scikit-learn's {t}");
            }
        }
        eprintln!("{name}: {} iterations, largest difference {worst:.2e}", model.iterations);
    }
}
