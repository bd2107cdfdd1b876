//! The linear SVM's maths: [`SvmParams`] (checked into [`ValidSvmParams`]
//! before any fitting), and [`fit_linear_svm`], one-vs-rest with two solvers:
//! [`SvmSolver::Linfa`] (linfa-svm's SMO, which builds a dense n-by-n kernel
//! matrix, so time and memory grow with the square of the image count) and
//! [`SvmSolver::DualCd`] (dual coordinate descent on the squared hinge loss, as
//! liblinear and scikit-learn's `LinearSVC` do: linear in the image count).
//! Both weight classes like `class_weight="balanced"`: the positive class of
//! each one-vs-rest problem gets `C * n / (k * n_class)`, the rest `C`, as
//! scikit-learn's liblinear wrapper does.

use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which solver fits the SVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SvmSolver {
    /// linfa-svm's SMO with a linear kernel (dense n-by-n kernel matrix).
    Linfa,
    /// Dual coordinate descent, squared hinge loss (liblinear / `LinearSVC`).
    DualCd,
}

/// SVM hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SvmParams {
    /// Regularisation: larger fits the training data more closely. By default, 1.0.
    pub c: f64,
    /// Weight classes inversely to their frequency. By default, true.
    pub balanced: bool,
    /// The solver. By default, [`SvmSolver::DualCd`].
    pub solver: SvmSolver,
    /// Stopping tolerance. By default, 1e-4 (scikit-learn's).
    pub tol: f64,
    /// Most passes over the data (dual CD). By default, 1000.
    pub max_iter: usize,
    /// Seed of the coordinate order. By default, 0.
    pub seed: u64,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams { c: 1.0, balanced: true, solver: SvmSolver::DualCd, tol: 1e-4, max_iter: 1000, seed: 0 }
    }
}

/// [`SvmParams`] whose every value was checked ([`SvmParams::check`]): what
/// fitting takes, so it never sees an unchecked value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSvmParams(SvmParams);

impl std::ops::Deref for ValidSvmParams {
    type Target = SvmParams;
    fn deref(&self) -> &SvmParams {
        &self.0
    }
}

impl SvmParams {
    /// Checks every value; the error names the first bad field.
    pub fn check(&self) -> Result<ValidSvmParams> {
        self.validate()?;
        Ok(ValidSvmParams(self.clone()))
    }

    fn validate(&self) -> Result<()> {
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(Error::InvalidConfig { field: "c", reason: format!("{} is not a positive number", self.c) });
        }
        if !(self.tol > 0.0 && self.tol.is_finite()) {
            return Err(Error::InvalidConfig {
                field: "tol",
                reason: format!("{} is not a positive number", self.tol),
            });
        }
        if self.max_iter == 0 {
            return Err(Error::InvalidConfig { field: "max_iter", reason: "must be at least 1".into() });
        }
        Ok(())
    }
}

/// A fitted linear model: one weight row and bias per class.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    /// `[classes, dim]`.
    pub weights: Array2<f64>,
    /// `[classes]`.
    pub bias: Array1<f64>,
}

impl LinearModel {
    /// Decision values `[n, classes]` of features `[n, dim]`.
    pub fn decision(&self, x: &Array2<f32>) -> Array2<f64> {
        let x = x.mapv(f64::from);
        x.dot(&self.weights.t()) + &self.bias
    }
}

/// Fits a one-vs-rest linear SVM on features `x` `[n, dim]` with labels `y` in `0..k`.
pub fn fit_linear_svm(x: &Array2<f32>, y: &[usize], k: usize, params: &ValidSvmParams) -> Result<LinearModel> {
    let n = x.nrows();
    if n != y.len() {
        return Err(Error::InvalidInput(format!("{n} feature rows but {} labels", y.len())));
    }
    if k < 2 {
        return Err(Error::InvalidInput(format!("an SVM needs at least 2 classes, got {k}")));
    }
    if let Some(bad) = y.iter().find(|&&l| l >= k) {
        return Err(Error::InvalidInput(format!("label {bad} is out of range for {k} classes")));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidInput("features contain NaN or infinite values".into()));
    }
    let counts: Vec<usize> = (0..k).map(|c| y.iter().filter(|&&l| l == c).count()).collect();
    // Converted once and shared by the k one-vs-rest problems.
    let x = x.mapv(f64::from);
    let sq_norms: Vec<f64> = x.outer_iter().map(|r| r.dot(&r)).collect();
    let mut weights = Array2::<f64>::zeros((k, x.ncols()));
    let mut bias = Array1::<f64>::zeros(k);
    // One problem per class, in parallel: they are independent.
    use rayon::prelude::*;
    let fits: Vec<Result<(Array1<f64>, f64)>> = (0..k)
        .into_par_iter()
        .map(|c| {
            let c_pos = if params.balanced && counts[c] > 0 {
                params.c * n as f64 / (k as f64 * counts[c] as f64)
            } else {
                params.c
            };
            let target: Vec<bool> = y.iter().map(|&l| l == c).collect();
            match params.solver {
                SvmSolver::DualCd => Ok(dual_cd(&x, &sq_norms, &target, c_pos, params.c, params)),
                SvmSolver::Linfa => linfa_binary(&x, &target, c_pos, params.c, params),
            }
        })
        .collect();
    for (c, fit) in fits.into_iter().enumerate() {
        let (w, b) = fit?;
        weights.row_mut(c).assign(&w);
        bias[c] = b;
    }
    Ok(LinearModel { weights, bias })
}

