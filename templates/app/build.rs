fn main() {
    cvtk_build::link_libtorch();
}
