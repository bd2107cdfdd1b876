//! Links libtorch into this package's binaries and tests with an rpath: see crates/cvtk-build.
fn main() {
    cvtk_build::link_libtorch();
}
