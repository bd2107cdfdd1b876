//! The [`Classifier`] trait that [`crate::TransferModel`] and
//! [`crate::SvmClassifier`] implement, so evaluation, serving and the CLI never
//! care which one they hold; [`Scores`]; and the model-folder format.
//!
//! A model folder holds `model.json` (metadata: format, version, kind, labels,
//! architecture, input size and normalisation, the weights file's name) and
//! `weights-<stamp>.safetensors`. Saving writes the new weights file first and
//! then replaces `model.json` atomically, so an interrupted save leaves the
//! previous model loadable; stale weights files are removed afterwards.

use std::path::{Path, PathBuf};

use cvtk_dataset::{write_json_atomic, ClassificationDataset, ImageLoader, LoaderConfig};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::calibration::{ScoreKind, TemperatureFit};
use crate::{Architecture, Error, Result};

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

/// One image's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted label.
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// Every label's probability, in label order (calibrated: see
    /// [`Classifier::score_kind`]).
    pub probabilities: Vec<f32>,
    /// The raw scores the probabilities came from, in label order.
    pub raw: Vec<f32>,
    /// What the raw scores are.
    pub raw_kind: ScoreKind,
}

/// A trained classifier over the user's labels.
pub trait Classifier: Send {
    /// Label names, in score-column order.
    fn labels(&self) -> &[String];
    /// How images must be loaded for this classifier.
    fn loader_config(&self) -> LoaderConfig;
    /// Raw scores of a batch `[N, C, H, W]` made by [`Self::loader_config`]'s
    /// loader: `[N, labels]` on the CPU, of kind [`Self::score_kind`].
    fn score_batch(&self, images: &Tensor) -> Result<Tensor>;
    /// What [`Self::score_batch`] returns (logits, or decision values for an
    /// SVM) and the temperature that turns it into calibrated probabilities.
    fn score_kind(&self) -> ScoreKind;
    /// The temperature fit behind [`Self::score_kind`], if the classifier was
    /// calibrated.
    fn calibration(&self) -> Option<&TemperatureFit> {
        None
    }
    /// Saves the classifier into a model folder.
    fn save(&self, dir: &Path) -> Result<()>;
    /// The device it runs on.
    fn device(&self) -> Device;
    /// What kind of classifier (`dnn` or `svm`).
    fn kind(&self) -> ModelKind;
    /// Train and evaluation accuracy per epoch, for models trained in epochs.
    fn train_eval_accs(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        None
    }
    /// A one-line description (architecture, input size, weights it started from).
    fn describe(&self) -> String;

    /// Raw scores of every image of `dataset` in dataset order, in batches of
    /// `batch_size`, with their [`ScoreKind`] (so [`Scores::probabilities`]
    /// gives calibrated probabilities). Shows a progress bar on a terminal.
    fn score_dataset(&self, dataset: &ClassificationDataset, batch_size: usize) -> Result<Scores> {
        // True labels by name, in this classifier's label order (map_labels
        // checked that every image's label has one).
        let map = map_labels(dataset, self.labels())?;
        let true_labels: Vec<usize> =
            dataset.images().iter().map(|i| map.get(i.label()).copied().flatten().unwrap_or_default()).collect();
        let loader = ImageLoader::new(self.loader_config())?;
        let batches = loader.batches(dataset, batch_size, None, 0);
        let bar = cvtk_dataset::progress::bar(dataset.len() as u64, "scoring");
        let mut values = Vec::with_capacity(dataset.len());
        let mut ids = Vec::with_capacity(dataset.len());
        for batch in batches {
            let batch = batch?;
            values.extend(rows(&self.score_batch(&batch.images)?)?);
            bar.inc(batch.ids.len() as u64);
            ids.extend(batch.ids);
        }
        bar.finish_and_clear();
        Ok(Scores { labels: self.labels().to_vec(), ids, true_labels, values, kind: self.score_kind() })
    }

    /// Predicts the label of one image file, with calibrated probabilities.
    fn predict(&self, image: &Path) -> Result<Prediction> {
        let loader = ImageLoader::new(self.loader_config())?;
        let batch = loader.load_batch(&[image])?;
        let raw = rows(&self.score_batch(&batch)?)?.into_iter().next().unwrap_or_default();
        Ok(self.prediction(raw))
    }

