//! cvtk-dataset's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-dataset --test integration` runs them all,
//! `cargo test -p cvtk-dataset --test integration AREA::` one area.

mod common;

mod create_from_dir;
mod loader;
mod sample_data;
mod split_manifest;
