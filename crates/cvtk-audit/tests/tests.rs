//! cvtk-audit's integration tests, one binary.
mod cleanlab;
mod cleanlab_outliers;
mod cleanvision;
mod logistic;
mod python;
