//! Models for cvtk: the counterpart of the original package's `CNTKTLModel` (a
//! pretrained ImageNet network fine-tuned on the user's labels) and
//! `ScikitClassifier` (a linear SVM trained on the network's features).
//!
//! This crate owns the networks (ResNet-18/34/50/101/152, EfficientNet-Lite),
//! weights files, training, scoring, feature extraction and the SVM, all on
//! libtorch through `tch`. It is being built (see the model issue); today it only
//! fixes its place in the workspace and re-exports the device type every caller
//! needs.

pub use tch::Device;
