//! Label issues by confident learning, as cleanlab 2.9 finds them with its
//! defaults (`cleanlab.filter.find_label_issues(labels, pred_probs)`:
//! `filter_by="prune_by_noise_rate"`, `frac_noise=1`,
//! `min_examples_per_class=1`), and label-quality scores as
//! `cleanlab.rank.get_label_quality_scores` gives them (`self_confidence`).
//!
//! The steps, each as cleanlab takes it:
//! 1. a threshold per class: the mean probability of the class over the
//!    images labelled with it;
//! 2. the confident joint: each image counted under its given label and the
//!    class it is confidently in (the one over its threshold, or the most
//!    probable of several), at least one per diagonal cell, calibrated so each
//!    row sums to the label's count (rounded preserving row totals);
//! 3. pruning by noise rate: for each given label `k` and other class `j`,
//!    the joint's count of "labelled `k`, truly `j`" images, taken by the
//!    largest margin `p(j) - p(k)`;
//! 4. an image the model itself puts in its given class (within 1e-6) is
//!    never flagged.
//!
//! Ties (equal margins, equal rounding remainders) are broken in image
//! order, as a stable sort orders them; cleanlab leaves them to numpy's
//! default sort, whose order of ties varies with the CPU.
//!
//! The probabilities must be out-of-sample (each image scored by a model that
//! did not train on it): on its own training images a model agrees with every
//! label it memorised.

use serde::Serialize;

use crate::{Error, Result};

/// Probabilities closer than this count as equal (cleanlab's value).
const FLOATING_POINT_COMPARISON: f64 = 1e-6;
/// The lowest per-class threshold (cleanlab's value).
const CONFIDENT_THRESHOLDS_LOWER_BOUND: f64 = 2.0 * FLOATING_POINT_COMPARISON;
/// A class no image is labelled with gets a threshold no probability reaches.
const MISSING_CLASS_THRESHOLD: f64 = 2.0;
/// Guards a division by an empty row.
const TINY_VALUE: f64 = 1e-100;

/// One image whose given label is likely wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelIssue {
    /// The image's position in the labels given.
    pub index: usize,
    /// The label it has.
    pub given: usize,
    /// The label the model finds most probable.
    pub suggested: usize,
    /// That label's probability.
    pub suggested_probability: f64,
    /// The label's quality: the probability of the given label (lower is worse).
    pub quality: f64,
}

/// The images whose labels are likely wrong, worst first (lowest
/// [`quality`](LabelIssue::quality), then position), each with the label the
/// model suggests. `labels[i]` is image `i`'s class, `probs[i]` its
/// out-of-sample probabilities, one per class.
pub fn label_issues(labels: &[usize], probs: &[Vec<f64>]) -> Result<Vec<LabelIssue>> {
    let flagged = find_label_issues(labels, probs)?;
    let mut issues: Vec<LabelIssue> = flagged
        .iter()
        .enumerate()
        .filter(|(_, f)| **f)
        .map(|(index, _)| {
            let row = &probs[index];
            let suggested = argmax(row);
            LabelIssue {
                index,
                given: labels[index],
                suggested,
                suggested_probability: row[suggested],
                quality: row[labels[index]],
            }
        })
        .collect();
    issues.sort_by(|a, b| a.quality.total_cmp(&b.quality).then(a.index.cmp(&b.index)));
    Ok(issues)
}

/// Whether each image's label is likely wrong: cleanlab's
/// `find_label_issues(labels, pred_probs)` with its defaults.
pub fn find_label_issues(labels: &[usize], probs: &[Vec<f64>]) -> Result<Vec<bool>> {
    let k = check(labels, probs)?;
    let (joint, _) = confident_joint(labels, probs, k);
    let prune = keep_at_least_one_per_class(&transpose(&joint));
    let mut flagged = vec![false; labels.len()];
    for given in 0..k {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == given).collect();
        // cleanlab leaves a class of one image alone (min_examples_per_class).
        if members.len() <= 1 {
            continue;
        }
        for (truly, counts) in prune.iter().enumerate() {
            let count = counts[given];
            if truly == given || count <= 0 {
                continue;
            }
            // The largest margins p(truly) - p(given) first; equal margins in
            // image order.
            let mut order = members.clone();
            order.sort_by(|&a, &b| {
                let margin = |i: usize| probs[i][truly] - probs[i][given];
                margin(b).total_cmp(&margin(a))
            });
            for &i in order.iter().take(count as usize) {
                flagged[i] = true;
            }
        }
    }
    // An image the model puts in its given class is not an issue.
    for (i, flag) in flagged.iter_mut().enumerate() {
        let mut row = probs[i].clone();
        row[labels[i]] += FLOATING_POINT_COMPARISON;
        if argmax(&row) == labels[i] {
            *flag = false;
        }
    }
    Ok(flagged)
}

