//! cvtk-augment's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-augment --test integration` runs them all,
//! `cargo test -p cvtk-augment --test integration AREA::` one area.

#[path = "../../cvtk-dataset/tests/common/mod.rs"]
mod images;

mod augment_dataset;
mod augmenters;
