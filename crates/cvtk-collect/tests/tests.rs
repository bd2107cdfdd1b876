//! cvtk-collect's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-collect --test integration` runs them all,
//! `cargo test -p cvtk-collect --test integration AREA::` one area.

#[path = "../../cvtk-dataset/tests/common/mod.rs"]
mod common;

mod collect;
mod sample;
