//! cvtk-deploy's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-deploy --test integration` runs them all,
//! `cargo test -p cvtk-deploy --test integration AREA::` one area.

#[path = "support/bombs.rs"]
mod bombs;
mod common;
#[path = "../../../tests/support/isolated.rs"]
mod isolated;

mod amplifying_json;
mod artifacts;
mod explain;
mod fuzz;
mod hostile;
mod server;
mod v2;
