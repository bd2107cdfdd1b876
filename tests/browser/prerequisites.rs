//! Included (with `#[path]`) by the Rust tests that drive a page in headless
//! Chromium: checks that `make setup` installed what they need, failing loudly
//! with what to run when it did not.

use std::path::{Path, PathBuf};

/// `(tests/browser, the chromium binary)` under the repository `repo`; panics
/// naming the missing piece and the command that installs it.
pub fn browser_prerequisites(repo: &Path) -> (PathBuf, String) {
    let browser_dir = repo.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run `make setup` (npm ci in tests/browser)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).is_file(), "{chromium} missing: run `make setup` (apt-get install chromium)");
    (browser_dir, chromium)
}
