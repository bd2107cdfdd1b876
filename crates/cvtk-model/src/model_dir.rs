//! The model-folder format. A model folder holds `model.json` (format,
//! version, kind, labels, architecture, input size and normalisation, the
//! weights file's name, how it was trained, its calibration) and
//! `weights-<stamp>.safetensors`, and for a model cvtk trained, the record of
//! the images it was trained on, `training-images-<stamp>.json`
//! ([`crate::trained_on`]). Saving writes the new weights file and record
//! first and then replaces `model.json` atomically, so an interrupted save
//! leaves the previous model loadable; stale weights files and records are
//! removed afterwards.
//!
//! The format version goes up when an older cvtk would misread a folder. A
//! field that older versions can ignore (as `training_images`, which they
//! do not know) keeps it, and a folder without such a field loads as before.

use std::path::{Path, PathBuf};

use cvtk_core::write_json_atomic;
use cvtk_dataset::LoaderConfig;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::calibration::TemperatureFit;
use crate::trained_on::{Record, TrainingImages};
use crate::{Architecture, Classifier, EpochStats, Error, Result, SvmParams};

/// The metadata file of a model folder.
pub const MODEL_FILE: &str = "model.json";

/// Whether `dir` looks like a model folder (it holds [`MODEL_FILE`]).
pub fn is_model_dir(dir: &Path) -> bool {
    dir.join(MODEL_FILE).is_file()
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

/// How the classifier in a model folder was trained, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Training {
    /// A fine-tuned network: its statistics, one entry per epoch.
    Epochs(Vec<EpochStats>),
    /// A linear SVM: its solver settings.
    Svm(SvmParams),
}

impl Training {
    /// Which classifier was trained this way.
    pub fn kind(&self) -> ModelKind {
        match self {
            Training::Epochs(_) => ModelKind::Dnn,
            Training::Svm(_) => ModelKind::Svm,
        }
    }
}

/// `model.json`, as the rest of the crate sees it.
#[derive(Clone, Debug)]
pub(crate) struct ModelMeta {
    pub labels: Vec<String>,
    pub arch: Architecture,
    pub loader: LoaderConfig,
    pub weights_file: String,
    /// The weights file the backbone started from, for the record.
    pub base_weights: Option<PathBuf>,
    pub training: Training,
    /// The temperature that calibrates the scores, if one was fitted.
    pub calibration: Option<TemperatureFit>,
    /// The file of the folder that records the training images, if any.
    pub training_images: Option<String>,
    /// The test-time augmentation it was trained and calibrated with.
    pub tta: crate::TtaMode,
}

impl ModelMeta {
    pub fn kind(&self) -> ModelKind {
        self.training.kind()
    }

    /// Where the folder `dir` this was read from records the training images.
    pub fn training_record(&self, dir: &Path) -> Record {
        self.training_images.as_ref().map_or(Record::None, |name| Record::File(dir.join(name)))
    }
}

/// `model.json` on disk: the training record is `history`, whose shape
/// depends on `kind` (a list of epochs, or the SVM's settings).
#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: String,
    version: u32,
    kind: ModelKind,
    labels: Vec<String>,
    arch: Architecture,
    loader: LoaderConfig,
    weights_file: String,
    #[serde(default)]
    base_weights: Option<PathBuf>,
    #[serde(default)]
    history: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<TemperatureFit>,
    /// Added after version 1 was fixed; older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training_images: Option<String>,
    /// Added later still; absent means none.
    #[serde(default, skip_serializing_if = "crate::TtaMode::is_none")]
    tta: crate::TtaMode,
}

impl ModelMeta {
    fn to_file(&self) -> MetaFile {
        let history = match &self.training {
            Training::Epochs(epochs) => serde_json::to_value(epochs),
            Training::Svm(params) => serde_json::to_value(params),
        };
        MetaFile {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            kind: self.kind(),
            labels: self.labels.clone(),
            arch: self.arch,
            loader: self.loader.clone(),
            weights_file: self.weights_file.clone(),
            base_weights: self.base_weights.clone(),
            history: history.unwrap_or_default(),
            calibration: self.calibration.clone(),
            training_images: self.training_images.clone(),
            tta: self.tta,
        }
    }

    /// The metadata of a file, with its training record read by kind: a
    /// record that does not fit is an error, not a silent default (a missing
    /// one, from files that never had it, reads as empty or default settings).
    fn from_file(f: MetaFile, path: &Path) -> Result<Self> {
        let bad = |e: serde_json::Error| model_err(path, format!("\"history\" does not fit a {:?} model: {e}", f.kind));
        let training = match (f.kind, f.history.is_null()) {
            (ModelKind::Dnn, true) => Training::Epochs(Vec::new()),
            (ModelKind::Svm, true) => Training::Svm(SvmParams::default()),
            (ModelKind::Dnn, false) => Training::Epochs(serde_json::from_value(f.history.clone()).map_err(bad)?),
            (ModelKind::Svm, false) => Training::Svm(serde_json::from_value(f.history.clone()).map_err(bad)?),
        };
        Ok(ModelMeta {
            labels: f.labels,
            arch: f.arch,
            loader: f.loader,
            weights_file: f.weights_file,
            base_weights: f.base_weights,
            training,
            calibration: f.calibration,
            training_images: f.training_images,
            tta: f.tta,
        })
    }
}

fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::ModelFile { path: path.to_path_buf(), reason: reason.into() }
}

/// Saves `tensors`, `meta` and the record of the training images, if there
/// is one, into `dir` (see the module doc for the order). The folder's
/// `model.onnx`, the export of the old weights, goes too.
pub(crate) fn save_model_dir(
    dir: &Path,
    mut meta: ModelMeta,
    tensors: &[(String, Tensor)],
    trained_on: &Record,
) -> Result<()> {
    // Read before the lock: a record loaded from this very folder is replaced below.
    let trained_on = trained_on.for_save();
    // Two saves into one folder at once would each remove the other's
    // weights, leaving model.json naming a file that is gone.
    let _lock = lock_folder(dir)?;
    let weights_file = write_weights(dir, tensors)?;
    meta.training_images = match trained_on {
        Some(record) => Some(write_record(dir, &weights_file, &record)?),
        None => None,
    };
    meta.weights_file = weights_file;
    write_json_atomic(&dir.join(MODEL_FILE), &meta.to_file())?;
    remove_stale_weights(dir, &meta.weights_file, meta.training_images.as_deref());
    let onnx = dir.join(crate::onnx::MODEL_ONNX);
    if onnx.exists() {
        if let Err(e) = std::fs::remove_file(&onnx) {
            tracing::warn!("cannot remove the stale {}: {e}", onnx.display());
        }
    }
    Ok(())
}

/// How long a save waits for another save into the same folder.
const SAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// An exclusive lock on the folder itself (flock on its descriptor: no lock
/// file is left in the model folder), held until dropped; waits up to
/// [`SAVE_WAIT`] for another save.
fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir.to_path_buf(), e))?;
    let folder = std::fs::File::open(dir).map_err(|e| Error::io("cannot open", dir.to_path_buf(), e))?;
    let deadline = std::time::Instant::now() + SAVE_WAIT;
    loop {
        match folder.try_lock() {
            Ok(()) => return Ok(folder),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(model_err(
                    dir,
                    format!(
                    "another cvtk has been saving a model into this folder for {} s; wait for it, or save elsewhere",
                    SAVE_WAIT.as_secs()
                ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock", dir.to_path_buf(), e)),
        }
    }
}

/// Writes a fresh `weights-<stamp>.safetensors` (temp file, synced, then
/// renamed, the folder synced) and returns its name.
pub(crate) fn write_weights(dir: &Path, tensors: &[(String, Tensor)]) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir.to_path_buf(), e))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let name = format!("weights-{stamp:x}-{}.safetensors", std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<_>>()?;
    Tensor::write_safetensors(&cpu, &tmp).map_err(|e| model_err(&tmp, format!("cannot write weights: {e}")))?;
    // On disk before model.json names them and the old ones go: a crash at
    // any point leaves the old weights or the new ones, never neither.
    cvtk_core::sync_file(&tmp)?;
    let final_path = dir.join(&name);
    std::fs::rename(&tmp, &final_path).map_err(|e| Error::io("cannot rename", tmp, e))?;
    cvtk_core::sync_dir(dir)?;
    Ok(name)
}

/// Writes the record of the training images beside `weights_file`, with its
/// stamp, and returns its name.
fn write_record(dir: &Path, weights_file: &str, record: &TrainingImages) -> Result<String> {
    let stamp = weights_file.strip_prefix("weights-").and_then(|w| w.strip_suffix(".safetensors")).unwrap_or("0");
    let name = format!("training-images-{stamp}.json");
    record.write(&dir.join(&name))?;
    Ok(name)
}

fn remove_stale_weights(dir: &Path, keep: &str, keep_record: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with("weights-") && name.ends_with(".safetensors") && name != keep)
            || (name.starts_with(".weights-") && name.ends_with(".tmp"))
            || (name.starts_with("training-images-") && name.ends_with(".json") && Some(name.as_str()) != keep_record);
        if stale {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %e.path().display(), "cannot remove stale weights: {err}");
            }
        }
    }
}

