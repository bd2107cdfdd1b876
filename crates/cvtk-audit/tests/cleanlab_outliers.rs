//! Cross-check against cleanlab 2.9: on the same features, the nearest
//! neighbours are cleanlab's (scikit-learn's cosine search), the outlier
//! scores are `OutOfDistribution().fit_score`'s and the flagged images
//! Datalab's outlier issue's. Reference: tests/reference/cleanlab_outliers.py.

use cvtk_audit::neighbours::search;
use cvtk_audit::outliers::outlier_scores;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

use crate::python::reference;

/// `n` points in `dim` dimensions around `clusters` centres, plus `far` points
/// around a centre of their own each, plus `copies` exact copies of point 0.
fn case(seed: u64, n: usize, dim: usize, clusters: usize, far: usize, copies: usize) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> =
        (0..clusters + far).map(|_| (0..dim).map(|_| 3.0 * normal.sample(&mut rng)).collect()).collect();
    let mut rows = Vec::new();
    for i in 0..n + far {
        let c = if i < n { rng.random_range(0..clusters) } else { clusters + i - n };
        rows.push(centres[c].iter().map(|&m| m + normal.sample(&mut rng)).collect::<Vec<f32>>());
    }
    for _ in 0..copies {
        rows.push(rows[0].clone());
    }
    Array2::from_shape_vec((rows.len(), dim), rows.concat()).unwrap()
}

#[test]
fn the_same_neighbours_scores_and_outliers_as_cleanlab() {
    let cases = [
        ("300 points, 3 clusters, 4 far", case(1, 300, 16, 3, 4, 0)),
        ("200 points, 5 clusters, 2 far, 3 copies", case(2, 200, 32, 5, 2, 3)),
        ("8 points", case(3, 6, 8, 2, 2, 0)),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|(_, x)| json!({ "features": x.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>() }))
        .collect();
    let theirs = reference("cleanlab_outliers.py", &Value::from(input));
    let theirs = theirs.as_array().unwrap();
    let mut outliers = 0;
    for ((name, x), reference) in cases.iter().zip(theirs) {
        let (neighbours, _) = search(x.view(), 10, 1.0, |_, _, _| false);
        let ours = outlier_scores(&neighbours);
        let column = |key: &str| -> Vec<Value> { reference[key].as_array().unwrap().clone() };
        for (i, (row, dist)) in column("neighbours").iter().zip(column("distances")).enumerate() {
            let theirs: Vec<(usize, f64)> = row
                .as_array()
                .unwrap()
                .iter()
                .zip(dist.as_array().unwrap())
                .map(|(j, d)| (j.as_u64().unwrap() as usize, d.as_f64().unwrap()))
                .collect();
            let mine: Vec<(usize, f32)> = neighbours.of(i).collect();
            assert_eq!(mine.len(), theirs.len(), "{name}: image {i}'s neighbour count");
            for (k, ((j, d), (tj, td))) in mine.iter().zip(&theirs).enumerate() {
                assert!((f64::from(*d) - td).abs() < 1e-5, "{name}: image {i}, neighbour {k}: distance {d} vs {td}");
                // The same image unless two are equally near.
                if j != tj {
                    // A tie: cleanlab's list has another image as near.
                    let tie = theirs.iter().enumerate().any(|(o, (_, od))| o != k && (od - td).abs() < 1e-5);
                    assert!(tie, "{name}: image {i}, neighbour {k}: {j} vs cleanlab's {tj}");
                }
            }
        }
        for (i, s) in column("scores").iter().enumerate() {
            let s = s.as_f64().unwrap();
            assert!((ours.scores[i] - s).abs() < 1e-5, "{name}: image {i}: score {} vs cleanlab's {s}", ours.scores[i]);
        }
        let flagged: Vec<bool> = column("flagged").iter().map(|b| b.as_bool().unwrap()).collect();
        for (i, &f) in flagged.iter().enumerate() {
            assert_eq!(ours.is_outlier(i), f, "{name}: image {i} (mean distance {})", ours.mean_distances[i]);
        }
        outliers += flagged.iter().filter(|f| **f).count();
    }
    assert!(outliers >= 4, "the cases have too few outliers ({outliers}) to compare");
}
