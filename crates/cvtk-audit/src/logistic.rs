//! Multinomial logistic regression, as scikit-learn's `LogisticRegression`
//! fits it by default: the mean log-loss of `softmax(x·W + b)` plus
//! `‖W‖² / (2·C·n)` (the intercept unpenalised; with two labels, the binary
//! model's penalty), minimised by L-BFGS until no gradient component exceeds
//! `1e-4` or the iterations run out.
//!
//! Written here rather than taken from linfa-logistic: that crate minimises
//! the summed loss in the features' float type, and on 40,000 rows of
//! 1,280 features its first L-BFGS step overflowed and it returned a model of
//! zeros without an error. Here the objective is the mean, accumulated in
//! f64, each evaluation is two f32 matrix products (the logits, then the
//! gradient), and a line search that cannot improve ends the fit with the
//! best model so far instead of failing it.

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

use crate::{Error, Result};

/// L-BFGS's memory: the last 10 steps (scikit-learn's, through SciPy).
const MEMORY: usize = 10;
/// The largest gradient component at which the fit has converged by default
/// (scikit-learn's `tol`).
pub const TOLERANCE: f64 = 1e-4;
/// Armijo's sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;
/// Halvings of the step before the line search gives up.
const HALVINGS: usize = 40;

/// A fitted model: `logits = x·weights + intercept`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticModel {
    /// One column per label (features × labels).
    pub weights: Array2<f32>,
    /// One per label.
    pub intercept: Array1<f32>,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// Whether the gradient fell below the tolerance (rather than the
    /// iterations running out or the line search stalling).
    pub converged: bool,
}

impl LogisticModel {
    /// The logits of each row of `x` (rows × labels).
    pub fn logits(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        x.dot(&self.weights) + &self.intercept
    }
}

/// Fits the model to rows `x` with label indices `y` (each below `classes`),
/// with penalty `1 / c`, until no gradient component exceeds `tolerance`
/// ([`TOLERANCE`] by default), the line search cannot improve (the limit of
/// f32 logits), or `max_iterations` L-BFGS iterations have run.
/// Refuses rows and labels of different counts, a label not below
/// `classes`, values that are not finite and a `c` that is not positive.
pub fn fit<'a>(
    x: ArrayView2<'a, f32>,
    y: &'a [usize],
    classes: usize,
    c: f64,
    max_iterations: usize,
    tolerance: f64,
) -> Result<LogisticModel> {
    if y.len() != x.nrows() {
        return Err(Error::Invalid(format!("{} rows but {} labels", x.nrows(), y.len())));
    }
    if let Some(&label) = y.iter().find(|&&l| l >= classes) {
        return Err(Error::Invalid(format!("label index {label} among {classes} labels")));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::Invalid("the features hold values that are not finite numbers".into()));
    }
    if !(c.is_finite() && c > 0.0) {
        return Err(Error::Invalid(format!("C = {c}; the logistic regression's C must be a positive number")));
    }
    // With two labels scikit-learn fits one weight vector `v` (a sigmoid)
    // with penalty `‖v‖² / 2C`. The softmax's two columns settle at `w₁ = -w₀
    // = v / 2`, where `(‖w₀‖² + ‖w₁‖²) / 2C` is `‖v‖² / 4C`: the same model
    // takes half the C.
    let c = if classes == 2 { c / 2.0 } else { c };
    let problem = Problem { x, y, classes, penalty: 1.0 / (c * x.nrows().max(1) as f64) };
    let dim = (x.ncols() + 1) * classes;
    let mut theta = Array1::<f64>::zeros(dim);
    let (mut f, mut g) = problem.evaluate(&theta);
    let mut history: Vec<(Array1<f64>, Array1<f64>, f64)> = Vec::with_capacity(MEMORY);
    let (mut iterations, mut converged) = (0, max_abs(&g) <= tolerance);
    while !converged && iterations < max_iterations {
        let direction = two_loop(&g, &history);
        let slope = direction.dot(&g);
        // Not a descent direction (the curvature pairs went stale): restart
        // from the gradient.
        let (direction, slope) = if slope < 0.0 {
            (direction, slope)
        } else {
            history.clear();
            (-&g, -g.dot(&g))
        };
        // The first step along the bare gradient is scaled to unit length;
        // after that L-BFGS's step of 1 is the right size.
        let mut step = if history.is_empty() { 1.0 / direction.dot(&direction).sqrt().max(1e-12) } else { 1.0 };
        let mut accepted = None;
        for _ in 0..HALVINGS {
            let candidate = &theta + &(&direction * step);
            let (fc, gc) = problem.evaluate(&candidate);
            if fc.is_finite() && fc <= f + ARMIJO * step * slope {
                accepted = Some((candidate, fc, gc));
                break;
            }
            step /= 2.0;
        }
        let Some((next, fc, gc)) = accepted else {
            break;
        };
        iterations += 1;
        let sk = &next - &theta;
        let yk = &gc - &g;
        let curvature = sk.dot(&yk);
        if curvature > 1e-12 * sk.dot(&sk).sqrt() * yk.dot(&yk).sqrt() {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((sk, yk, 1.0 / curvature));
        }
        (theta, f, g) = (next, fc, gc);
        converged = max_abs(&g) <= tolerance;
    }
    let (weights, intercept) = problem.unpack(&theta);
    Ok(LogisticModel { weights, intercept, iterations, converged })
}

