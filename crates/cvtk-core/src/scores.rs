//! What a classifier says about a dataset's images: [`Scores`] (one row per
//! image, one column per label) and their [`ScoreKind`] (logits, decision
//! values or probabilities, and how raw scores become probabilities). They are
//! the vocabulary shared by the crates that make scores (cvtk-model), judge
//! them (cvtk-eval) and serve them (cvtk-deploy).

use serde::{Deserialize, Serialize};

/// What a row of scores holds, and how it becomes probabilities.
///
/// Serialised with a `kind` tag: `{"kind": "logits", "temperature": 1.0}`,
/// `{"kind": "decision", "temperature": 0.21}`, `{"kind": "probabilities"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScoreKind {
    /// A network's logits; probabilities are `softmax(logits / temperature)`
    /// (1 unless the model was calibrated).
    Logits {
        /// The calibration temperature.
        temperature: f32,
    },
    /// A linear SVM's decision values; probabilities are
    /// `softmax(values / temperature)`, with the temperature fitted when the
    /// SVM was trained.
    Decision {
        /// The calibration temperature.
        temperature: f32,
    },
    /// Probabilities: each row is already in `[0, 1]` and sums to 1.
    Probabilities,
}

impl ScoreKind {
    /// Uncalibrated logits (temperature 1).
    pub const LOGITS: ScoreKind = ScoreKind::Logits { temperature: 1.0 };

    /// `logits`, `decision` or `probabilities`.
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Logits { .. } => "logits",
            ScoreKind::Decision { .. } => "decision",
            ScoreKind::Probabilities => "probabilities",
        }
    }

    /// Whether the scores are probabilities already.
    pub fn is_probabilities(self) -> bool {
        self == ScoreKind::Probabilities
    }

    /// The temperature raw scores are divided by before the softmax.
    pub fn temperature(self) -> Option<f32> {
        match self {
            ScoreKind::Logits { temperature } | ScoreKind::Decision { temperature } => Some(temperature),
            ScoreKind::Probabilities => None,
        }
    }

    /// One row of these scores as probabilities, in f64 (for metrics).
    pub fn probabilities_f64(self, row: &[f32]) -> Vec<f64> {
        match self.temperature() {
            Some(t) => softmax(row, t),
            None => row.iter().map(|&v| f64::from(v)).collect(),
        }
    }

    /// One row of these scores as probabilities.
    pub fn probabilities(self, row: &[f32]) -> Vec<f32> {
        match self.temperature() {
            Some(t) => softmax(row, t).into_iter().map(|p| p as f32).collect(),
            None => row.to_vec(),
        }
    }

    /// Checks a row said to be of this kind: probabilities must lie in
    /// `[0, 1]` and sum to 1 (within 1e-3). The error says what is wrong.
    pub fn check_row(self, row: &[f32]) -> std::result::Result<(), String> {
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(format!("holds {v}; scores must be finite (did training diverge?)"));
        }
        if self.is_probabilities() {
            if let Some(v) = row.iter().find(|v| !(-1e-6..=1.0 + 1e-6).contains(*v)) {
                return Err(format!("holds {v}, which is not a probability; pass the kind these scores really are"));
            }
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            if (sum - 1.0).abs() > 1e-3 {
                return Err(format!(
                    "sums to {sum:.4}, not 1; these are not probabilities (pass the kind these scores really are)"
                ));
            }
        }
        Ok(())
    }
}

/// For people: `logits at temperature 1`, `decision values at temperature
/// 0.183`, `given probabilities`.
impl std::fmt::Display for ScoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScoreKind::Logits { temperature } => write!(f, "logits at temperature {temperature:.4}"),
            ScoreKind::Decision { temperature } => write!(f, "decision values at temperature {temperature:.4}"),
            ScoreKind::Probabilities => f.write_str("given probabilities"),
        }
    }
}

