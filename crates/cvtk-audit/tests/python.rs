//! The Python references the tests compare against: the project's `.venv`
//! (made by `make test-setup`, with requirements-test.txt) and its scripts in
//! tests/reference/.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The `.venv`'s interpreter; a missing one fails the test, saying how to make it.
pub fn python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(py.is_file(), "{} missing: run `make test-setup` (the references go into .venv)", py.display());
    py
}

/// The path of the reference script `name` (in tests/reference/).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(name)
}

/// Runs the reference script `name` with `input` as JSON on its standard
/// input, and returns the JSON it prints.
pub fn reference(name: &str, input: &Value) -> Value {
    let mut child = Command::new(python())
        .arg(script(name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}; run `make test-setup`"));
    child.stdin.take().unwrap().write_all(serde_json::to_string(input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference {name} failed (are its packages in .venv? `make test-setup`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name} printed no JSON: {e}"))
}