/// L-BFGS's two-loop recursion: `-H·g` for the inverse Hessian that the
/// remembered steps imply (scaled by the last pair's curvature).
fn two_loop(g: &Array1<f64>, history: &[(Array1<f64>, Array1<f64>, f64)]) -> Array1<f64> {
    let mut q = g.clone();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y, rho) in history.iter().rev() {
        let alpha = rho * s.dot(&q);
        q.scaled_add(-alpha, y);
        alphas.push(alpha);
    }
    if let Some((s, y, _)) = history.last() {
        q *= s.dot(y) / y.dot(y);
    }
    for ((s, y, rho), alpha) in history.iter().zip(alphas.into_iter().rev()) {
        let beta = rho * y.dot(&q);
        q.scaled_add(alpha - beta, s);
    }
    -q
}

/// The largest component's size; infinite where one is not a number, so
/// that a broken gradient never passes for a converged one.
fn max_abs(v: &Array1<f64>) -> f64 {
    v.iter().fold(0.0, |m, x| if x.is_nan() { f64::INFINITY } else { m.max(x.abs()) })
}

struct Problem<'a> {
    x: ArrayView2<'a, f32>,
    y: &'a [usize],
    classes: usize,
    /// The weight of `‖W‖² / 2` in the mean objective: `1 / (C·n)`.
    penalty: f64,
}

