//! Links libtorch into the program with an rpath: see crates/cvtk-build.
fn main() {
    cvtk_build::link_libtorch();
}
