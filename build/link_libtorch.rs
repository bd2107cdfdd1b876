// Shared by every workspace package's build.rs (`include!`d there), because
// `cargo:rustc-link-arg` only reaches the package's own binaries, tests,
// examples and benches, never its dependents, and never proc-macros (global
// rustflags would load libtorch into rustc itself).
//
// For each linked artefact:
//  - an rpath to libtorch's lib folder, so nothing needs LD_LIBRARY_PATH;
//  - `--no-as-needed -ltorch`, so libtorch_cuda stays linked and CUDA is found
//    when a GPU is present (what tch's own build.rs does for its examples).
// LIBTORCH is set by .cargo/config.toml, which `make setup` writes.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    // This file, from the root package (build/) or a crate (../../build/): a
    // path that does not exist would make cargo rerun the script, and rebuild
    // the package, on every invocation.
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    if let Some(shared) =
        [dir.join("build/link_libtorch.rs"), dir.join("../../build/link_libtorch.rs")].into_iter().find(|p| p.is_file())
    {
        println!("cargo:rerun-if-changed={}", shared.display());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
        println!("cargo:rustc-link-arg=-L{libtorch}/lib");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
