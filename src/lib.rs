//! cvtk: image classification by transfer learning, in Rust.
//!
//! This facade re-exports the workspace crates, one per step of the workflow, so
//! examples and applications can depend on one crate:
//!
//! | module | crate | owns |
//! |---|---|---|
//! | [`core`] | `cvtk-core` | what every crate shares: atomic writes, file locks, progress reporting, scores and their kind, storage paths, the I/O error |
//! | [`dataset`] | `cvtk-dataset` | images on disk, labels, splits, manifests, the folder walk, the image loader (to f32 batches) |
//! | [`collect`] | `cvtk-collect` | a dataset from folders, image URLs and image searches |
//! | [`annotate`] | `cvtk-annotate` | the browser page to look at images and correct labels |
//! | [`augment`] | `cvtk-augment` | image-to-image transforms and pipelines |
//! | [`model`] | `cvtk-model` | networks, weights files, training, scoring, calibration, features, SVM, model folders |
//! | [`eval`] | `cvtk-eval` | metrics, calibration error, curves, plots, the HTML report |
//! | [`deploy`] | `cvtk-deploy` | the REST scoring service, its client, deployments, Docker/Kubernetes artifacts |
//! | [`loadtest`] | `cvtk-loadtest` | load tests of a scoring service |
//! | [`score`] | `cvtk-score` | batch scoring to JSON Lines, CSV or Parquet: streaming, resumable, sharded |
//! | [`http`] | `cvtk-http` | HTTP pieces the servers and fetchers share: error codes, the JSON error body, one bounded GET |
//! | [`audit`] | `cvtk-audit` | the data audit: label issues, neighbours, outliers, duplicates and leaks, image quality, the report |

pub use cvtk_annotate as annotate;
pub use cvtk_audit as audit;
pub use cvtk_augment as augment;
pub use cvtk_collect as collect;
pub use cvtk_core as core;
pub use cvtk_dataset as dataset;
pub use cvtk_deploy as deploy;
pub use cvtk_eval as eval;
pub use cvtk_http as http;
pub use cvtk_loadtest as loadtest;
pub use cvtk_model as model;
pub use cvtk_score as score;

/// Every code sample of the README and docs/ is compiled (and the ones that
/// need no files are run) by `cargo test --doc`, so none can drift from the
/// API.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/guide.md")]
    struct Guide;
    #[doc = include_str!("../docs/datasets.md")]
    struct Datasets;
    #[doc = include_str!("../docs/augmentation.md")]
    struct Augmentation;
    #[doc = include_str!("../docs/models.md")]
    struct Models;
    #[doc = include_str!("../docs/evaluation.md")]
    struct Evaluation;
    #[doc = include_str!("../docs/explain.md")]
    struct Explain;
    #[doc = include_str!("../docs/deployment.md")]
    struct Deployment;
    #[doc = include_str!("../docs/api-mapping.md")]
    struct ApiMapping;
    #[doc = include_str!("../docs/benchmarks.md")]
    struct Benchmarks;
    #[doc = include_str!("../docs/contributing.md")]
    struct Contributing;
    #[doc = include_str!("../docs/README.md")]
    struct DocsIndex;
}
