//! The [`Classifier`] trait that [`crate::TransferModel`] and
//! [`crate::SvmClassifier`] implement: a [`Scorer`] on libtorch that can also
//! be saved, exported and compiled for another engine ([`crate::compile`]).

use std::path::Path;

use tch::Device;

use crate::calibration::TemperatureFit;
use crate::model_dir::ModelKind;
use crate::onnx::OnnxModel;
use crate::scorer::Scorer;
use crate::trained_on::TrainingImages;
use crate::{Error, Result};

/// A trained classifier over the user's labels. As a [`Scorer`] it scores
/// with libtorch on its device, the engine training uses; [`crate::compile`]
/// makes the scorer for another engine once.
pub trait Classifier: Scorer + Send {
    /// The temperature fit behind [`Scorer::score_kind`], if the classifier
    /// was calibrated.
    fn calibration(&self) -> Option<&TemperatureFit> {
        None
    }
    /// The test-time augmentation it was trained (and calibrated) with:
    /// [`crate::compile`] scores with it unless told otherwise.
    fn tta(&self) -> crate::TtaMode {
        crate::TtaMode::None
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
    /// The images it was trained on, when cvtk trained it and recorded them
    /// (None for the pretrained network, and for model folders written
    /// before cvtk recorded them). [`TrainingImages::find_in`] says which
    /// images of a dataset are among them: an accuracy on those is not a test
    /// accuracy. An error is a record that cannot be read.
    fn training_images(&self) -> Result<Option<std::sync::Arc<TrainingImages>>> {
        Ok(None)
    }
    /// The model as an ONNX graph that scores without cvtk ([`crate::onnx`]).
    fn export_onnx(&self) -> Result<OnnxModel> {
        Err(Error::InvalidInput(format!("{} cannot be exported to ONNX", self.describe())))
    }
    /// [`Self::export_onnx`] with test-time augmentation `tta` baked into the
    /// graph: it then scores as cvtk does with it ([`crate::tta`]).
    fn export_onnx_tta(&self, tta: crate::TtaMode) -> Result<OnnxModel> {
        match tta {
            crate::TtaMode::None => self.export_onnx(),
            mode => Err(Error::InvalidInput(format!(
                "{} cannot be exported with test-time augmentation {mode}",
                self.describe()
            ))),
        }
    }
    /// [`Self::export_onnx`] with the class activation maps as a third
    /// output ([`crate::onnx::CLASS_MAPS`]), for networks that have them.
    fn export_onnx_with_maps(&self) -> Result<OnnxModel> {
        Err(Error::InvalidInput(format!("{} has no class activation maps to export", self.describe())))
    }
    /// The ONNX graph onnxruntime scores it with: the model folder's
    /// `model.onnx` when it is the export of these very weights, else a fresh
    /// [`Self::export_onnx`] (kept as the folder's `model.onnx` when it can be).
    fn scores_graph(&self) -> Result<Vec<u8>> {
        Ok(self.export_onnx()?.bytes().to_vec())
    }
}