/// Reads and checks `model.json`, and the weights it names.
pub(crate) fn read_model_dir(dir: &Path) -> Result<(ModelMeta, Vec<(String, Tensor)>)> {
    let meta_path = dir.join(MODEL_FILE);
    if !dir.exists() {
        return Err(model_err(dir, "does not exist; pass the folder `cvtk train --out` wrote"));
    }
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
    let file: MetaFile = serde_json::from_value(value).map_err(|e| model_err(&meta_path, e.to_string()))?;
    if file.version > MODEL_VERSION {
        return Err(model_err(
            &meta_path,
            format!("format version {} is newer than this cvtk reads ({MODEL_VERSION}); upgrade cvtk", file.version),
        ));
    }
    let meta = ModelMeta::from_file(file, &meta_path)?;
    if meta.labels.is_empty() {
        return Err(model_err(&meta_path, "has no labels"));
    }
    if meta.weights_file.contains('/') || meta.weights_file.contains("..") {
        return Err(model_err(&meta_path, format!("weights_file '{}' must be a plain file name", meta.weights_file)));
    }
    if let Some(name) = meta.training_images.as_deref().filter(|n| n.contains('/') || n.contains("..")) {
        return Err(model_err(&meta_path, format!("training_images '{name}' must be a plain file name")));
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
    if meta.kind() != kind {
        let (holds, loader) = match meta.kind() {
            ModelKind::Dnn => ("a fine-tuned network", "TransferModel::load"),
            ModelKind::Svm => ("an SVM classifier", "SvmClassifier::load"),
        };
        return Err(model_err(dir, format!("holds {holds}; load it with {loader} or load_classifier")));
    }
    Ok((meta, tensors))
}

/// Loads whichever classifier a model folder holds; it scores with libtorch
/// ([`load_scorer`] for the engine of your choice).
pub fn load_classifier(dir: &Path, device: Device) -> Result<Box<dyn Classifier>> {
    let (meta, tensors) = read_model_dir(dir)?;
    match meta.kind() {
        ModelKind::Dnn => Ok(Box::new(crate::TransferModel::from_parts(dir, meta, tensors, device)?)),
        ModelKind::Svm => Ok(Box::new(crate::SvmClassifier::from_parts(dir, meta, tensors, device)?)),
    }
}

/// The classifier a model folder holds, [`crate::compile`]d for `engine`:
/// what `cvtk predict`, `evaluate`, `score` and `serve` score with. With
/// [`EngineChoice::Auto`](crate::EngineChoice::Auto), onnxruntime on the CPU
/// when it loads and runs the model (the folder's `model.onnx`, made on first
/// use), else libtorch; asking for onnxruntime where it cannot be loaded is an
/// error that says how to install it.
///
/// The device is a [`crate::DeviceChoice`] (`Auto`, `Cpu`, `Cuda(n)`), so a
/// program that only scores names no libtorch type.
pub fn load_scorer(
    dir: &Path,
    device: crate::DeviceChoice,
    engine: crate::EngineChoice,
) -> Result<crate::Compiled<Box<dyn Classifier>>> {
    let device = device.resolve()?;
    engine.resolve(device)?;
    crate::compile(load_classifier(dir, device)?, engine)
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
        let x = cvtk_dataset::ImageBatch::new(vec![1.0; 2 * 3 * 32 * 32], [2, 3, 32, 32]).unwrap();
        m.score_images(&x).unwrap()
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
    fn a_training_record_that_does_not_fit_its_kind_is_an_error_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        model(1).save(dir.path()).unwrap();
        let meta = dir.path().join(MODEL_FILE);
        let text = std::fs::read_to_string(&meta).unwrap();
        // A network's history where an SVM's settings are expected, and garbage.
        for bad in [r#""history": {"c": 1.0}"#, r#""history": "corrupt""#] {
            let broken = text.replacen(r#""history": []"#, bad, 1);
            assert_ne!(broken, text, "the saved file has an empty history");
            std::fs::write(&meta, broken).unwrap();
            let e = TransferModel::load(dir.path(), Device::Cpu).unwrap_err().to_string();
            assert!(e.contains("\"history\" does not fit"), "{e}");
        }
        // A missing record reads as empty, as files written before it existed.
        std::fs::write(&meta, text.replacen(r#""history": [],"#, "", 1)).unwrap();
        assert!(TransferModel::load(dir.path(), Device::Cpu).unwrap().history().is_empty());
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
            // The ONNX graph onnxruntime scored with is derived from the
            // weights, not a leftover (checked in tests/onnx.rs and the CLI's).
            .filter(|f| f != crate::onnx::MODEL_ONNX)
            .collect();
        assert_eq!(files.len(), 2, "model.json and one weights file: {files:?}");
    }

    #[test]
    fn concurrent_saves_into_one_folder_leave_a_model_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        // A model is not Sync: each thread makes its own (seeded, so the same again below).
        std::thread::scope(|s| {
            for seed in [1, 2] {
                let dir = dir.path();
                s.spawn(move || {
                    let m = model(seed);
                    for _ in 0..6 {
                        m.save(dir).unwrap();
                    }
                });
            }
        });
        let models = [model(1), model(2)];
        let back = TransferModel::load(dir.path(), Device::Cpu).expect("the folder holds a whole model");
        let got = scores(&back);
        // libtorch's sums may be ordered differently when other tests change
        // its thread count meanwhile: equal within float32's rounding.
        let close = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-4)
        };
        assert!(models.iter().any(|m| close(&scores(m), &got)), "the model is neither of the two saved");
        let weights = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("weights-"))
            .count();
        assert_eq!(weights, 1);
    }
}
