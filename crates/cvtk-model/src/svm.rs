//! [`Featurizer`] (a pretrained backbone without its head) and [`SvmClassifier`]
//! (a one-vs-rest linear SVM on its features). Counterpart of the original
//! package's `ScikitClassifier`.
//!
//! Two solvers: [`SvmSolver::Linfa`] (linfa-svm's SMO, which builds a dense
//! n-by-n kernel matrix, so time and memory grow with the square of the image
//! count) and [`SvmSolver::DualCd`] (dual coordinate descent on the squared
//! hinge loss, as liblinear and scikit-learn's `LinearSVC` do: linear in the
//! image count). Both weight classes like `class_weight="balanced"`: the
//! positive class of each one-vs-rest problem gets `C * n / (k * n_class)`, the
//! rest `C`, as scikit-learn's liblinear wrapper does.

use std::path::Path;

use cvtk_dataset::{ClassificationDataset, ImageLoader, LoaderConfig};
use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::base::{check_input, BaseModel};
use crate::calibration::{fit_temperature, ScoreKind, TemperatureFit};
use crate::classifier::{
    read_model_dir_of_kind, save_model_dir, Classifier, ModelKind, ModelMeta, MODEL_FORMAT, MODEL_VERSION,
};
use crate::nets::Network;
use crate::weights::load_into;
use crate::{Architecture, Error, Result};

/// A pretrained backbone without its classifier: images in, features out
/// (512 for ResNet-18/34, 2048 for ResNet-50+, 1280 for EfficientNet-Lite).
pub struct Featurizer {
    arch: Architecture,
    loader: LoaderConfig,
    base_weights: Option<std::path::PathBuf>,
    vs: nn::VarStore,
    net: Network,
    /// The batch-norm-folded copy of `net` (ResNets on the CPU).
    fused: crate::inference::FusedCache,
}

impl std::fmt::Debug for Featurizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Featurizer").field("arch", &self.arch).field("loader", &self.loader).finish()
    }
}

impl Featurizer {
    /// The backbone of `base` with its weights, taking `image_size` inputs.
    pub fn new(base: &BaseModel, image_size: Option<u32>, device: Device) -> Result<Self> {
        let loader = base.loader_config(image_size);
        loader.validate()?;
        let mut vs = nn::VarStore::new(device);
        let net = base.build(&vs, None, false)?;
        vs.freeze();
        Ok(Featurizer {
            arch: base.arch,
            loader,
            base_weights: base.weights.clone(),
            vs,
            net,
            fused: Default::default(),
        })
    }

    /// Feature size.
    pub fn dim(&self) -> usize {
        self.net.feature_dim() as usize
    }

    /// How images are loaded for it.
    pub fn loader_config(&self) -> &LoaderConfig {
        &self.loader
    }

    /// Features of a batch, `[N, dim]` on the CPU.
    pub fn features_batch(&self, images: &Tensor) -> Result<Tensor> {
        check_input(self.arch, images)?;
        let xs = images.f_to_device(self.vs.device())?;
        if let Some(features) = self.fused.with(self.arch, &self.vs, |net| net.features(&xs))? {
            return Ok(features);
        }
        Ok(tch::no_grad(|| self.net.features_t(&xs, false)).f_to_device(Device::Cpu)?)
    }

