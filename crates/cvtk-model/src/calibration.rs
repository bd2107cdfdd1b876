//! Confidences that mean what they say: [`fit_temperature`] finds the
//! temperature that a classifier's [`ScoreKind`](cvtk_core::ScoreKind) then carries.
//!
//! - [`fit_temperature`]: temperature scaling (Guo et al., 2017, "On
//!   Calibration of Modern Neural Networks", <https://arxiv.org/abs/1706.04599>):
//!   the one number `T` that minimises the negative log-likelihood of
//!   `softmax(scores / T)` on held-out images. Dividing by `T` never changes
//!   which label scores highest, only how sure the model says it is.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
    use cvtk_core::scores::softmax;
    use rand::{Rng, SeedableRng};

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
