//! Cross-check against cleanlab 2.9: on the same out-of-sample probabilities,
//! the images flagged as label issues are exactly those of
//! `cleanlab.filter.find_label_issues` (default filter), and the label-quality
//! scores those of `cleanlab.rank.get_label_quality_scores`. Reference:
//! tests/reference/cleanlab_label_issues.py, run here with the project's venv.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

use crate::python::reference;

/// A noisy dataset: `n` images of `k` classes (class `k - 1` left empty when
/// `missing_class`), a model whose probabilities favour the true class by
/// `signal`, and labels flipped at random with probability `noise`.
fn case(seed: u64, n: usize, k: usize, signal: f64, noise: f64, missing_class: bool) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let used = if missing_class { k - 1 } else { k };
    let mut labels = Vec::with_capacity(n);
    let mut probs = Vec::with_capacity(n);
    for _ in 0..n {
        let truly = rng.random_range(0..used);
        let logits: Vec<f64> =
            (0..k).map(|c| normal.sample(&mut rng) + if c == truly { signal } else { 0.0 }).collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        probs.push(exp.iter().map(|e| e / sum).collect());
        let given = if rng.random_bool(noise) { rng.random_range(0..used) } else { truly };
        labels.push(given);
    }
    (labels, probs)
}

#[test]
fn the_same_images_are_flagged_and_scored_as_cleanlab_does() {
    let cases = [
        ("2 classes, 60 images", case(1, 60, 2, 2.0, 0.2, false)),
        ("3 classes, 300 images", case(2, 300, 3, 2.5, 0.1, false)),
        ("5 classes, 1000 images", case(3, 1000, 5, 3.0, 0.1, false)),
        ("10 classes, 2000 images, weak model", case(4, 2000, 10, 1.5, 0.15, false)),
        ("4 classes, one with no image", case(5, 400, 4, 2.5, 0.1, true)),
        ("3 classes, 12 images", case(6, 12, 3, 2.0, 0.3, false)),
    ];
    let input: Vec<Value> = cases.iter().map(|(_, (l, p))| json!({ "labels": l, "probs": p })).collect();
    let theirs = reference("cleanlab_label_issues.py", &Value::from(input));
    let theirs = theirs.as_array().unwrap();
    let mut flagged_in_all = 0;
    for ((name, (labels, probs)), reference) in cases.iter().zip(theirs) {
        let ours = cvtk_audit::find_label_issues(labels, probs).unwrap();
        let expected: Vec<bool> =
            reference["flagged"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
        let differ: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != expected[i]).collect();
        assert!(differ.is_empty(), "{name}: flags differ from cleanlab's at images {differ:?}");
        flagged_in_all += ours.iter().filter(|f| **f).count();

        let quality = cvtk_audit::label_quality_scores(labels, probs).unwrap();
        let expected: Vec<f64> = reference["quality"].as_array().unwrap().iter().map(|q| q.as_f64().unwrap()).collect();
        assert_eq!(quality, expected, "{name}: label-quality scores differ from cleanlab's");

        // The ranked issues are the flagged images, worst quality first.
        let issues = cvtk_audit::label_issues(labels, probs).unwrap();
        assert_eq!(issues.len(), ours.iter().filter(|f| **f).count(), "{name}");
        assert!(issues.windows(2).all(|w| w[0].quality <= w[1].quality), "{name}: not worst first");
        for issue in &issues {
            assert_ne!(issue.suggested, issue.given, "{name}: image {} suggested its own label", issue.index);
        }
    }
    assert!(flagged_in_all > 100, "the cases flag too few images ({flagged_in_all}) to compare much");
}
