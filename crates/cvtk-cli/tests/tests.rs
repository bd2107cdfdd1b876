//! cvtk-cli's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-cli --test integration` runs them all,
//! `cargo test -p cvtk-cli --test integration AREA::` one area.

#[path = "../../../tests/browser/harness.rs"]
mod browser;
mod common;

mod annotate;
mod audit;
mod cli;
mod container;
mod deploy;
mod engine;
mod explain;
mod oip;
mod onnx_client;
mod score;
mod scores;
mod tour;
mod trained_on;
mod tta;
mod usage;
mod workflow;
