//! Helpers shared by the model crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's venv Python; tests that need it fail loudly without it.
pub fn python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(py.is_file(), "{} missing: run `make setup` (it installs the test-time Python references)", py.display());
    py
}

/// Runs a committed Python reference script from tests/reference with `args`.
pub fn run_reference(script: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(script);
    let out = Command::new(python()).arg(&script).args(args).output().unwrap();
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
}

/// Reads a little-endian f32 file into a tensor of `shape`.
pub fn read_f32(path: &Path, shape: &[i64]) -> tch::Tensor {
    let bytes = std::fs::read(path).unwrap();
    tch::Tensor::from_data_size(&bytes, shape, tch::Kind::Float)
}
