//! Outliers: images far from every other image in feature space, scored and
//! flagged the way cleanlab's Datalab does with features (its
//! `OutOfDistribution` score, its outlier issue's fence), and images whose
//! nearest neighbours carry another label.
//!
//! The score of an image is `exp(-d / median(d))`, `d` its mean cosine
//! distance to its `k = 10` nearest other images (fewer when there are fewer
//! images): 1 for an image among copies of itself, `1/e` for a typical one,
//! near 0 far from everything. An image is an outlier when its `d` is above
//! `Q3 + 1.7 IQR` of all images' `d` (Datalab's default fence, threshold
//! 0.37037).

use crate::neighbours::Neighbours;
use crate::stats::{median, percentile};

/// cleanlab's floor on the median distance (`EPSILON`).
const MIN_SCALE: f64 = 1e-6;
/// Below this mean cosine distance the score is exactly 1 (cleanlab's
/// correction for rounding: `100 * 2^-53`).
const COSINE_ZERO: f64 = 100.0 * f64::EPSILON / 2.0;
/// Datalab's default outlier threshold: the fence is `Q3 + (1/t - 1) IQR`.
const THRESHOLD: f64 = 0.37037;

/// Every image's outlier score, and whether it is an outlier.
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierScores {
    /// Per image, in (0, 1]: lower is farther from the others.
    pub scores: Vec<f64>,
    /// Per image, its mean distance to its nearest neighbours.
    pub mean_distances: Vec<f64>,
    /// Mean distances above this are outliers (`Q3 + 1.7 IQR`); none when
    /// the spread is zero.
    pub fence: Option<f64>,
}

impl OutlierScores {
    /// Whether image `i` is an outlier.
    pub fn is_outlier(&self, i: usize) -> bool {
        self.fence.is_some_and(|fence| self.mean_distances[i] > fence)
    }
}

/// Outlier scores from each image's neighbours (cleanlab's
/// `OutOfDistribution().fit_score(features=...)`, to rounding), and
/// Datalab's fence on the mean distances.
pub fn outlier_scores(neighbours: &Neighbours) -> OutlierScores {
    let mean_distances: Vec<f64> = (0..neighbours.len()).map(|i| neighbours.mean_distance(i)).collect();
    let scale = median(&mean_distances).max(100.0 * f64::EPSILON).max(MIN_SCALE);
    let scores = mean_distances.iter().map(|&d| if d < COSINE_ZERO { 1.0 } else { (-d / scale).exp() }).collect();
    let q1 = percentile(&mean_distances, 25.0);
    let q3 = percentile(&mean_distances, 75.0);
    let iqr = q3 - q1;
    let fence = (iqr > 0.0).then(|| q3 + (1.0 / THRESHOLD - 1.0) * iqr);
    OutlierScores { scores, mean_distances, fence }
}

/// For each image, the fraction of its nearest neighbours that carry each
/// label: the "probabilities" of a k-nearest-neighbour vote that leaves the
/// image itself out (Datalab's label check when it has features and no
/// model). Confident learning on them finds the images whose neighbours
/// disagree with their label.
pub fn neighbour_votes(neighbours: &Neighbours, labels: &[usize], classes: usize) -> Vec<Vec<f64>> {
    (0..neighbours.len())
        .map(|i| {
            let mut votes = vec![0.0; classes];
            for (j, _) in neighbours.of(i) {
                votes[labels[j]] += 1.0;
            }
            let k = neighbours.k().max(1) as f64;
            votes.iter_mut().for_each(|v| *v /= k);
            votes
        })
        .collect()
}
