//! Build-script helper for every package that links libtorch through cvtk:
//! this workspace's own packages and programs that depend on cvtk.
//!
//! `cargo:rustc-link-arg` reaches only the package whose build script prints
//! it (its binaries, tests, examples and benches), never its dependents, and
//! global rustflags would load libtorch into rustc itself (proc-macros). So
//! each package that builds a binary calls [`link_libtorch`] from its own
//! `build.rs`:
//!
//! ```toml
//! # Cargo.toml
//! [build-dependencies]
//! cvtk-build = { path = "/path/to/cvtk/crates/cvtk-build" }
//! ```
//!
//! ```text
//! // build.rs
//! fn main() {
//!     cvtk_build::link_libtorch();
//! }
//! ```
//!
//! For each linked artefact it emits
//!  - an rpath to libtorch's `lib` folder (from `$LIBTORCH`, the variable
//!    torch-sys builds against), so the binary starts without
//!    `LD_LIBRARY_PATH`;
//!  - `--no-as-needed -ltorch`, so libtorch_cuda stays linked and CUDA is
//!    found when a GPU is present (what tch's own build script does for its
//!    examples).
//!
//! onnxruntime needs nothing here: cvtk loads it at run time from the path
//! `$CVTK_ONNXRUNTIME_LIB` had at build time (or has at run time).

/// Prints the link arguments described in the crate documentation. Call it
/// from `build.rs`; it reads `$LIBTORCH` and `$CARGO_CFG_TARGET_OS`.
pub fn link_libtorch() {
    for line in link_lines(std::env::var("CARGO_CFG_TARGET_OS").ok().as_deref(), std::env::var("LIBTORCH").ok()) {
        println!("{line}");
    }
}

/// The `cargo:` lines [`link_libtorch`] prints for a target OS and `$LIBTORCH`.
fn link_lines(target_os: Option<&str>, libtorch: Option<String>) -> Vec<String> {
    let mut lines = vec!["cargo:rerun-if-env-changed=LIBTORCH".to_string(), "cargo:rerun-if-changed=build.rs".into()];
    if target_os != Some("linux") {
        return lines;
    }
    if let Some(libtorch) = libtorch.filter(|l| !l.is_empty()) {
        lines.push(format!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib"));
        lines.push(format!("cargo:rustc-link-arg=-L{libtorch}/lib"));
    }
    lines.push("cargo:rustc-link-arg=-Wl,--no-as-needed".into());
    lines.push("cargo:rustc-link-arg=-ltorch".into());
    lines
}

#[cfg(test)]
mod tests {
    use super::link_lines;

    #[test]
    fn linux_binaries_get_an_rpath_to_libtorch_and_keep_libtorch_linked() {
        let lines = link_lines(Some("linux"), Some("/opt/torch".into()));
        assert!(lines.contains(&"cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/lib".to_string()), "{lines:?}");
        assert!(lines.contains(&"cargo:rerun-if-env-changed=LIBTORCH".to_string()));
        let no_as_needed = lines.iter().position(|l| l.ends_with("--no-as-needed")).unwrap();
        let ltorch = lines.iter().position(|l| l.ends_with("-ltorch")).unwrap();
        assert!(no_as_needed < ltorch, "{lines:?}");
    }

    #[test]
    fn other_systems_and_an_unset_libtorch_get_no_rpath() {
        assert!(!link_lines(Some("macos"), Some("/opt/torch".into())).iter().any(|l| l.contains("rustc-link-arg")));
        assert!(!link_lines(Some("linux"), None).iter().any(|l| l.contains("rpath")));
    }
}