    /// Features of every image of `dataset`, in dataset order, as `[n, dim]`,
    /// with a progress bar on a terminal.
    pub fn features(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Array2<f32>> {
        let loader = ImageLoader::new(self.loader.clone())?;
        let mut out = Array2::<f32>::zeros((dataset.len(), self.dim()));
        let bar = cvtk_dataset::progress::bar(dataset.len() as u64, "featurizing");
        let mut row = 0;
        for batch in loader.batches(dataset, batch_size.max(1), None, 0) {
            let batch = batch?;
            let f = self.features_batch(&batch.images)?;
            let flat = Vec::<f32>::try_from(&f.f_flatten(0, -1)?)?;
            for chunk in flat.chunks(self.dim()) {
                out.row_mut(row).assign(&ndarray::ArrayView1::from(chunk));
                row += 1;
            }
            bar.inc(batch.ids.len() as u64);
        }
        bar.finish_and_clear();
        Ok(out)
    }
}

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

impl SvmParams {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
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
pub fn fit_linear_svm(x: &Array2<f32>, y: &[usize], k: usize, params: &SvmParams) -> Result<LinearModel> {
    params.validate()?;
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
    params: &SvmParams,
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
    params: &SvmParams,
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

/// A linear SVM on a featurizer's output, one-vs-rest over the user's labels.
pub struct SvmClassifier {
    labels: Vec<String>,
    featurizer: Featurizer,
    model: LinearModel,
    params: SvmParams,
    /// The temperature that turns decision values into probabilities.
    calibration: Option<TemperatureFit>,
}

impl std::fmt::Debug for SvmClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvmClassifier")
            .field("labels", &self.labels)
            .field("featurizer", &self.featurizer)
            .field("params", &self.params)
            .finish()
    }
}

/// Folds of the cross-fitting that calibrates an SVM's decision values.
const CALIBRATION_FOLDS: usize = 3;

/// Fits the temperature that turns an SVM's decision values into calibrated
/// probabilities without held-out images, as libsvm's `probability=True` does
/// for Platt scaling: the SVM is refitted on all but one of
/// [`CALIBRATION_FOLDS`] folds (stratified by label), its decision values on
/// the left-out fold are collected, and the temperature is fitted on those
/// out-of-fold values. `None` when there are too few images to fold.
pub fn cross_fit_temperature(
    x: &Array2<f32>,
    y: &[usize],
    k: usize,
    params: &SvmParams,
) -> Result<Option<TemperatureFit>> {
    let n = x.nrows();
    if n < 2 * CALIBRATION_FOLDS {
        return Ok(None);
    }
    // The j-th image of each label goes to fold j mod 3.
    let mut seen = vec![0usize; k];
    let fold: Vec<usize> = y
        .iter()
        .map(|&l| {
            let f = seen[l] % CALIBRATION_FOLDS;
            seen[l] += 1;
            f
        })
        .collect();
    let (mut values, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for f in 0..CALIBRATION_FOLDS {
        let (fit_rows, held): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold[i] != f);
        if held.is_empty() {
            continue;
        }
        let fit_y: Vec<usize> = fit_rows.iter().map(|&i| y[i]).collect();
        let model = fit_linear_svm(&x.select(Axis(0), &fit_rows), &fit_y, k, params)?;
        let d = model.decision(&x.select(Axis(0), &held));
        for (row, &i) in d.outer_iter().zip(&held) {
            values.push(row.iter().map(|&v| v as f32).collect::<Vec<f32>>());
            labels.push(y[i]);
        }
    }
    fit_temperature(&values, &labels).map(Some)
}

impl SvmClassifier {
    /// Featurizes `train_set` and fits the SVM on it; the labels are the
    /// dataset's. The decision values' calibration temperature is fitted too
    /// ([`cross_fit_temperature`]), so the classifier's probabilities mean
    /// something.
    pub fn fit(featurizer: Featurizer, train_set: &ClassificationDataset, params: &SvmParams) -> Result<Self> {
        params.validate()?;
        let x = featurizer.features(train_set, 32)?;
        let y: Vec<usize> = train_set.images().iter().map(|i| i.label()).collect();
        let labels = train_set.label_names();
        let model = fit_linear_svm(&x, &y, labels.len(), params)?;
        let calibration = cross_fit_temperature(&x, &y, labels.len(), params)?;
        match &calibration {
            Some(c) => tracing::info!(
                "SVM decision values calibrated: temperature {:.4} (negative log-likelihood {:.4} -> {:.4} out of fold)",
                c.temperature,
                c.nll_before,
                c.nll_after
            ),
            None => tracing::warn!(
                "{} training images are too few to calibrate the SVM's probabilities; they are the softmax of its decision values",
                train_set.len()
            ),
        }
        Ok(SvmClassifier { labels, featurizer, model, params: params.clone(), calibration })
    }

    /// The fitted weights.
    pub fn linear_model(&self) -> &LinearModel {
        &self.model
    }

