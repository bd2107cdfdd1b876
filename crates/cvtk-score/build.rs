//! Links libtorch into this package's binaries and tests: see build/link_libtorch.rs.
include!("../../build/link_libtorch.rs");