/// `softmax(row / temperature)`, computed in f64.
pub fn softmax(row: &[f32], temperature: f32) -> Vec<f64> {
    let t = f64::from(temperature);
    let scaled: Vec<f64> = row.iter().map(|&v| f64::from(v) / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Scores of a set of images: one row per image, one column per label, and
/// what kind of scores they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Label names, in column order.
    pub labels: Vec<String>,
    /// Image ids, in row order.
    pub ids: Vec<u64>,
    /// The images' true label indices (from the dataset), in row order.
    pub true_labels: Vec<usize>,
    /// Scores, `[images][labels]`, of kind [`Self::kind`].
    pub values: Vec<Vec<f32>>,
    /// What `values` holds (logits, decision values or probabilities) and how
    /// raw scores become probabilities: see [`Self::probabilities`].
    pub kind: ScoreKind,
}

impl Scores {
    /// These scores as probabilities: converted once through [`Self::kind`]
    /// (its calibration temperature included), or returned as they are when
    /// they are probabilities already.
    pub fn probabilities(&self) -> Scores {
        if self.kind.is_probabilities() {
            return self.clone();
        }
        Scores {
            values: self.values.iter().map(|row| self.kind.probabilities(row)).collect(),
            kind: ScoreKind::Probabilities,
            ..self.clone()
        }
    }

    /// The index of the highest score of each row (the first, on ties).
    pub fn predicted(&self) -> Vec<usize> {
        self.values.iter().map(|row| first_max(row)).collect()
    }

    /// Fraction of rows whose highest score is the true label.
    pub fn accuracy(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        let right = self.predicted().iter().zip(&self.true_labels).filter(|(p, t)| p == t).count();
        right as f64 / self.values.len() as f64
    }
}

/// The indices of the `k` highest values of `row`, highest first; ties keep
/// index order (so the first is [`first_max`]). The one top-k of cvtk: every
/// output that ranks labels ranks them through it.
pub fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// A label and its calibrated probability: one entry of a prediction's
/// `top`, the shape every output gives a prediction in (`cvtk predict
/// --json`, `cvtk score`'s rows, `/score`'s results, the annotation page).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranked {
    /// The label.
    pub label: String,
    /// Its calibrated probability, in [0, 1].
    pub probability: f32,
}

impl Ranked {
    /// The `k` most probable of `labels` (`probabilities` in label order),
    /// best first; ties keep label order.
    pub fn top(labels: &[String], probabilities: &[f32], k: usize) -> Vec<Ranked> {
        let n = probabilities.len().min(labels.len());
        top_k(&probabilities[..n], k)
            .into_iter()
            .map(|i| Ranked { label: labels[i].clone(), probability: probabilities[i] })
            .collect()
    }
}

/// Index of the first highest value (numpy's `argmax`: ties go to the lower index).
pub fn first_max(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_kinds_convert_to_probabilities_once() {
        let row = [2.0f32, 0.0, -1.0];
        let p = ScoreKind::LOGITS.probabilities(&row);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Probabilities stay as they are: converting twice changes nothing.
        assert_eq!(ScoreKind::Probabilities.probabilities(&p), p);
        // A temperature above 1 softens, below 1 sharpens, never reorders.
        let soft = ScoreKind::Logits { temperature: 2.0 }.probabilities(&row);
        let sharp = ScoreKind::Decision { temperature: 0.5 }.probabilities(&row);
        assert!(soft[0] < p[0] && p[0] < sharp[0]);
        assert!(soft[0] > soft[1] && soft[1] > soft[2]);
        // softmax([2, 0, -1] / 2) by hand: e^1, e^0, e^-0.5 over their sum.
        let e = [1f64.exp(), 1.0, (-0.5f64).exp()];
        assert!((f64::from(soft[0]) - e[0] / e.iter().sum::<f64>()).abs() < 1e-6);
    }

    #[test]
    fn rows_said_to_be_probabilities_must_be_probabilities() {
        assert!(ScoreKind::Probabilities.check_row(&[0.25, 0.75]).is_ok());
        let e = ScoreKind::Probabilities.check_row(&[2.0, -1.0]).unwrap_err();
        assert!(e.contains("not a probability"), "{e}");
        let e = ScoreKind::Probabilities.check_row(&[0.5, 0.2]).unwrap_err();
        assert!(e.contains("sums to 0.7000"), "{e}");
        assert!(ScoreKind::LOGITS.check_row(&[2.0, -1.0]).is_ok());
        assert!(ScoreKind::LOGITS.check_row(&[f32::NAN, 0.0]).unwrap_err().contains("NaN"));
    }

    #[test]
    fn score_kinds_serialise_with_a_tag() {
        let json = serde_json::to_string(&ScoreKind::Decision { temperature: 0.5 }).unwrap();
        assert_eq!(json, r#"{"kind":"decision","temperature":0.5}"#);
        assert_eq!(serde_json::to_string(&ScoreKind::Probabilities).unwrap(), r#"{"kind":"probabilities"}"#);
        let back: ScoreKind = serde_json::from_str(r#"{"kind":"logits","temperature":1.0}"#).unwrap();
        assert_eq!(back, ScoreKind::LOGITS);
    }

    #[test]
    fn ties_go_to_the_first_label_like_numpy_argmax() {
        assert_eq!(first_max(&[0.5, 0.5, 0.1]), 0);
        assert_eq!(first_max(&[0.1, 0.9, 0.9]), 1);
        assert_eq!(first_max(&[]), 0);
    }
}
