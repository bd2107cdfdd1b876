//! cvtk-eval's integration tests: one binary with a module per area, so the crate's
//! tree is linked once. `cargo test -p cvtk-eval --test integration` runs them all,
//! `cargo test -p cvtk-eval --test integration AREA::` one area.

#[path = "../../../tests/browser/harness.rs"]
mod browser;

mod plots_report;
mod report_browser;
mod sklearn;
