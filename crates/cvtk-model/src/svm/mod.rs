//! [`SvmClassifier`]: a one-vs-rest linear SVM on a [`Featurizer`]'s output,
//! with probabilities calibrated on cross-fitted decision values. Counterpart
//! of the original package's `ScikitClassifier`. The maths is in [`solver`].

pub mod solver;

use std::path::Path;
use std::sync::Arc;

use cvtk_dataset::{ClassificationDataset, ImageBatch, LoaderConfig};
use ndarray::{Array1, Array2, Axis};
use tch::{Device, Tensor};

use crate::backbone::Backbone;
use crate::calibration::{fit_temperature, TemperatureFit};
use crate::engine::Engine;
use crate::explain::{ClassMaps, Heatmap};
use crate::model_dir::{read_model_dir_of_kind, save_model_dir, ModelKind, ModelMeta, Training};
use crate::onnx::OnnxModel;
use crate::scorer::Scorer;
use crate::trained_on::{Record, TrainingImages};
use crate::{Classifier, Error, Featurizer, Result};
use cvtk_core::ScoreKind;
pub use solver::{decision_accuracy, fit_linear_svm, LinearModel, SvmParams, SvmSolver, ValidSvmParams};

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
    params: &ValidSvmParams,
) -> Result<Option<TemperatureFit>> {
    cross_fit_temperature_on(x, x, y, k, params)
}

/// [`cross_fit_temperature`] with each fold's SVM fitted on rows of `x` and
/// its decision values taken on the same rows of `scored` (another view of
/// the same images: their features under test-time augmentation), so the
/// temperature fits the decision values the SVM fitted on `x` gives to
/// `scored`.
pub fn cross_fit_temperature_on(
    x: &Array2<f32>,
    scored: &Array2<f32>,
    y: &[usize],
    k: usize,
    params: &ValidSvmParams,
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
    let values = out_of_fold_decisions_on(x, scored, y, k, &fold, params)?;
    fit_temperature(&values, y).map(Some)
}

/// Each row's decision values from an SVM fitted on the rows of the other
/// folds (`fold[i]` is row `i`'s fold): out-of-sample scores for every row,
/// in row order. A fold of no rows is skipped.
pub fn out_of_fold_decisions(
    x: &Array2<f32>,
    y: &[usize],
    k: usize,
    fold: &[usize],
    params: &ValidSvmParams,
) -> Result<Vec<Vec<f32>>> {
    out_of_fold_decisions_on(x, x, y, k, fold, params)
}

/// [`out_of_fold_decisions`] fitted on `x`, scored on the same rows of `scored`.
fn out_of_fold_decisions_on(
    x: &Array2<f32>,
    scored: &Array2<f32>,
    y: &[usize],
    k: usize,
    fold: &[usize],
    params: &ValidSvmParams,
) -> Result<Vec<Vec<f32>>> {
    let n = x.nrows();
    if scored.dim() != x.dim() {
        return Err(Error::InvalidInput(format!("{:?} features to fit on but {:?} to score", x.dim(), scored.dim())));
    }
    if y.len() != n || fold.len() != n {
        return Err(Error::InvalidInput(format!(
            "{n} rows of features, {} labels and {} folds: give one of each per row",
            y.len(),
            fold.len()
        )));
    }
    let mut values = vec![Vec::new(); n];
    for f in 0..fold.iter().max().map_or(0, |m| m + 1) {
        let (fit_rows, held): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold[i] != f);
        if held.is_empty() {
            continue;
        }
        let fit_y: Vec<usize> = fit_rows.iter().map(|&i| y[i]).collect();
        let model = fit_linear_svm(&x.select(Axis(0), &fit_rows), &fit_y, k, params)?;
        let d = model.decision(&scored.select(Axis(0), &held));
        for (row, &i) in d.outer_iter().zip(&held) {
            values[i] = row.iter().map(|&v| v as f32).collect();
        }
    }
    Ok(values)
}