/// Each image's label quality: the probability of its given label
/// (cleanlab's `self_confidence`, its default).
pub fn label_quality_scores(labels: &[usize], probs: &[Vec<f64>]) -> Result<Vec<f64>> {
    check(labels, probs)?;
    Ok(labels.iter().zip(probs).map(|(&l, row)| row[l]).collect())
}

/// The number of classes, after checking that the labels and probabilities
/// fit together.
fn check(labels: &[usize], probs: &[Vec<f64>]) -> Result<usize> {
    if labels.len() != probs.len() {
        return Err(Error::Invalid(format!(
            "{} labels but {} rows of probabilities; give one row per image",
            labels.len(),
            probs.len()
        )));
    }
    let Some(first) = probs.first() else {
        return Err(Error::Invalid("no images".into()));
    };
    let k = first.len();
    if k < 2 {
        return Err(Error::Invalid(format!("{k} class; a label can only be wrong among two or more")));
    }
    for (i, (&label, row)) in labels.iter().zip(probs).enumerate() {
        if row.len() != k {
            return Err(Error::Invalid(format!("image {i} has {} probabilities, the first has {k}", row.len())));
        }
        if let Some(p) = row.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(Error::Invalid(format!("image {i} has probability {p}, outside [0, 1]")));
        }
        if label >= k {
            return Err(Error::Invalid(format!("image {i} has label {label}, but there are {k} classes")));
        }
    }
    Ok(k)
}

/// The first largest value's position (numpy's `argmax`).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, p) in row.iter().enumerate() {
        if *p > row[best] {
            best = i;
        }
    }
    best
}

/// Per class, the mean probability of the class over the images labelled
/// with it (cleanlab's `get_confident_thresholds`).
fn confident_thresholds(labels: &[usize], probs: &[Vec<f64>], k: usize) -> Vec<f64> {
    (0..k)
        .map(|c| {
            let values: Vec<f64> = labels.iter().zip(probs).filter(|(l, _)| **l == c).map(|(_, row)| row[c]).collect();
            let threshold =
                if values.is_empty() { MISSING_CLASS_THRESHOLD } else { numpy_sum(&values) / values.len() as f64 };
            threshold.max(CONFIDENT_THRESHOLDS_LOWER_BOUND)
        })
        .collect()
}

/// The calibrated confident joint, `joint[given][truly]`, and the images
/// counted off its diagonal (cleanlab's `compute_confident_joint`).
fn confident_joint(labels: &[usize], probs: &[Vec<f64>], k: usize) -> (Vec<Vec<i64>>, Vec<usize>) {
    let thresholds = confident_thresholds(labels, probs, k);
    let mut joint = vec![vec![0i64; k]; k];
    let mut off_diagonal = Vec::new();
    for (i, (&given, row)) in labels.iter().zip(probs).enumerate() {
        let confident: Vec<usize> = (0..k).filter(|&c| row[c] >= thresholds[c] - 1e-6).collect();
        let truly = match confident.as_slice() {
            [] => continue,
            [one] => *one,
            _ => argmax(row),
        };
        joint[given][truly] += 1;
        if truly != given {
            off_diagonal.push(i);
        }
    }
    for (c, row) in joint.iter_mut().enumerate() {
        row[c] = row[c].max(1);
    }
    (calibrate(&joint, labels, k), off_diagonal)
}

/// The joint scaled so that each row sums to its label's count and the whole
/// to the number of images, rounded preserving row totals.
fn calibrate(joint: &[Vec<i64>], labels: &[usize], k: usize) -> Vec<Vec<i64>> {
    let mut counts = vec![0.0f64; k];
    for &l in labels {
        counts[l] += 1.0;
    }
    let mut scaled: Vec<Vec<f64>> = joint
        .iter()
        .zip(&counts)
        .map(|(row, &count)| {
            let total = (row.iter().sum::<i64>() as f64).max(TINY_VALUE);
            row.iter().map(|&v| v as f64 / total * count).collect()
        })
        .collect();
    let flat: Vec<f64> = scaled.iter().flatten().copied().collect();
    let total = numpy_sum(&flat).max(TINY_VALUE);
    let images = numpy_sum(&counts);
    for v in scaled.iter_mut().flatten() {
        *v = *v / total * images;
    }
    scaled.iter().map(|row| round_preserving_sum(row)).collect()
}

