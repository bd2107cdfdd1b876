//! cvtk-annotate's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-annotate --test integration` runs them all,
//! `cargo test -p cvtk-annotate --test integration AREA::` one area.

mod common;

mod server;
