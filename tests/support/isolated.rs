//! Included (with `#[path]`) by the integration tests that must run alone in
//! their process: one that measures the process's peak memory, one that
//! needs no other training beside it. Each crate has one test binary, whose
//! tests run side by side on threads, so such a test starts the same binary
//! again as a child that runs only itself.

use std::process::Command;

/// Set in the child to the name of the test it runs.
const CHILD_ENV: &str = "CVTK_ISOLATED_TEST";

/// In the test binary's normal run: runs the test `name` (in the module
/// `module`, as `module_path!()` gives it) alone in a child process, panics
/// with its output unless it passed, and returns `Some(output)`. In that
/// child: returns `None`, and the caller runs the test's body.
pub fn alone(module: &str, name: &str) -> Option<String> {
    // `integration::determinism` -> `determinism::same_seed_same_model`
    let path = match module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{name}"),
        None => name.to_string(),
    };
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == path) {
        return None;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", &path, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .output()
        .expect("cannot start the test binary again");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{path}, alone in a child process, failed:\n{log}");
    assert!(log.contains(&format!("test {path} ... ok")), "the child process did not run {path}:\n{log}");
    Some(log)
}