impl Problem<'_> {
    /// The parameters `theta` (features + 1 rows of one value per label, the
    /// last row the intercept, flattened) as weights and intercept.
    fn unpack(&self, theta: &Array1<f64>) -> (Array2<f32>, Array1<f32>) {
        let d = self.x.ncols();
        let all = theta.view().into_shape_with_order((d + 1, self.classes)).expect("theta's length is (d + 1)·k");
        (all.slice_axis(Axis(0), Slice::from(..d)).mapv(|v| v as f32), all.row(d).mapv(|v| v as f32))
    }

    /// The objective and its gradient at `theta`.
    fn evaluate(&self, theta: &Array1<f64>) -> (f64, Array1<f64>) {
        let (n, d, k) = (self.x.nrows(), self.x.ncols(), self.classes);
        let (w, b) = self.unpack(theta);
        let mut z = self.x.dot(&w) + &b;
        let mut loss = 0.0f64;
        for (mut row, &label) in z.axis_iter_mut(Axis(0)).zip(self.y) {
            let top = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - top).exp()).sum();
            loss += top + sum.ln() - row[label] as f64;
            // The row becomes softmax − one-hot: the loss's gradient in the logits.
            for v in row.iter_mut() {
                *v = ((*v as f64 - top).exp() / sum) as f32;
            }
            row[label] -= 1.0;
        }
        let inv_n = 1.0 / n.max(1) as f64;
        let theta_w = theta.slice_axis(Axis(0), Slice::from(..d * k));
        let mut f = loss * inv_n + 0.5 * self.penalty * theta_w.dot(&theta_w);
        if !f.is_finite() {
            f = f64::INFINITY;
        }
        let gw = self.x.t().dot(&z);
        let gb = z.sum_axis(Axis(0));
        let weights = gw.iter().zip(theta_w.iter()).map(|(&v, &t)| v as f64 * inv_n + self.penalty * t);
        let intercept = gb.iter().map(|&v| v as f64 * inv_n);
        (f, weights.chain(intercept).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_is_the_objectives() {
        let x = Array2::from_shape_fn((7, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin());
        let y = [0, 1, 2, 1, 0, 2, 2];
        let problem = Problem { x: x.view(), y: &y, classes: 3, penalty: 0.3 };
        let theta = Array1::from_shape_fn(12, |i| (i as f64 * 0.71).cos());
        let (f, g) = problem.evaluate(&theta);
        for i in 0..12 {
            let mut t = theta.clone();
            t[i] += 1e-3;
            let (fp, _) = problem.evaluate(&t);
            t[i] -= 2e-3;
            let (fm, _) = problem.evaluate(&t);
            let numeric = (fp - fm) / 2e-3;
            assert!((numeric - g[i]).abs() < 1e-4, "component {i}: {numeric} vs {} (f = {f})", g[i]);
        }
    }

    #[test]
    fn separable_labels_are_learnt_and_the_fit_converges() {
        let x = Array2::from_shape_fn(
            (60, 2),
            |(i, j)| if j == i % 3 % 2 { 1.0 + 0.5 * (i as f32 * 0.1).sin() } else { 0.0 },
        );
        let y: Vec<usize> = (0..60).map(|i| i % 3 % 2).collect();
        let model = fit(x.view(), &y, 2, 1.0, 100, TOLERANCE).unwrap();
        assert!(model.converged, "{model:?}");
        let logits = model.logits(x.view());
        for (i, row) in logits.outer_iter().enumerate() {
            assert_eq!(usize::from(row[1] > row[0]), y[i], "row {i}: {row}");
        }
    }

    #[test]
    fn large_unscaled_inputs_still_fit() {
        // What linfa-logistic returned zeros for: many rows of large values.
        let x = Array2::from_shape_fn((20_000, 8), |(i, j)| if j == i % 4 { 50.0 } else { (i * j % 7) as f32 });
        let y: Vec<usize> = (0..20_000).map(|i| i % 4).collect();
        let model = fit(x.view(), &y, 4, 1.0, 100, TOLERANCE).unwrap();
        let logits = model.logits(x.view());
        let right = logits.outer_iter().zip(&y).filter(|(row, &label)| row.iter().all(|&v| v <= row[label])).count();
        assert_eq!(right, 20_000, "{model:?}");
    }

    #[test]
    fn bad_input_is_refused_not_a_panic() {
        let x = Array2::from_elem((3, 2), 1.0f32);
        let e = fit(x.view(), &[0, 1], 2, 1.0, 10, TOLERANCE).unwrap_err().to_string();
        assert!(e.contains("3 rows but 2 labels"), "{e}");
        let e = fit(x.view(), &[0, 1, 2], 2, 1.0, 10, TOLERANCE).unwrap_err().to_string();
        assert!(e.contains("label index 2 among 2"), "{e}");
        let mut nan = x.clone();
        nan[[1, 1]] = f32::NAN;
        let e = fit(nan.view(), &[0, 1, 0], 2, 1.0, 10, TOLERANCE).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        let e = fit(x.view(), &[0, 1, 0], 2, 0.0, 10, TOLERANCE).unwrap_err().to_string();
        assert!(e.contains("positive"), "{e}");
        let nan = Array1::from(vec![0.0, f64::NAN]);
        assert_eq!(max_abs(&nan), f64::INFINITY);
    }
}
