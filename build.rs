//! Links libtorch into the examples and benches: see build/link_libtorch.rs.
include!("build/link_libtorch.rs");