    /// The prediction that one row of raw scores (of [`Self::score_kind`]) makes.
    fn prediction(&self, raw: Vec<f32>) -> Prediction {
        let raw_kind = self.score_kind();
        let probabilities = raw_kind.probabilities(&raw);
        let best = first_max(&probabilities);
        Prediction {
            label: self.labels().get(best).cloned().unwrap_or_default(),
            probability: probabilities.get(best).copied().unwrap_or(0.0),
            probabilities,
            raw,
            raw_kind,
        }
    }
}

/// For each of `dataset`'s label indices, the index of the label with the same
/// name in `model_labels` (None for a label the model lacks and no image uses).
/// An image whose label the model does not know is an error naming the image.
pub(crate) fn map_labels(dataset: &ClassificationDataset, model_labels: &[String]) -> Result<Vec<Option<usize>>> {
    let names = dataset.label_names();
    let map: Vec<Option<usize>> = names.iter().map(|n| model_labels.iter().position(|l| l == n)).collect();
    if let Some(i) = dataset.images().iter().find(|i| map.get(i.label()).copied().flatten().is_none()) {
        return Err(Error::InvalidInput(format!(
            "image {} has label '{}', which the model does not know (its labels: {})",
            i.path.display(),
            names.get(i.label()).cloned().unwrap_or_default(),
            model_labels.join(", ")
        )));
    }
    Ok(map)
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

/// A 2-D float tensor as rows.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let t = t.f_to_kind(tch::Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let size = t.size();
    if size.len() != 2 {
        return Err(Error::InvalidInput(format!("expected a 2-D score tensor, got {size:?}")));
    }
    let flat = Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?;
    Ok(flat.chunks(size[1].max(1) as usize).map(<[f32]>::to_vec).collect())
}

/// Which classifier a model folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A fine-tuned network ([`crate::TransferModel`]).
    Dnn,
    /// A linear SVM on network features ([`crate::SvmClassifier`]).
    Svm,
}

pub(crate) const MODEL_FORMAT: &str = "cvtk-model";
pub(crate) const MODEL_VERSION: u32 = 1;

/// `model.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ModelMeta {
    pub format: String,
    pub version: u32,
    pub kind: ModelKind,
    pub labels: Vec<String>,
    pub arch: Architecture,
    pub loader: LoaderConfig,
    pub weights_file: String,
    /// The weights file the backbone started from, for the record.
    #[serde(default)]
    pub base_weights: Option<PathBuf>,
    /// Per-epoch training history (dnn) or solver settings (svm).
    #[serde(default)]
    pub history: serde_json::Value,
    /// The temperature that calibrates the scores, if one was fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<TemperatureFit>,
}

fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::ModelFile { path: path.to_path_buf(), reason: reason.into() }
}

/// Saves `tensors` and `meta` into `dir` (see the module doc for the order).
pub(crate) fn save_model_dir(dir: &Path, mut meta: ModelMeta, tensors: &[(String, Tensor)]) -> Result<()> {
    let weights_file = write_weights(dir, tensors)?;
    meta.weights_file = weights_file;
    write_json_atomic(&dir.join("model.json"), &meta)?;
    remove_stale_weights(dir, &meta.weights_file);
    Ok(())
}

/// Writes a fresh `weights-<stamp>.safetensors` (temp file, then rename) and
/// returns its name.
pub(crate) fn write_weights(dir: &Path, tensors: &[(String, Tensor)]) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        action: "cannot create folder",
        path: dir.to_path_buf(),
        source: e,
    })?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let name = format!("weights-{stamp:x}-{}.safetensors", std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<_>>()?;
    Tensor::write_safetensors(&cpu, &tmp).map_err(|e| model_err(&tmp, format!("cannot write weights: {e}")))?;
    let final_path = dir.join(&name);
    std::fs::rename(&tmp, &final_path).map_err(|e| Error::Io { action: "cannot rename", path: tmp, source: e })?;
    Ok(name)
}

fn remove_stale_weights(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with("weights-") && name.ends_with(".safetensors") && name != keep)
            || (name.starts_with(".weights-") && name.ends_with(".tmp"));
        if stale {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %e.path().display(), "cannot remove stale weights: {err}");
            }
        }
    }
}

