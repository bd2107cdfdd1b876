//! cvtk-score's integration tests, on a fake scorer: batch scoring needs a
//! [`Scorer`], not a libtorch model. (`crates/cvtk-cli/tests/score.rs` runs
//! `cvtk score` on real models.)

mod fake_scorer;