    pub(crate) fn from_parts(
        dir: &Path,
        meta: ModelMeta,
        tensors: Vec<(String, Tensor)>,
        device: Device,
    ) -> Result<Self> {
        let bad = |reason: String| Error::ModelFile { path: dir.to_path_buf(), reason };
        let get = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
        let w = get("svm.weight").ok_or_else(|| bad("weights file has no svm.weight".into()))?;
        let b = get("svm.bias").ok_or_else(|| bad("weights file has no svm.bias".into()))?;
        let k = meta.labels.len() as i64;
        let dim = meta.arch.feature_dim();
        if w.size() != [k, dim] || b.size() != [k] {
            return Err(bad(format!(
                "svm weights are {:?} and {:?}, expected [{k}, {dim}] and [{k}] for {} labels",
                w.size(),
                b.size(),
                k
            )));
        }
        let mut vs = nn::VarStore::new(device);
        let net = meta.arch.build(&vs.root(), None);
        load_into(&vs, tensors, &dir.join(&meta.weights_file), &["svm."])?;
        vs.freeze();
        let wv = Vec::<f64>::try_from(&w.f_to_kind(tch::Kind::Double)?.f_flatten(0, -1)?)?;
        let bv = Vec::<f64>::try_from(&b.f_to_kind(tch::Kind::Double)?)?;
        let model = LinearModel {
            weights: Array2::from_shape_vec((k as usize, dim as usize), wv).map_err(|e| bad(e.to_string()))?,
            bias: Array1::from(bv),
        };
        let params = serde_json::from_value(meta.history.clone()).unwrap_or_default();
        let featurizer = Featurizer {
            arch: meta.arch,
            loader: meta.loader,
            base_weights: meta.base_weights,
            vs,
            net,
            fused: Default::default(),
        };
        Ok(SvmClassifier { labels: meta.labels, featurizer, model, params, calibration: meta.calibration })
    }

    /// Loads an SVM classifier saved by [`Classifier::save`].
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (meta, tensors) = read_model_dir_of_kind(dir, ModelKind::Svm)?;
        Self::from_parts(dir, meta, tensors, device)
    }
}

impl Classifier for SvmClassifier {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn loader_config(&self) -> LoaderConfig {
        self.featurizer.loader.clone()
    }

    fn score_batch(&self, images: &Tensor) -> Result<Tensor> {
        let f = self.featurizer.features_batch(images)?;
        let n = f.size()[0] as usize;
        let flat = Vec::<f32>::try_from(&f.f_flatten(0, -1)?)?;
        let x =
            Array2::from_shape_vec((n, self.featurizer.dim()), flat).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let d = self.model.decision(&x);
        let v: Vec<f32> = d.iter().map(|&v| v as f32).collect();
        Ok(Tensor::f_from_slice(&v)?.f_view([n as i64, self.labels.len() as i64])?)
    }

    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Decision { temperature: self.calibration.as_ref().map_or(1.0, |c| c.temperature) }
    }

    fn calibration(&self) -> Option<&TemperatureFit> {
        self.calibration.as_ref()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = self.featurizer.vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let w: Vec<f64> = self.model.weights.iter().copied().collect();
        let (k, d) = self.model.weights.dim();
        tensors.push(("svm.weight".into(), Tensor::f_from_slice(&w)?.f_view([k as i64, d as i64])?));
        tensors.push(("svm.bias".into(), Tensor::f_from_slice(&self.model.bias.to_vec())?));
        let meta = ModelMeta {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            kind: ModelKind::Svm,
            labels: self.labels.clone(),
            arch: self.featurizer.arch,
            loader: self.featurizer.loader.clone(),
            weights_file: String::new(),
            base_weights: self.featurizer.base_weights.clone(),
            history: serde_json::to_value(&self.params).unwrap_or_default(),
            calibration: self.calibration.clone(),
        };
        save_model_dir(dir, meta, &tensors)
    }

    fn device(&self) -> Device {
        self.featurizer.vs.device()
    }

    fn kind(&self) -> ModelKind {
        ModelKind::Svm
    }

    fn describe(&self) -> String {
        format!(
            "linear SVM (C = {}, {:?}) on {} features ({}x{} input, from {})",
            self.params.c,
            self.params.solver,
            self.featurizer.arch,
            self.featurizer.loader.width,
            self.featurizer.loader.height,
            self.featurizer
                .base_weights
                .as_ref()
                .map_or("random initialisation".to_string(), |w| w.display().to_string())
        )
    }
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
            let m = fit_linear_svm(&x, &y, 3, &SvmParams { solver, ..Default::default() }).unwrap();
            assert_eq!(decision_accuracy(&m.decision(&x), &y), 1.0, "{solver:?}");
        }
    }

    #[test]
    fn rejects_bad_inputs_with_clear_errors() {
        let (x, y) = blobs(3, 2);
        assert!(fit_linear_svm(&x, &y[..5], 3, &SvmParams::default())
            .unwrap_err()
            .to_string()
            .contains("9 feature rows but 5 labels"));
        assert!(fit_linear_svm(&x, &y, 1, &SvmParams::default())
            .unwrap_err()
            .to_string()
            .contains("at least 2 classes"));
        let mut bad = x.clone();
        bad[[0, 0]] = f32::NAN;
        assert!(fit_linear_svm(&bad, &y, 3, &SvmParams::default()).unwrap_err().to_string().contains("NaN"));
        let e = SvmParams { c: 0.0, ..Default::default() }.validate().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: "c", .. }));
    }
}
