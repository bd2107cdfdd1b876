//! Included (with `#[path]`) by the Rust tests that drive a page in headless
//! Chromium: checks that `make test-setup` installed what they need (failing loudly
//! with what to run when it did not), runs one `tests/browser/*.test.mjs` with
//! node's test runner, and fails with its log unless it passes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (every crate sits at `crates/NAME`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Runs `tests/browser/SCRIPT` against Debian's chromium (or `$CHROMIUM`), with
/// `CVTK_SCREENSHOT` set to `target/screenshots/SHOT` and the variables in
/// `env`. Panics with the test's output unless it passes; returns that output
/// (stdout, then stderr) and the screenshot's path.
pub fn run_browser_test(script: &str, shot: &str, env: &[(&str, &OsStr)]) -> (String, PathBuf) {
    let repo = repo();
    let browser_dir = repo.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run `make test-setup` (npm ci in tests/browser)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).is_file(), "{chromium} missing: run `make test-setup` (apt-get install chromium)");
    let shots = repo.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(shot);
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", script])
        .current_dir(&browser_dir)
        .env("CVTK_SCREENSHOT", &shot)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().copied())
        .output()
        .expect("node is needed for the browser tests");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test {script} failed:\n{log}");
    (log, shot)
}
