//! cvtk-model's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-model --test integration` runs them all,
//! `cargo test -p cvtk-model --test integration AREA::` one area.

mod common;
#[path = "../../../tests/support/isolated.rs"]
mod isolated;

mod determinism;
mod explain;
mod onnx;
mod parity;
mod pretrained;
mod svm;
mod transfer;