/// Dual coordinate descent for the L2-regularised squared-hinge SVM with a bias
/// feature of 1 (liblinear's solver 1, Hsieh et al. 2008).
/// `sq_norms` holds each row's squared norm.
fn dual_cd(
    x: &Array2<f64>,
    sq_norms: &[f64],
    target: &[bool],
    c_pos: f64,
    c_neg: f64,
    params: &ValidSvmParams,
) -> (Array1<f64>, f64) {
    let (n, d) = x.dim();
    let yv: Vec<f64> = target.iter().map(|&t| if t { 1.0 } else { -1.0 }).collect();
    let diag: Vec<f64> = target.iter().map(|&t| 0.5 / if t { c_pos } else { c_neg }).collect();
    let qd: Vec<f64> = sq_norms.iter().zip(&diag).map(|(sq, dg)| sq + 1.0 + dg).collect();
    let mut w = vec![0f64; d];
    let mut b = 0f64;
    let mut alpha = vec![0f64; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    for _ in 0..params.max_iter {
        order.shuffle(&mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let xi = x.row(i);
            let wx: f64 = xi.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b;
            let g = yv[i] * wx - 1.0 + diag[i] * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (alpha[i] - g / qd[i]).max(0.0);
                let delta = (alpha[i] - old) * yv[i];
                for (wj, xj) in w.iter_mut().zip(xi.iter()) {
                    *wj += delta * xj;
                }
                b += delta;
            }
        }
        if pg_max - pg_min < params.tol.max(1e-12) * 10.0 {
            break;
        }
    }
    (Array1::from(w), b)
}

fn linfa_binary(
    x: &Array2<f64>,
    target: &[bool],
    c_pos: f64,
    c_neg: f64,
    params: &ValidSvmParams,
) -> Result<(Array1<f64>, f64)> {
    let targets = Array1::from(target.to_vec());
    let dataset = linfa::DatasetBase::new(x.view(), targets.view());
    let svm = linfa_svm::Svm::<f64, bool>::params()
        .pos_neg_weights(c_pos, c_neg)
        .eps(params.tol)
        .linear_kernel()
        .fit(&dataset)
        .map_err(|e| Error::Svm(e.to_string()))?;
    // The separating hyperplane: w_j = <w, e_j>; decision = <w, x> - rho.
    let d = x.ncols();
    let mut e = Array1::<f64>::zeros(d);
    let mut w = Array1::<f64>::zeros(d);
    for j in 0..d {
        e[j] = 1.0;
        w[j] = svm.weighted_sum(&e);
        e[j] = 0.0;
    }
    Ok((w, -svm.rho))
}

/// Accuracy of decision values against labels (for tests and benches).
pub fn decision_accuracy(decision: &Array2<f64>, y: &[usize]) -> f64 {
    let right = decision
        .axis_iter(Axis(0))
        .zip(y)
        .filter(|(row, &t)| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(t))
        .count();
    right as f64 / y.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n_per: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let centres = [[0.0f32, 0.0, 3.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]];
        let mut x = Array2::zeros((n_per * 3, 3));
        let mut y = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for i in 0..n_per {
                for j in 0..3 {
                    x[[c * n_per + i, j]] = centre[j] + rng.random_range(-1.0..1.0);
                }
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn both_solvers_separate_three_blobs() {
        let (x, y) = blobs(30, 1);
        for solver in [SvmSolver::DualCd, SvmSolver::Linfa] {
            let m = fit_linear_svm(&x, &y, 3, &SvmParams { solver, ..Default::default() }.check().unwrap()).unwrap();
            assert_eq!(decision_accuracy(&m.decision(&x), &y), 1.0, "{solver:?}");
        }
    }

    #[test]
    fn rejects_bad_inputs_with_clear_errors() {
        let (x, y) = blobs(3, 2);
        assert!(fit_linear_svm(&x, &y[..5], 3, &SvmParams::default().check().unwrap())
            .unwrap_err()
            .to_string()
            .contains("9 feature rows but 5 labels"));
        assert!(fit_linear_svm(&x, &y, 1, &SvmParams::default().check().unwrap())
            .unwrap_err()
            .to_string()
            .contains("at least 2 classes"));
        let mut bad = x.clone();
        bad[[0, 0]] = f32::NAN;
        assert!(fit_linear_svm(&bad, &y, 3, &SvmParams::default().check().unwrap())
            .unwrap_err()
            .to_string()
            .contains("NaN"));
        let e = SvmParams { c: 0.0, ..Default::default() }.check().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: "c", .. }));
    }
}
