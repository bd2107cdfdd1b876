//! cvtk-audit's integration tests, one binary.
mod cleanlab;