/// Rounds `values` to integers that add up to their rounded sum: the
/// roundings that went furthest the wrong way are moved one step (cleanlab's
/// `round_preserving_sum`, numpy's half-to-even rounding included).
fn round_preserving_sum(values: &[f64]) -> Vec<i64> {
    let mut ints: Vec<f64> = values.iter().map(|v| v.round_ties_even()).collect();
    let target = numpy_sum(values).round_ties_even();
    loop {
        let sum = numpy_sum(&ints).round_ties_even();
        if (sum - target).abs() <= FLOATING_POINT_COMPARISON {
            break;
        }
        let diff = (target - sum).round_ties_even();
        let step = if diff < 0.0 { -1.0 } else { 1.0 };
        let changes = (diff.abs() as usize).min(values.len());
        // Ascending by how far each was rounded down, as a stable sort orders
        // them; reversed when adding, so the most rounded-down go first.
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| (values[a] - ints[a]).total_cmp(&(values[b] - ints[b])));
        if step > 0.0 {
            order.reverse();
        }
        for &i in order.iter().take(changes) {
            ints[i] += step;
        }
    }
    ints.iter().map(|v| *v as i64).collect()
}

/// The count matrix to prune by, `prune[truly][given]`: the transposed joint
/// with at least one image kept correctly labelled per class (cleanlab's
/// `_keep_at_least_n_per_class` with n = 1 and `frac_noise` = 1).
fn keep_at_least_one_per_class(prune: &[Vec<i64>]) -> Vec<Vec<i64>> {
    let k = prune.len();
    let mut out = vec![vec![0.0f64; k]; k];
    for j in 0..k {
        let diagonal = prune[j][j] as f64;
        let raised = diagonal.max(1.0);
        let nonzero = (0..k).filter(|&i| prune[i][j] != 0).count() as f64;
        let per_cell = (raised - diagonal) / (nonzero - 1.0).max(1.0);
        for (i, row) in out.iter_mut().enumerate() {
            row[j] = if i == j { raised } else { (prune[i][j] as f64 - per_cell).max(0.0) };
        }
    }
    // numpy's astype(int): toward zero.
    out.iter().map(|row| row.iter().map(|v| v.trunc() as i64).collect()).collect()
}

fn transpose(m: &[Vec<i64>]) -> Vec<Vec<i64>> {
    (0..m.len()).map(|j| m.iter().map(|row| row[j]).collect()).collect()
}

/// A sum as numpy's `add.reduce` takes it over a contiguous float64 array
/// (pairwise summation from 0: blocks of 128 with eight accumulators), so
/// that means and totals agree with cleanlab's to the last bit.
fn numpy_sum(values: &[f64]) -> f64 {
    pairwise_sum(values)
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[whole..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_the_row_total() {
        // Ties go to the last (numpy: a stable argsort, reversed).
        assert_eq!(round_preserving_sum(&[0.4, 0.4, 0.4, 1.8]), [0, 0, 1, 2]);
        assert_eq!(round_preserving_sum(&[2.5, 0.5, 1.0]), [2, 1, 1]);
        let r = round_preserving_sum(&[1.0 / 3.0; 9]);
        assert_eq!(r.iter().sum::<i64>(), 3);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let e = |labels: &[usize], probs: &[Vec<f64>]| find_label_issues(labels, probs).unwrap_err().to_string();
        assert!(e(&[0], &[]).contains("1 labels but 0 rows"));
        assert!(e(&[], &[]).contains("no images"));
        assert!(e(&[0], &[vec![1.0]]).contains("two or more"));
        assert!(e(&[0, 1], &[vec![0.5, 0.5], vec![1.0]]).contains("image 1 has 1 probabilities"));
        assert!(e(&[0], &[vec![1.5, -0.5]]).contains("outside [0, 1]"));
        assert!(e(&[0], &[vec![f64::NAN, 0.5]]).contains("outside [0, 1]"));
        assert!(e(&[2], &[vec![0.5, 0.5]]).contains("label 2, but there are 2 classes"));
    }

    #[test]
    fn a_class_of_one_image_and_a_class_with_no_image_are_handled() {
        // Class 2 has no image; class 1 one image, which is never flagged.
        let labels = [0, 0, 0, 1];
        let probs = vec![vec![0.9, 0.05, 0.05], vec![0.8, 0.1, 0.1], vec![0.1, 0.85, 0.05], vec![0.9, 0.05, 0.05]];
        let flagged = find_label_issues(&labels, &probs).unwrap();
        assert_eq!(flagged, [false, false, true, false]);
    }

    #[test]
    fn the_pairwise_sum_is_a_sum() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(numpy_sum(&v), 499_500.0);
        assert_eq!(numpy_sum(&v[..5]), 10.0);
        assert_eq!(numpy_sum(&[]), 0.0);
    }
}