/// A linear SVM on a featurizer's output, one-vs-rest over the user's labels.
pub struct SvmClassifier {
    labels: Vec<String>,
    featurizer: Featurizer,
    model: LinearModel,
    params: ValidSvmParams,
    /// The temperature that turns decision values into probabilities.
    calibration: Option<TemperatureFit>,
    /// The images it was fitted on.
    trained_on: Record,
    /// The test-time augmentation it is calibrated and scored with.
    tta: crate::TtaMode,
}

impl std::fmt::Debug for SvmClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvmClassifier")
            .field("labels", &self.labels)
            .field("featurizer", &self.featurizer)
            .field("params", &*self.params)
            .finish()
    }
}

impl SvmClassifier {
    /// Featurizes `train_set` and fits the SVM on it; the labels are the
    /// dataset's. The decision values' calibration temperature is fitted too
    /// ([`cross_fit_temperature`]), so the classifier's probabilities mean
    /// something.
    pub fn fit(featurizer: Featurizer, train_set: &ClassificationDataset, params: &SvmParams) -> Result<Self> {
        Self::fit_with(featurizer, train_set, params, crate::TtaMode::None)
    }

    /// [`Self::fit`] for scoring with test-time augmentation `tta`: the SVM
    /// is fitted on the images' features, and its temperature cross-fitted
    /// with fold SVMs fitted the same way but scoring the augmented features
    /// ([`Featurizer::features_and_tta`]), the decision values it will give;
    /// `tta` is saved with it.
    pub fn fit_with(
        featurizer: Featurizer,
        train_set: &ClassificationDataset,
        params: &SvmParams,
        tta: crate::TtaMode,
    ) -> Result<Self> {
        let params = params.check()?;
        // The images' features, and what the SVM will score under `tta`.
        let (x, scored) = featurizer.features_and_tta(train_set, 32, tta)?;
        let y: Vec<usize> = train_set.images().iter().map(|i| i.label()).collect();
        let labels = train_set.label_names();
        let model = fit_linear_svm(&x, &y, labels.len(), &params)?;
        let calibration = cross_fit_temperature_on(&x, scored.as_ref().unwrap_or(&x), &y, labels.len(), &params)?;
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
        let mut trained_on = Record::None;
        trained_on.add(train_set);
        Ok(SvmClassifier { labels, featurizer, model, params, calibration, trained_on, tta })
    }

    /// The fitted weights.
    pub fn linear_model(&self) -> &LinearModel {
        &self.model
    }

    /// The SVM as a linear head in float32: weights `[labels, features]`, bias `[labels]`.
    fn head(&self) -> Result<(Tensor, Tensor)> {
        let w: Vec<f32> = self.model.weights.iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = self.model.bias.iter().map(|&v| v as f32).collect();
        let (k, d) = self.model.weights.dim();
        Ok((Tensor::f_from_slice(&w)?.f_view([k as i64, d as i64])?, Tensor::f_from_slice(&b)?))
    }

    /// Decision values of a batch tensor, `[N, labels]` on the CPU.
    pub fn score_tensor(&self, images: &Tensor) -> Result<Tensor> {
        let f = self.featurizer.features_tensor(images)?;
        let n = f.size()[0] as usize;
        let flat = Vec::<f32>::try_from(&f.f_flatten(0, -1)?)?;
        let d = self.decision(flat, n)?;
        let v: Vec<f32> = d.iter().map(|&v| v as f32).collect();
        Ok(Tensor::f_from_slice(&v)?.f_view([n as i64, self.labels.len() as i64])?)
    }

    fn decision(&self, features: Vec<f32>, n: usize) -> Result<Array2<f64>> {
        let x = Array2::from_shape_vec((n, self.featurizer.dim()), features)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(self.model.decision(&x))
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
        let Training::Svm(params) = &meta.training else {
            return Err(bad("model.json does not hold an SVM's settings".into()));
        };
        let params = params.check().map_err(|e| bad(format!("its SVM settings are not valid: {e}")))?;
        let trained_on = meta.training_record(dir);
        let mut backbone = Backbone::from_parts(dir, &meta, tensors, device, None, &["svm."])?;
        backbone.vs.freeze();
        let wv = Vec::<f64>::try_from(&w.f_to_kind(tch::Kind::Double)?.f_flatten(0, -1)?)?;
        let bv = Vec::<f64>::try_from(&b.f_to_kind(tch::Kind::Double)?)?;
        let model = LinearModel {
            weights: Array2::from_shape_vec((k as usize, dim as usize), wv).map_err(|e| bad(e.to_string()))?,
            bias: Array1::from(bv),
        };
        Ok(SvmClassifier {
            labels: meta.labels,
            featurizer: Featurizer::from_backbone(backbone),
            model,
            params,
            calibration: meta.calibration,
            trained_on,
            tta: meta.tta,
        })
    }

