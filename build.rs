//! Links libtorch into the examples and benches with an rpath: see crates/cvtk-build.
fn main() {
    cvtk_build::link_libtorch();
}
