//! Confidences that mean what they say.
//!
//! - [`ScoreKind`]: what a score matrix holds (a network's logits, an SVM's
//!   decision values, or probabilities) and, for raw scores, the temperature
//!   that turns them into probabilities. Every place that shows a confidence
//!   converts through it, exactly once.
//! - [`fit_temperature`]: temperature scaling (Guo et al., 2017, "On
//!   Calibration of Modern Neural Networks", <https://arxiv.org/abs/1706.04599>):
//!   the one number `T` that minimises the negative log-likelihood of
//!   `softmax(scores / T)` on held-out images. Dividing by `T` never changes
//!   which label scores highest, only how sure the model says it is.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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

/// The result of [`fit_temperature`], kept in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    /// The fitted temperature: scores are divided by it before the softmax.
    pub temperature: f32,
    /// How many held-out images it was fitted on.
    pub images: usize,
    /// Mean negative log-likelihood of those images at temperature 1.
    pub nll_before: f64,
    /// The same at the fitted temperature.
    pub nll_after: f64,
}

/// Smallest and largest temperature [`fit_temperature`] considers.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.01, 100.0);

/// Mean negative log-likelihood of `softmax(values / t)` for the true labels.
pub fn mean_nll(values: &[Vec<f32>], labels: &[usize], t: f64) -> f64 {
    let beta = 1.0 / t;
    let total: f64 = values
        .iter()
        .zip(labels)
        .map(|(row, &y)| {
            let z: Vec<f64> = row.iter().map(|&v| beta * f64::from(v)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - z.get(y).copied().unwrap_or(f64::NEG_INFINITY)
        })
        .sum();
    total / values.len().max(1) as f64
}

/// Fits the temperature that minimises the mean negative log-likelihood of
/// `softmax(values / T)` for `labels` (raw scores of held-out images and their
/// true label indices). The likelihood is convex in `1 / T`, so a golden-section
/// search over `log T` in [`TEMPERATURE_RANGE`] finds the optimum.
pub fn fit_temperature(values: &[Vec<f32>], labels: &[usize]) -> Result<TemperatureFit> {
    if values.is_empty() || values.len() != labels.len() {
        return Err(Error::InvalidInput(format!(
            "temperature scaling needs held-out images with labels; got {} score rows and {} labels",
            values.len(),
            labels.len()
        )));
    }
    if let Some((i, row)) = values.iter().enumerate().find(|(_, r)| r.iter().any(|v| !v.is_finite())) {
        return Err(Error::InvalidInput(format!("score row {i} is not finite ({row:?})")));
    }
    if let Some((i, &y)) = labels.iter().enumerate().find(|(i, &y)| y >= values[*i].len()) {
        return Err(Error::InvalidInput(format!("held-out image {i} has label index {y}, beyond its scores")));
    }
    let f = |log_t: f64| mean_nll(values, labels, log_t.exp());
    let (mut a, mut b) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - ratio * (b - a), a + ratio * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    let t = ((a + b) / 2.0).exp();
    Ok(TemperatureFit {
        temperature: t as f32,
        images: values.len(),
        nll_before: mean_nll(values, labels, 1.0),
        nll_after: mean_nll(values, labels, t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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

    /// Labels drawn from softmax(z / 2): the fitted temperature is close to 2.
    #[test]
    fn temperature_scaling_recovers_the_temperature_labels_were_drawn_at() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let z: Vec<f32> = (0..4).map(|_| rng.random_range(-6.0f32..6.0)).collect();
            let p = softmax(&z, 2.0);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let y = p.iter().position(|pi| {
                acc += pi;
                u < acc
            });
            labels.push(y.unwrap_or(3));
            values.push(z);
        }
        let fit = fit_temperature(&values, &labels).unwrap();
        assert!((fit.temperature - 2.0).abs() < 0.1, "{fit:?}");
        assert!(fit.nll_after < fit.nll_before, "{fit:?}");
        // The optimum: nudging the temperature either way does not help.
        let t = f64::from(fit.temperature);
        for other in [t * 0.9, t * 1.1] {
            assert!(mean_nll(&values, &labels, other) >= fit.nll_after - 1e-9);
        }
    }

    #[test]
    fn temperature_scaling_rejects_what_it_cannot_fit() {
        assert!(fit_temperature(&[], &[]).is_err());
        assert!(fit_temperature(&[vec![1.0, 0.0]], &[2]).unwrap_err().to_string().contains("label index 2"));
        assert!(fit_temperature(&[vec![f32::NAN, 0.0]], &[0]).unwrap_err().to_string().contains("not finite"));
    }
}