    /// Loads an SVM classifier saved by [`Classifier::save`].
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (meta, tensors) = read_model_dir_of_kind(dir, ModelKind::Svm)?;
        Self::from_parts(dir, meta, tensors, device)
    }
}

impl Scorer for SvmClassifier {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn loader_config(&self) -> LoaderConfig {
        self.featurizer.loader_config().clone()
    }

    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        let backbone = &self.featurizer.backbone;
        backbone.check_batch(images)?;
        let features = backbone.forward_rows(images)?;
        let d = self.decision(features.into_iter().flatten().collect(), images.len())?;
        Ok(d.outer_iter().map(|row| row.iter().map(|&v| v as f32).collect()).collect())
    }

    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Decision { temperature: self.calibration.as_ref().map_or(1.0, |c| c.temperature) }
    }

    fn engine(&self) -> Engine {
        Engine::Torch
    }

    fn class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        let (w, b) = self.head()?;
        self.featurizer.backbone.class_maps(images, &w, &b)
    }

    fn grad_cam(&self, images: &ImageBatch, targets: &[usize]) -> Result<Vec<Heatmap>> {
        let (w, b) = self.head()?;
        self.featurizer.backbone.grad_cam(images, &w, &b, targets)
    }

    fn describe(&self) -> String {
        let b = &self.featurizer.backbone;
        format!(
            "linear SVM (C = {}, {:?}) on {} features ({}x{} input, from {})",
            self.params.c,
            self.params.solver,
            b.arch,
            b.loader.width,
            b.loader.height,
            b.source()
        )
    }
}

impl Classifier for SvmClassifier {
    fn scores_graph(&self) -> Result<Vec<u8>> {
        self.featurizer.backbone.classifier_graph(&self.labels, || self.export_onnx())
    }

    fn export_onnx(&self) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.featurizer.backbone.export(
            &self.labels,
            ModelKind::Svm,
            self.score_kind(),
            w,
            b,
            false,
            crate::TtaMode::None,
        )
    }

    fn export_onnx_tta(&self, tta: crate::TtaMode) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.featurizer.backbone.export(&self.labels, ModelKind::Svm, self.score_kind(), w, b, false, tta)
    }

    fn export_onnx_with_maps(&self) -> Result<OnnxModel> {
        let (w, b) = self.head()?;
        self.featurizer.backbone.export(
            &self.labels,
            ModelKind::Svm,
            self.score_kind(),
            w,
            b,
            true,
            crate::TtaMode::None,
        )
    }

    fn calibration(&self) -> Option<&TemperatureFit> {
        self.calibration.as_ref()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let backbone = &self.featurizer.backbone;
        let mut tensors = backbone.tensors();
        let w: Vec<f64> = self.model.weights.iter().copied().collect();
        let (k, d) = self.model.weights.dim();
        tensors.push(("svm.weight".into(), Tensor::f_from_slice(&w)?.f_view([k as i64, d as i64])?));
        tensors.push(("svm.bias".into(), Tensor::f_from_slice(&self.model.bias.to_vec())?));
        let mut meta = backbone.meta(&self.labels, Training::Svm((*self.params).clone()), self.calibration.clone());
        meta.tta = self.tta;
        save_model_dir(dir, meta, &tensors, &self.trained_on)
    }

    fn device(&self) -> Device {
        self.featurizer.backbone.device()
    }

    fn kind(&self) -> ModelKind {
        ModelKind::Svm
    }

    fn tta(&self) -> crate::TtaMode {
        self.tta
    }

    fn training_images(&self) -> Result<Option<Arc<TrainingImages>>> {
        self.trained_on.get()
    }
}
