//! Image augmentation for cvtk: the counterpart of the original package's
//! `augment_dataset`, which applied pipelines written with the `imgaug` library.
//!
//! This crate owns image-to-image transforms (`Augmenter`, `Sequential`, flips,
//! crops, affine warps, colour changes) and applying them to a
//! [`cvtk_dataset::ClassificationDataset`], offline or on the fly during training.
//! The transforms themselves are being built (see the augmentation issue); today
//! the crate only fixes its place in the workspace.