/// Reads and checks `model.json`, and the weights it names.
pub(crate) fn read_model_dir(dir: &Path) -> Result<(ModelMeta, Vec<(String, Tensor)>)> {
    let meta_path = dir.join("model.json");
    if !dir.is_dir() {
        return Err(model_err(dir, "is not a folder; pass the folder `cvtk train --out` wrote"));
    }
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|_| model_err(dir, "has no model.json: not a cvtk model folder"))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| model_err(&meta_path, format!("not valid JSON ({e}); the file is corrupt")))?;
    if value.get("format").and_then(|v| v.as_str()) != Some(MODEL_FORMAT) {
        return Err(model_err(&meta_path, format!("not a cvtk model (no \"format\": \"{MODEL_FORMAT}\")")));
    }
    let meta: ModelMeta = serde_json::from_value(value).map_err(|e| model_err(&meta_path, e.to_string()))?;
    if meta.version > MODEL_VERSION {
        return Err(model_err(
            &meta_path,
            format!("format version {} is newer than this cvtk reads ({MODEL_VERSION}); upgrade cvtk", meta.version),
        ));
    }
    if meta.labels.is_empty() {
        return Err(model_err(&meta_path, "has no labels"));
    }
    if meta.weights_file.contains('/') || meta.weights_file.contains("..") {
        return Err(model_err(&meta_path, format!("weights_file '{}' must be a plain file name", meta.weights_file)));
    }
    let wpath = dir.join(&meta.weights_file);
    if !wpath.is_file() {
        return Err(model_err(&wpath, "is missing (model.json names it)"));
    }
    let tensors = Tensor::read_safetensors(&wpath).map_err(|e| {
        model_err(
            &wpath,
            format!(
                "cannot read ({}); the file is truncated or corrupt",
                e.to_string().lines().next().unwrap_or_default()
            ),
        )
    })?;
    Ok((meta, tensors))
}

/// [`read_model_dir`] for a folder that must hold a classifier of `kind`.
pub(crate) fn read_model_dir_of_kind(dir: &Path, kind: ModelKind) -> Result<(ModelMeta, Vec<(String, Tensor)>)> {
    let (meta, tensors) = read_model_dir(dir)?;
    if meta.kind != kind {
        let (holds, loader) = match meta.kind {
            ModelKind::Dnn => ("a fine-tuned network", "TransferModel::load"),
            ModelKind::Svm => ("an SVM classifier", "SvmClassifier::load"),
        };
        return Err(model_err(dir, format!("holds {holds}; load it with {loader} or load_classifier")));
    }
    Ok((meta, tensors))
}

/// Loads whichever classifier a model folder holds.
pub fn load_classifier(dir: &Path, device: Device) -> Result<Box<dyn Classifier>> {
    let (meta, tensors) = read_model_dir(dir)?;
    match meta.kind {
        ModelKind::Dnn => Ok(Box::new(crate::TransferModel::from_parts(dir, meta, tensors, device)?)),
        ModelKind::Svm => Ok(Box::new(crate::SvmClassifier::from_parts(dir, meta, tensors, device)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BaseModel, TransferModel};

    fn model(seed: u64) -> TransferModel {
        let base = BaseModel::new(Architecture::Resnet18, None);
        TransferModel::new_seeded(vec!["a".into(), "b".into()], &base, Some(32), Device::Cpu, seed).unwrap()
    }

    fn scores(m: &dyn Classifier) -> Vec<Vec<f32>> {
        let x = Tensor::ones([2, 3, 32, 32], (tch::Kind::Float, Device::Cpu));
        rows(&m.score_batch(&x).unwrap()).unwrap()
    }

    #[test]
    fn model_metadata_floats_round_trip_exactly() {
        // serde_json's default float parser can be off by one unit in the last
        // place; model.json uses its exact (float_roundtrip) parser.
        for v in [1.2976488669713335f64, 0.1 + 0.2, 1e-300, 123456.78901234567] {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v}");
        }
    }

    #[test]
    fn an_interrupted_save_leaves_the_previous_model_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let old = model(1);
        old.save(dir.path()).unwrap();
        let new = model(2);
        assert_ne!(scores(&old), scores(&new));
        // A save of `new` that dies after writing its weights, before model.json
        // is replaced, and one that dies mid-way through the weights file.
        write_weights(dir.path(), &new.tensors()).unwrap();
        std::fs::write(dir.path().join(".weights-dead.safetensors.tmp"), b"half a file").unwrap();
        let back = TransferModel::load(dir.path(), Device::Cpu).unwrap();
        assert_eq!(scores(&back), scores(&old));
        // The next complete save wins and clears the leftovers.
        new.save(dir.path()).unwrap();
        let back = TransferModel::load(dir.path(), Device::Cpu).unwrap();
        assert_eq!(scores(&back), scores(&new));
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 2, "model.json and one weights file: {files:?}");
    }
}
